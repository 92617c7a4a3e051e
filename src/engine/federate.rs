//! The federation rule: finds the largest sub-plans whose tables all belong
//! to one source and hands each to that source's SQL planner.
//!
//! Adapted from datafusion-federation 0.5.8's `FederationOptimizerRule`
//! (Apache-2.0) with one change: a plan node whose own work the source
//! would evaluate differently ([`pushdown::node_is_pushable`]) is never
//! merged into the source's sub-plan; its inputs are federated separately
//! and the node runs in DataFusion.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, ScalarValue, TableReference, not_impl_err};
use datafusion::error::Result;
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{
    BinaryExpr, Expr, Extension, Filter, JoinType, LogicalPlan, Operator, Projection, TableScan,
};
use datafusion::optimizer::optimizer::{Optimizer, OptimizerConfig, OptimizerRule};
use datafusion_federation::{FederationProvider, FederationProviderRef, get_table_source};
use tributary_schema_cache::SourceKind;

use super::{join_groups, json_columns, partial_aggregates, pushdown, window_names};

/// The rule, with the kind of each source by its federation compute context.
#[derive(Debug)]
pub struct FederateSources {
    kinds: HashMap<String, SourceKind>,
    /// `source.schema.table.column` of every one-column key in the catalog.
    keys: HashSet<String>,
}

impl FederateSources {
    pub fn new(kinds: HashMap<String, SourceKind>, keys: HashSet<String>) -> Self {
        Self { kinds, keys }
    }

    /// True when `column` of `plan` (one table, scanned, filtered or
    /// projected) is a one-column key of that table.
    fn is_key(&self, plan: &LogicalPlan, column: &Column) -> bool {
        rows_of(plan).is_some_and(|table| {
            let key = format!(
                "{}.{}.{}.{}",
                table.catalog().unwrap_or_default(),
                table.schema().unwrap_or_default(),
                table.table(),
                column.name
            );
            self.keys.contains(&key)
        })
    }

    fn pushable(&self, plan: &LogicalPlan, provider: &FederationProviderRef) -> bool {
        match provider
            .compute_context()
            .and_then(|c| self.kinds.get(&c).copied())
        {
            Some(kind) => pushdown::node_is_pushable(plan, kind) && !over_repeated_names(plan),
            None => true,
        }
    }
}

/// True when `plan` reads a projection that repeats a column name (`a.id,
/// b.id` of a self-join) and the unparser would write that projection as a
/// derived table, where the names clash (MySQL refuses the statement,
/// PostgreSQL refuses the reference). The projection itself is pushed (a
/// query's own select list may repeat names); what reads it runs here.
fn over_repeated_names(plan: &LogicalPlan) -> bool {
    if matches!(plan, LogicalPlan::Sort(_) | LogicalPlan::Limit(_)) {
        return false;
    }
    plan.inputs().iter().any(|input| {
        let LogicalPlan::Projection(projection) = input else {
            return false;
        };
        let mut names = HashSet::new();
        !projection
            .schema
            .fields()
            .iter()
            .all(|field| names.insert(field.name()))
    })
}

impl OptimizerRule for FederateSources {
    fn name(&self) -> &str {
        "federate_sources"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        // A bare table scan (what projection pushdown leaves of `SELECT a
        // FROM t`) is only federated below another node: give it one.
        let plan = match plan {
            LogicalPlan::TableScan(_) => project_all(plan)?,
            other => other,
        };
        let plan = window_names::name_windows(plan)?;
        let plan = json_columns::as_text(plan)?;
        let plan =
            join_groups::group_by_source(plan, &|p| self.source_of(p), &|p, c| self.is_key(p, c))?;
        let plan = partial_aggregates::push_partials(plan, &|side, other, partial| {
            Ok(match (self.scan_plan(side)?, self.scan_plan(other)?) {
                (Scan::One(_), Scan::One(o)) if o.compute_context() == self.source_of(side)? => {
                    false
                }
                (Scan::One(provider), _) if provider.compute_context().is_some() => {
                    self.pushable(partial, &provider)
                }
                _ => false,
            })
        })?;
        let plan = self.split_filters(plan)?;
        let federated = match self.optimize(&plan, true, config)? {
            (Some(optimized), _) => Transformed::yes(optimized),
            (None, _) => Transformed::no(plan),
        };
        federated.transform_data(dot_matches_newline)
    }
}

