//! What a query will do: the physical plan as text, and the SQL statement
//! each source receives (read from the federation nodes of the plan).

use datafusion::physical_plan::{ExecutionPlan, displayable};
use serde::Serialize;

/// The name of datafusion-federation's `VirtualExecutionPlan`: one source
/// statement.
pub const FEDERATION_NODE: &str = "sql_federation_exec";

/// One statement sent to one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceQuery {
    pub source: String,
    pub sql: String,
}

/// The indented physical plan.
pub fn plan_text(plan: &dyn ExecutionPlan) -> String {
    displayable(plan).indent(true).to_string()
}

/// Every federated statement in the plan, in plan order.
pub fn source_queries(plan: &dyn ExecutionPlan) -> Vec<SourceQuery> {
    let mut out = Vec::new();
    collect(plan, &mut out);
    out
}

fn collect(plan: &dyn ExecutionPlan, out: &mut Vec<SourceQuery>) {
    // datafusion-federation's VirtualExecutionPlan.
    if plan.name() == FEDERATION_NODE {
        // The node prints `VirtualExecutionPlan name=<source> compute_context=… base_sql=<sql>`
        // (followed by rewritten forms when a rewrite changed it; the last one is what runs).
        let line = displayable(plan).one_line().to_string();
        if let Some(query) = parse_line(&line) {
            out.push(query);
        }
    }
    for child in plan.children() {
        collect(child.as_ref(), out);
    }
}

fn parse_line(line: &str) -> Option<SourceQuery> {
    let name_start = line.find(" name=")? + " name=".len();
    let source = line[name_start..].split(' ').next()?.to_string();
    let markers = [
        " rewritten_sql_query=",
        " rewritten_ast_analyzer=",
        " rewritten_executor_sql=",
        " rewritten_logical_sql=",
        " base_sql=",
    ];
    let mut last: Option<(usize, &str)> = None;
    for marker in markers {
        if let Some(at) = line
            .find(marker)
            .filter(|at| last.is_none_or(|(pos, _)| *at > pos))
        {
            last = Some((at, marker));
        }
    }
    let (at, marker) = last?;
    let rest = &line[at + marker.len()..];
    // Each later marker starts with a space; the statement ends where the next one begins.
    let end = markers
        .iter()
        .filter_map(|m| rest.find(m))
        .min()
        .unwrap_or(rest.len());
    Some(SourceQuery {
        source,
        sql: rest[..end].trim_end().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_last_rewrite() {
        let line = "VirtualExecutionPlan name=shop compute_context=tributary-source:shop base_sql=SELECT 1 rewritten_executor_sql=SELECT 2";
        assert_eq!(
            parse_line(line),
            Some(SourceQuery {
                source: "shop".into(),
                sql: "SELECT 2".into()
            })
        );
        let line = "VirtualExecutionPlan name=crm compute_context=x base_sql=SELECT \"a\" FROM \"t\" WHERE (\"a\" = 'x y')";
        assert_eq!(
            parse_line(line).unwrap().sql,
            "SELECT \"a\" FROM \"t\" WHERE (\"a\" = 'x y')"
        );
    }
}
