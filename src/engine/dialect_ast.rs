//! After unparsing: what SQL Server and Oracle spell differently and
//! DataFusion's unparser has no hook for. Row limits become `TOP (n)` or
//! `OFFSET m ROWS FETCH FIRST n ROWS ONLY` (SQL Server needs an ORDER BY
//! for OFFSET; `ORDER BY (SELECT NULL)` keeps the source's order when the
//! plan has none); Oracle's table aliases lose their `AS` (an error there)
//! and its `CAST('…' AS DATE)` literals become `DATE '…'` (the cast reads
//! the session's date format); SQL Server's bracketed names double a `]`
//! they contain (sqlparser writes `[name]` verbatim). On every source,
//! DataFusion's `count(1)` is sent as `count(*)`.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, Expr, Fetch, LimitClause, Offset, OffsetRows, OrderBy, OrderByExpr, OrderByKind,
    OrderByOptions, Query, SelectItem, SetExpr, TableFactor, Top, TopQuantity, VisitMut,
    VisitorMut,
};
use tributary_schema_cache::SourceKind;

/// A statement as a source of `kind` reads it.
pub fn respell(mut statement: ast::Statement, kind: SourceKind) -> ast::Statement {
    if let Some(mut respell) = Respell::for_kind(kind) {
        let _ = statement.visit(&mut respell);
    }
    if matches!(
        kind,
        SourceKind::Mysql | SourceKind::Mariadb | SourceKind::Sqlserver | SourceKind::Oracle
    ) {
        let _ = statement.visit(&mut FramelessRankings);
    }
    let _ = statement.visit(&mut CountRows);
    statement
}

/// `count(1)`, DataFusion's spelling of counting rows, as `count(*)`: the
/// same count, which PostgreSQL computes without evaluating an argument
/// per row (a few percent of a grouped scan).
struct CountRows;

impl VisitorMut for CountRows {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Function(function) = expr
            && function.name.to_string().eq_ignore_ascii_case("count")
            && let ast::FunctionArguments::List(list) = &mut function.args
            && list.duplicate_treatment.is_none()
            && let [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(Expr::Value(value)))] =
                list.args.as_slice()
            && value.value == ast::Value::Number("1".into(), false)
        {
            list.args = vec![ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Wildcard)];
        }
        ControlFlow::Continue(())
    }
}

/// `row_number()`, `rank()`, `dense_rank()` `OVER (…)` without the frame
/// the unparser writes: MariaDB (error 4017), SQL Server and Oracle refuse
/// a frame there, and they ignore it anyway.
struct FramelessRankings;

impl VisitorMut for FramelessRankings {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Function(function) = expr
            && let Some(ast::WindowType::WindowSpec(spec)) = &mut function.over
            && ["row_number", "rank", "dense_rank"]
                .iter()
                .any(|name| function.name.to_string().eq_ignore_ascii_case(name))
        {
            spec.window_frame = None;
        }
        ControlFlow::Continue(())
    }
}

/// An expression (a runtime filter's condition) as a source of `kind` reads it.
pub fn respell_expr(mut expr: Expr, kind: SourceKind) -> Expr {
    if let Some(mut respell) = Respell::for_kind(kind) {
        let _ = expr.visit(&mut respell);
    }
    expr
}

/// `AS` before a derived table's alias where the source takes it (Oracle does not).
pub fn derived_table_alias(kind: SourceKind) -> &'static str {
    if kind == SourceKind::Oracle {
        " "
    } else {
        " AS "
    }
}

struct Respell {
    oracle: bool,
}

impl Respell {
    fn for_kind(kind: SourceKind) -> Option<Self> {
        match kind {
            SourceKind::Sqlserver => Some(Self { oracle: false }),
            SourceKind::Oracle => Some(Self { oracle: true }),
            _ => None,
        }
    }

