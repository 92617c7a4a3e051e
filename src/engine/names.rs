//! Table references in a user's query, made explicit before planning: each
//! table of a source is read under its full `source.schema.table` name and an
//! alias equal to the name the query used for it (`FROM lineitem` becomes
//! `FROM "my"."tpch"."lineitem" AS lineitem`).
//!
//! Why: federation renames every scanned table to its remote name. Column
//! names DataFusion derives from expressions (`sum(lineitem.l_quantity)`)
//! embed the qualifier, and above a plain table scan they would be renamed
//! with it — inconsistently, in some plans. Under an alias, the remote name
//! stays below the alias and the names the query sees never change.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::error::{DataFusionError, Result};
use datafusion::sql::sqlparser::ast::{
    self, Ident, ObjectName, ObjectNamePart, TableAlias, TableFactor, Visit, VisitMut, Visitor,
    VisitorMut,
};
use tributary_schema_cache::CatalogSnapshot;

/// Rewrites every table reference of `statement` that names a source table.
/// A bare name that several sources have is an error naming the candidates.
pub fn qualify_tables(statement: &mut ast::Statement, snapshot: &CatalogSnapshot) -> Result<()> {
    let mut ctes = CteNames::default();
    let _ = Visit::visit(&*statement, &mut ctes);
    let mut qualifier = Qualifier {
        snapshot,
        ctes: ctes.names,
        error: None,
    };
    let _ = VisitMut::visit(statement, &mut qualifier);
    qualifier.error.map_or(Ok(()), Err)
}

/// DataFusion's identifier normalization: unquoted names are lower-cased.
fn normalized(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

fn quoted(name: &str) -> ObjectNamePart {
    ObjectNamePart::Identifier(Ident::with_quote('"', name))
}

/// The names of every common table expression in the statement (they are
/// not tables of a source, whatever they are called).
#[derive(Default)]
struct CteNames {
    names: HashSet<String>,
}

impl Visitor for CteNames {
    type Break = ();

    fn pre_visit_query(&mut self, query: &ast::Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            self.names.extend(
                with.cte_tables
                    .iter()
                    .map(|cte| normalized(&cte.alias.name)),
            );
        }
        ControlFlow::Continue(())
    }
}

struct Qualifier<'a> {
    snapshot: &'a CatalogSnapshot,
    ctes: HashSet<String>,
    error: Option<DataFusionError>,
}

impl Qualifier<'_> {
    /// `(source, schema, table)` for a name as written, if it is a source table.
    fn resolve(&mut self, parts: &[String]) -> Option<(String, String, String)> {
        let sources = &self.snapshot.sources;
        let model = |source: &str| sources.get(source).and_then(|e| e.schema.clone());
        match parts {
            [source, schema, table] => model(source)?
                .table(schema, table)
                .map(|_| (source.clone(), schema.clone(), table.clone())),
            [source, table] => {
                let model = model(source)?;
                let schema = model.default_schema.clone()?;
                model
                    .table(&schema, table)
                    .map(|_| (source.clone(), schema, table.clone()))
            }
            [table] if !self.ctes.contains(table) => {
                let candidates: Vec<(String, String, String)> = sources
                    .iter()
                    .filter_map(|(name, entry)| entry.schema.as_ref().map(|m| (name, m)))
                    .flat_map(|(name, m)| {
                        m.tables()
                            .filter(|(_, t)| t.name == *table)
                            .map(|(schema, _)| (name.clone(), schema.to_string(), table.clone()))
                            .collect::<Vec<_>>()
                    })
                    .collect();
                match candidates.as_slice() {
                    [one] => Some(one.clone()),
                    [] => None,
                    several => {
                        let names: Vec<String> = several
                            .iter()
                            .map(|(s, sc, t)| format!("{s}.{sc}.{t}"))
                            .collect();
                        self.error = Some(DataFusionError::Plan(format!(
                            "table `{table}` is ambiguous; name one of: {}",
                            names.join(", ")
                        )));
                        None
                    }
                }
            }
            _ => None,
        }
    }
}

impl VisitorMut for Qualifier<'_> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        let Some(written) = name
            .0
            .iter()
            .map(|part| match part {
                ObjectNamePart::Identifier(ident) => Some(ident.clone()),
                ObjectNamePart::Function(_) => None,
            })
            .collect::<Option<Vec<Ident>>>()
        else {
            return ControlFlow::Continue(());
        };
        let parts: Vec<String> = written.iter().map(normalized).collect();
        let Some((source, schema, table)) = self.resolve(&parts) else {
            return if self.error.is_some() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            };
        };
        if let (None, Some(last)) = (alias.as_ref(), written.last()) {
            *alias = Some(TableAlias {
                explicit: true,
                name: last.clone(),
                columns: vec![],
                at: None,
            });
        }
        *name = ObjectName(vec![quoted(&source), quoted(&schema), quoted(&table)]);
        ControlFlow::Continue(())
    }
}
