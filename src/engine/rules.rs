//! The optimizer rules of the engine: DataFusion's own, then federation —
//! and the plan rewrites that make the federated SQL correct.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, LogicalPlan, Projection, SubqueryAlias};
use datafusion::optimizer::optimizer::{Optimizer, OptimizerConfig, OptimizerRule};
use datafusion_federation::FederationOptimizerRule;

/// DataFusion's optimizer rules with federation placed last: filter and
/// projection pushdown (and the other rules) shape the plan first, so the
/// filters and column pruning of a cross-source query sit right above each
/// table scan and go into that source's SQL. (datafusion-federation inserts
/// its rule before them, which leaves those filters in DataFusion and
/// fetches whole tables.)
pub fn optimizer_rules() -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    let mut rules = Optimizer::new().rules;
    rules.push(Arc::new(FederateSources(FederationOptimizerRule::new())));
    rules
}

/// The federation rule, also for a plan that is one bare table scan (what
/// projection pushdown leaves of `SELECT a FROM t`): the rule only federates
/// a table scan below another node, so such a scan gets a projection on top.
#[derive(Debug)]
struct FederateSources(FederationOptimizerRule);

impl OptimizerRule for FederateSources {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let plan = match plan {
            LogicalPlan::TableScan(_) => project_all(plan)?,
            other => other,
        };
        self.0.rewrite(plan, config)
    }
}

/// `plan` under a projection of all its columns (same schema).
fn project_all(plan: LogicalPlan) -> Result<LogicalPlan> {
    let columns: Vec<Expr> = plan
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    Ok(LogicalPlan::Projection(Projection::try_new(
        columns,
        Arc::new(plan),
    )?))
}

/// Before a federated plan is unparsed: an alias over anything but a
/// projection gets a projection in between, so the unparser writes a derived
/// table. Otherwise a filter that pushdown moved below the alias is written
/// with the table's own name (`FROM orders AS o WHERE orders.id > 2`), which
/// PostgreSQL and MySQL reject.
pub fn alias_derived_tables(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_up(|node| match node {
        LogicalPlan::SubqueryAlias(alias) if needs_projection(&alias.input) => {
            let input = project_all(Arc::unwrap_or_clone(alias.input))?;
            Ok(Transformed::yes(LogicalPlan::SubqueryAlias(
                SubqueryAlias::try_new(Arc::new(input), alias.alias)?,
            )))
        }
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
}

fn needs_projection(input: &LogicalPlan) -> bool {
    !matches!(
        input,
        LogicalPlan::Projection(_) | LogicalPlan::TableScan(_)
    )
}