    /// SQL Server refuses an ORDER BY in a derived table without `TOP` or
    /// `OFFSET`; `OFFSET 0 ROWS` keeps the order and makes a statement valid
    /// where it is nested (a runtime filter wraps statements in one).
    fn order_without_limit(&self, query: &mut Query) {
        let top = matches!(query.body.as_ref(), SetExpr::Select(select) if select.top.is_some());
        if !self.oracle && query.order_by.is_some() && query.fetch.is_none() && !top {
            query.limit_clause = Some(LimitClause::LimitOffset {
                limit: None,
                offset: Some(Offset {
                    value: Expr::value(ast::Value::Number("0".into(), false)),
                    rows: OffsetRows::Rows,
                }),
                limit_by: vec![],
            });
        }
    }

    fn limits(&self, query: &mut Query) {
        let Some(LimitClause::LimitOffset { limit, offset, .. }) = query.limit_clause.take() else {
            self.order_without_limit(query);
            return;
        };
        if limit.is_none() && offset.is_none() {
            self.order_without_limit(query);
            return;
        }
        if !self.oracle
            && offset.is_none()
            && let (Some(n), SetExpr::Select(select)) = (&limit, query.body.as_mut())
            && select.top.is_none()
        {
            select.top = Some(Top {
                with_ties: false,
                percent: false,
                quantity: Some(TopQuantity::Expr(n.clone())),
            });
            return;
        }
        if !self.oracle && query.order_by.is_none() {
            query.order_by = Some(OrderBy {
                kind: OrderByKind::Expressions(vec![OrderByExpr {
                    expr: select_null(),
                    options: OrderByOptions::default(),
                    with_fill: None,
                }]),
                interpolate: None,
            });
        }
        // SQL Server's FETCH needs an OFFSET before it; Oracle's does not.
        let offset = match offset {
            Some(offset) => Some(offset),
            None if !self.oracle => Some(Offset {
                value: Expr::value(ast::Value::Number("0".into(), false)),
                rows: OffsetRows::Rows,
            }),
            None => None,
        };
        query.limit_clause = offset.map(|offset| LimitClause::LimitOffset {
            limit: None,
            offset: Some(Offset {
                rows: OffsetRows::Rows,
                ..offset
            }),
            limit_by: vec![],
        });
        query.fetch = limit.map(|n| Fetch {
            with_ties: false,
            percent: false,
            quantity: Some(n),
        });
    }
}

/// `(SELECT NULL)`: an ORDER BY that orders nothing.
fn select_null() -> Expr {
    let select = ast::Select {
        select_token: ast::helpers::attached_token::AttachedToken::empty(),
        optimizer_hints: vec![],
        distinct: None,
        select_modifiers: None,
        top: None,
        top_before_distinct: false,
        projection: vec![SelectItem::UnnamedExpr(Expr::value(ast::Value::Null))],
        exclude: None,
        into: None,
        from: vec![],
        lateral_views: vec![],
        prewhere: None,
        selection: None,
        group_by: ast::GroupByExpr::Expressions(vec![], vec![]),
        cluster_by: vec![],
        distribute_by: vec![],
        sort_by: vec![],
        having: None,
        named_window: vec![],
        qualify: None,
        window_before_qualify: false,
        value_table_mode: None,
        connect_by: vec![],
        flavor: ast::SelectFlavor::Standard,
    };
    Expr::Subquery(Box::new(Query {
        with: None,
        body: Box::new(SetExpr::Select(Box::new(select))),
        order_by: None,
        limit_clause: None,
        fetch: None,
        locks: vec![],
        for_clause: None,
        settings: None,
        format_clause: None,
        pipe_operators: vec![],
    }))
}

/// `]` doubled inside a bracketed SQL Server name.
fn escape_bracketed(ident: &mut ast::Ident) {
    if ident.quote_style == Some('[') && ident.value.contains(']') {
        ident.value = ident.value.replace(']', "]]");
    }
}