/// The one table whose rows `plan` answers, each at most once: through
/// filters, projections, aliases, sorts, limits and the kept side of a semi
/// or anti join (`orders` of `orders WHERE EXISTS (…)`); `None` for
/// anything that joins, groups or repeats rows.
fn rows_of(plan: &LogicalPlan) -> Option<&TableReference> {
    match plan {
        LogicalPlan::TableScan(scan) => Some(&scan.table_name),
        LogicalPlan::Join(join) => match join.join_type {
            JoinType::LeftSemi | JoinType::LeftAnti => rows_of(&join.left),
            JoinType::RightSemi | JoinType::RightAnti => rows_of(&join.right),
            _ => None,
        },
        LogicalPlan::Filter(_)
        | LogicalPlan::Projection(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_) => match plan.inputs().as_slice() {
            [input] => rows_of(input),
            _ => None,
        },
        _ => None,
    }
}

/// In PostgreSQL's regular expressions `.` matches a newline; in the
/// engine's (Rust) it does not unless told. A regular-expression match the
/// engine evaluates — what is left outside the sources' statements — gets
/// that flag (`(?s)`, unless the pattern sets its own), so it answers as
/// PostgreSQL does; patterns sent to PostgreSQL keep their text.
fn dot_matches_newline(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    plan.transform_up_with_subqueries(|node| {
        node.map_expressions(|expr| {
            expr.transform_up(|expr| match expr {
                Expr::BinaryExpr(BinaryExpr { left, op, right })
                    if matches!(
                        op,
                        Operator::RegexMatch
                            | Operator::RegexIMatch
                            | Operator::RegexNotMatch
                            | Operator::RegexNotIMatch
                    ) =>
                {
                    let flagged = match right.as_ref() {
                        Expr::Literal(ScalarValue::Utf8(Some(pattern)), meta)
                            if !pattern.starts_with("(?") =>
                        {
                            Some(Expr::Literal(
                                ScalarValue::Utf8(Some(format!("(?s){pattern}"))),
                                meta.clone(),
                            ))
                        }
                        _ => None,
                    };
                    Ok(match flagged {
                        Some(right) => Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                            left,
                            op,
                            Box::new(right),
                        ))),
                        None => Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right })),
                    })
                }
                other => Ok(Transformed::no(other)),
            })
        })
    })
}

/// Which sources a sub-plan touches.
#[derive(Clone)]
enum Scan {
    None,
    One(FederationProviderRef),
    Several,
}

impl Scan {
    fn merge(&mut self, other: Scan) {
        *self = match (std::mem::replace(self, Scan::None), other) {
            (current, Scan::None) => current,
            (Scan::None, other) => other,
            (Scan::Several, _) | (_, Scan::Several) => Scan::Several,
            (Scan::One(a), Scan::One(b)) => {
                if *a == *b {
                    Scan::One(a)
                } else {
                    Scan::Several
                }
            }
        };
    }

    fn several(&self) -> bool {
        matches!(self, Scan::Several)
    }
}

impl FederateSources {
    /// The compute context of the one source `plan` reads, if it reads one.
    fn source_of(&self, plan: &LogicalPlan) -> Result<Option<String>> {
        Ok(match self.scan_plan(plan)? {
            Scan::One(provider) => provider.compute_context(),
            Scan::None | Scan::Several => None,
        })
    }

    /// Splits each filter over one source into the conjuncts the source
    /// evaluates exactly (pushed) and the rest (kept in DataFusion, above):
    /// `w = 'apple' AND id > 0` on MySQL pushes `id > 0` only.
    fn split_filters(&self, plan: LogicalPlan) -> Result<LogicalPlan> {
        plan.transform_up(|node| {
            let LogicalPlan::Filter(filter) = &node else {
                return Ok(Transformed::no(node));
            };
            let Scan::One(provider) = self.scan_plan(&filter.input)? else {
                return Ok(Transformed::no(node));
            };
            let Some(kind) = provider
                .compute_context()
                .and_then(|c| self.kinds.get(&c).copied())
            else {
                return Ok(Transformed::no(node));
            };
            let schema = filter.input.schema();
            let (pushed, local): (Vec<&Expr>, Vec<&Expr>) = split_conjunction(&filter.predicate)
                .into_iter()
                .partition(|e| pushdown::expr_is_pushable(e, schema, kind));
            let (Some(pushed), Some(local)) = (
                conjunction(pushed.into_iter().cloned()),
                conjunction(local.into_iter().cloned()),
            ) else {
                return Ok(Transformed::no(node));
            };
            let below = LogicalPlan::Filter(Filter::try_new(pushed, filter.input.clone())?);
            Ok(Transformed::yes(LogicalPlan::Filter(Filter::try_new(
                local,
                Arc::new(below),
            )?)))
        })
        .map(|t| t.data)
    }

    /// Recursively federates the largest single-source sub-plans. Returns
    /// the rewritten plan when something was federated below or at `plan`,
    /// and which sources `plan` touches.
    fn optimize(
        &self,
        plan: &LogicalPlan,
        is_root: bool,
        config: &dyn OptimizerConfig,
    ) -> Result<(Option<LogicalPlan>, Scan)> {
        if matches!(plan, LogicalPlan::Extension(Extension { node }) if node.name() == "Federated")
        {
            return Ok((None, Scan::Several));
        }
        let leaf = leaf_provider(plan)?;
        let exprs = self.scan_exprs(plan)?;
        let exprs_touch_sources = !matches!(exprs, Scan::None);
        if let Some(provider) = &leaf {
            let same = match &exprs {
                Scan::None => true,
                Scan::One(p) => **p == **provider,
                Scan::Several => false,
            };
            if same {
                return Ok((None, Scan::One(provider.clone())));
            }
        }
        let mut sole = leaf.map_or(Scan::None, Scan::One);
        sole.merge(exprs);
        let inputs = plan.inputs();
        if inputs.is_empty() && matches!(sole, Scan::None) {
            return Ok((None, Scan::None));
        }
        let results = inputs
            .iter()
            .map(|i| self.optimize(i, false, config))
            .collect::<Result<Vec<_>>>()?;
        for (_, scan) in &results {
            sole.merge(scan.clone());
        }
        match &sole {
            Scan::None => return Ok((None, Scan::None)),
            Scan::One(provider) if self.pushable(plan, provider) => {
                if !is_root {
                    return Ok((None, sole));
                }
                if !matches!(plan, LogicalPlan::Analyze(_)) {
                    let Some(optimizer) = provider.optimizer() else {
                        return Ok((None, Scan::None));
                    };
                    return Ok((
                        Some(optimizer.optimize(plan.clone(), config, |_, _| {})?),
                        Scan::None,
                    ));
                }
            }
            // Several sources, or one source that would evaluate this node
            // differently: federate each input on its own.
            _ => {}
        }
        let new_inputs = results
            .into_iter()
            .zip(inputs.iter())
            .map(|((optimized, scan), original)| {
                if let Some(optimized) = optimized {
                    return Ok(optimized);
                }
                let original = (*original).clone();
                let Scan::One(provider) = scan else {
                    return Ok(original);
                };
                let Some(optimizer) = provider.optimizer() else {
                    return Ok(original);
                };
                optimizer.optimize(wrap_projection(original)?, config, |_, _| {})
            })
            .collect::<Result<Vec<_>>>()?;
        let new_exprs = if exprs_touch_sources {
            self.optimize_exprs(plan, config)?
        } else {
            plan.expressions()
        };
        Ok((
            Some(plan.with_new_exprs(new_exprs, new_inputs)?),
            Scan::Several,
        ))
    }