impl VisitorMut for Respell {
    type Break = ();

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        self.limits(query);
        ControlFlow::Continue(())
    }

    fn post_visit_select(&mut self, select: &mut ast::Select) -> ControlFlow<()> {
        if !self.oracle {
            for item in &mut select.projection {
                if let SelectItem::ExprWithAlias { alias, .. } = item {
                    escape_bracketed(alias);
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_relation(&mut self, relation: &mut ast::ObjectName) -> ControlFlow<()> {
        if !self.oracle {
            for part in &mut relation.0 {
                if let ast::ObjectNamePart::Identifier(ident) = part {
                    escape_bracketed(ident);
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let alias = match factor {
            TableFactor::Table { alias, .. } | TableFactor::Derived { alias, .. } => alias,
            _ => return ControlFlow::Continue(()),
        };
        if let Some(alias) = alias {
            if self.oracle {
                alias.explicit = false;
            } else {
                escape_bracketed(&mut alias.name);
                for column in &mut alias.columns {
                    escape_bracketed(&mut column.name);
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::Identifier(ident) if !self.oracle => escape_bracketed(ident),
            Expr::CompoundIdentifier(parts) if !self.oracle => {
                parts.iter_mut().for_each(escape_bracketed);
            }
            Expr::Cast {
                expr: inner,
                data_type: data_type @ (ast::DataType::Date | ast::DataType::Timestamp(..)),
                format: None,
                ..
            } if self.oracle => {
                if let Expr::Value(value) = inner.as_ref()
                    && let ast::Value::SingleQuotedString(_) = value.value
                {
                    *expr = Expr::TypedString(ast::TypedString {
                        data_type: data_type.clone(),
                        value: value.clone(),
                        uses_odbc_syntax: false,
                    });
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::logical_expr::table_scan;
    use datafusion::prelude::{col, lit};
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    use datafusion::sql::unparser::Unparser;

    use super::*;
    use crate::engine::dialect::for_kind;

    fn respelled(sql: &str, kind: SourceKind) -> String {
        let statement = Parser::parse_sql(&GenericDialect {}, sql)
            .unwrap()
            .remove(0);
        respell(statement, kind).to_string()
    }

    #[test]
    fn sqlserver_strings_are_national_literals_with_quotes_doubled() {
        let dialect = for_kind(SourceKind::Sqlserver);
        let condition =
            col("name").in_list(vec![lit("O'Brien'); DROP TABLE x; --"), lit("Zoë")], false);
        let sql = Unparser::new(dialect.as_ref())
            .expr_to_sql(&condition)
            .unwrap();
        assert_eq!(
            respell_expr(sql, SourceKind::Sqlserver).to_string(),
            "[name] IN (N'O''Brien''); DROP TABLE x; --', N'Zoë')"
        );
    }

    #[test]
    fn mysql_row_numbers_lose_their_frame() {
        let sql = "SELECT row_number() OVER (PARTITION BY g ORDER BY id ASC ROWS BETWEEN UNBOUNDED \
                   PRECEDING AND UNBOUNDED FOLLOWING) AS n, sum(x) OVER (ORDER BY id ROWS BETWEEN \
                   1 PRECEDING AND CURRENT ROW) AS s FROM t";
        for kind in [SourceKind::Mysql, SourceKind::Mariadb] {
            assert_eq!(
                respelled(sql, kind),
                "SELECT row_number() OVER (PARTITION BY g ORDER BY id ASC) AS n, sum(x) OVER \
                 (ORDER BY id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS s FROM t"
            );
        }
        assert!(respelled(sql, SourceKind::Postgres).contains("UNBOUNDED FOLLOWING"));
    }

    #[test]
    fn counts_of_one_count_rows() {
        let sql = "SELECT g, count(1) AS n, count(DISTINCT 1) AS d, count(x) AS c, count(10) AS t \
                   FROM t GROUP BY g";
        for kind in [
            SourceKind::Postgres,
            SourceKind::Mysql,
            SourceKind::Mariadb,
            SourceKind::Sqlserver,
            SourceKind::Oracle,
        ] {
            assert!(
                respelled(sql, kind).starts_with(
                    "SELECT g, count(*) AS n, count(DISTINCT 1) AS d, count(x) AS c, count(10) AS t"
                ),
                "{kind:?}: {}",
                respelled(sql, kind)
            );
        }
    }

    #[test]
    fn sqlserver_brackets_double_a_closing_bracket() {
        let dialect = for_kind(SourceKind::Sqlserver);
        let sql = Unparser::new(dialect.as_ref())
            .expr_to_sql(&col("we]ird").eq(lit(1_i64)))
            .unwrap();
        assert_eq!(
            respell_expr(sql, SourceKind::Sqlserver).to_string(),
            "([we]]ird] = 1)"
        );
        let schema = Schema::new(vec![Field::new("a]b", DataType::Int64, false)]);
        let plan = table_scan(Some("t]"), &schema, None)
            .unwrap()
            .project(vec![col("a]b").alias("c]d")])
            .unwrap()
            .alias("u]")
            .unwrap()
            .build()
            .unwrap();
        let statement = Unparser::new(dialect.as_ref()).plan_to_sql(&plan).unwrap();
        assert_eq!(
            respell(statement, SourceKind::Sqlserver).to_string(),
            "SELECT * FROM (SELECT [t]]].[a]]b] AS [c]]d] FROM [t]]]) AS [u]]]"
        );
    }

    #[test]
    fn row_limits_per_dialect() {
        let cases = [
            (
                "SELECT a FROM t LIMIT 3",
                "SELECT TOP (3) a FROM t",
                "SELECT a FROM t FETCH FIRST 3 ROWS ONLY",
            ),
            (
                "SELECT a FROM t ORDER BY a LIMIT 3 OFFSET 2",
                "SELECT a FROM t ORDER BY a OFFSET 2 ROWS FETCH FIRST 3 ROWS ONLY",
                "SELECT a FROM t ORDER BY a OFFSET 2 ROWS FETCH FIRST 3 ROWS ONLY",
            ),
            (
                "SELECT a FROM t OFFSET 2",
                "SELECT a FROM t ORDER BY (SELECT NULL) OFFSET 2 ROWS",
                "SELECT a FROM t OFFSET 2 ROWS",
            ),
            (
                "SELECT a FROM t UNION ALL SELECT a FROM u LIMIT 1",
                "SELECT a FROM t UNION ALL SELECT a FROM u ORDER BY (SELECT NULL) OFFSET 0 ROWS FETCH FIRST 1 ROWS ONLY",
                "SELECT a FROM t UNION ALL SELECT a FROM u FETCH FIRST 1 ROWS ONLY",
            ),
            ("SELECT a FROM t", "SELECT a FROM t", "SELECT a FROM t"),
            (
                "SELECT a FROM (SELECT a FROM t ORDER BY a) AS d ORDER BY a",
                "SELECT a FROM (SELECT a FROM t ORDER BY a OFFSET 0 ROWS) AS d ORDER BY a OFFSET 0 ROWS",
                "SELECT a FROM (SELECT a FROM t ORDER BY a) d ORDER BY a",
            ),
        ];
        for (sql, sqlserver, oracle) in cases {
            assert_eq!(respelled(sql, SourceKind::Sqlserver), sqlserver, "{sql}");
            assert_eq!(respelled(sql, SourceKind::Oracle), oracle, "{sql}");
            assert_eq!(respelled(sql, SourceKind::Postgres), sql, "{sql}");
        }
    }

    #[test]
    fn oracle_aliases_without_as_and_typed_date_literals() {
        assert_eq!(
            respelled(
                "SELECT x.a FROM s.t AS x JOIN (SELECT b FROM u) AS y ON x.a = y.b \
                 WHERE x.d >= CAST('2024-01-01' AS DATE) AND x.e < CAST('2024-06-01 12:30:00' AS TIMESTAMP)",
                SourceKind::Oracle
            ),
            "SELECT x.a FROM s.t x JOIN (SELECT b FROM u) y ON x.a = y.b \
             WHERE x.d >= DATE '2024-01-01' AND x.e < TIMESTAMP '2024-06-01 12:30:00'"
        );
        assert_eq!(derived_table_alias(SourceKind::Oracle), " ");
        assert_eq!(derived_table_alias(SourceKind::Sqlserver), " AS ");
    }
}