    /// Which sources the sub-queries in a node's expressions touch.
    fn scan_exprs(&self, plan: &LogicalPlan) -> Result<Scan> {
        let mut sole = Scan::None;
        for expr in plan.expressions() {
            sole.merge(self.scan_expr(&expr)?);
            if sole.several() {
                break;
            }
        }
        Ok(sole)
    }

    fn scan_expr(&self, expr: &Expr) -> Result<Scan> {
        let mut sole = Scan::None;
        expr.apply(|e| match e {
            Expr::ScalarSubquery(subquery) => {
                sole.merge(self.scan_plan(&subquery.subquery)?);
                Ok(if sole.several() {
                    TreeNodeRecursion::Stop
                } else {
                    TreeNodeRecursion::Continue
                })
            }
            Expr::InSubquery(_) => not_impl_err!("IN (subquery) left after decorrelation"),
            // Correlated sub-queries are federated lower in the tree.
            Expr::OuterReferenceColumn(..) => {
                sole = Scan::Several;
                Ok(TreeNodeRecursion::Stop)
            }
            _ => Ok(TreeNodeRecursion::Continue),
        })?;
        Ok(sole)
    }

    fn scan_plan(&self, plan: &LogicalPlan) -> Result<Scan> {
        let mut sole = Scan::None;
        plan.apply(|node| {
            sole.merge(self.scan_exprs(node)?);
            if let Some(provider) = leaf_provider(node)? {
                sole.merge(Scan::One(provider));
            }
            Ok(if sole.several() {
                TreeNodeRecursion::Stop
            } else {
                TreeNodeRecursion::Continue
            })
        })?;
        Ok(sole)
    }

    /// Federates every scalar sub-query of a node on its own.
    fn optimize_exprs(
        &self,
        plan: &LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Vec<Expr>> {
        plan.expressions()
            .into_iter()
            .map(|expr| {
                expr.transform(|e| match e {
                    Expr::ScalarSubquery(ref subquery) => {
                        let (optimized, _) = self.optimize(&subquery.subquery, true, config)?;
                        Ok(match optimized {
                            Some(plan) => Transformed::yes(Expr::ScalarSubquery(
                                subquery.with_plan(plan.into()),
                            )),
                            None => Transformed::no(e),
                        })
                    }
                    Expr::InSubquery(_) => not_impl_err!("IN (subquery) left after decorrelation"),
                    other => Ok(Transformed::no(other)),
                })
                .map(|t| t.data)
            })
            .collect()
    }
}

/// The source of a table scan; tables DataFusion serves itself get a
/// placeholder source that is never federated.
fn leaf_provider(plan: &LogicalPlan) -> Result<Option<FederationProviderRef>> {
    let LogicalPlan::TableScan(TableScan { source, .. }) = plan else {
        return Ok(None);
    };
    Ok(Some(match get_table_source(source)? {
        Some(federated) => federated.federation_provider(),
        None => Arc::new(LocalTables),
    }))
}

struct LocalTables;

impl FederationProvider for LocalTables {
    fn name(&self) -> &str {
        "local"
    }

    fn compute_context(&self) -> Option<String> {
        None
    }

    fn optimizer(&self) -> Option<Arc<Optimizer>> {
        None
    }
}

/// `plan` under a projection of all its columns (same schema).
pub fn project_all(plan: LogicalPlan) -> Result<LogicalPlan> {
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

fn wrap_projection(plan: LogicalPlan) -> Result<LogicalPlan> {
    match plan {
        LogicalPlan::Projection(_) => Ok(plan),
        other => project_all(other),
    }
}
