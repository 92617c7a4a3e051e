//! What may run inside a source without changing the answer. Our SQL
//! semantics are PostgreSQL's; a plan node or expression that a source would
//! evaluate differently stays in DataFusion. Unknown functions and
//! expressions are not pushed (an allow-list, per source kind).
//!
//! | | PostgreSQL (KingbaseES) | MySQL / MariaDB | SQLite | SQL Server | Oracle |
//! |---|---|---|---|---|---|
//! | string `=`, `<`, `IN`, `BETWEEN` | yes | yes, with the UTF-8 bytes compared too (collations ignore case and trailing spaces; see `mysql_strings`) | yes (BINARY collation) | no (default collations ignore case and trailing spaces) | yes (the connector's sessions compare BINARY); not with `''`, which is NULL there |
//! | `LIKE` / `ILIKE` | yes | LIKE with a literal pattern without `_` or `\\`, as bytes; no ILIKE | no (case-insensitive for ASCII) | no | LIKE with a non-empty literal pattern; no ILIKE |
//! | `~ ~* !~ !~*` (regular expressions) | yes | no (REGEXP follows the collation's case) | no | no | no |
//! | `/`, `%` | yes | no (`/` of integers is a decimal) | yes | of integers only (decimal scales differ) | no (`/` is exact, no `%`) |
//! | `\|\|` | yes | no (it is OR) | yes | no (none) | no (NULL is `''` there) |
//! | GROUP BY on strings | yes | yes, by the bytes too | yes | no | yes |
//! | DISTINCT / MIN / MAX on strings | yes | no (collation) | yes | no | yes |
//! | ORDER BY | yes | top-N only (with LIMIT), strings by their bytes, NULLs placed by a leading `k IS NULL` key where MySQL's own order (NULLs first ascending) differs | yes (NULLS FIRST/LAST written out) | top-N only, no strings, NULLs placed as MySQL's (with `CASE WHEN k IS NULL THEN 1 ELSE 0 END`) | yes |
//! | FULL OUTER JOIN | yes | no (none) | yes | yes (not on string keys) | yes |
//! | booleans (literals, bare boolean columns, `IS TRUE`) | yes | yes | yes | no (`bit` is no boolean) | no (none before 23ai) |
//! | `IS [NOT] DISTINCT FROM` | yes | yes | yes | no | no |
//! | functions | abs ceil floor coalesce nullif upper lower length character_length substr trim replace concat date_trunc | abs ceil floor coalesce nullif upper lower character_length | abs coalesce nullif length substr | abs coalesce nullif floor upper lower | abs coalesce nullif ceil floor upper lower |
//! | aggregates | count sum min max avg | count (not DISTINCT) sum avg, min/max on non-strings | count sum min max | count, sum of bigint/decimal/float (an int sum is an int there), min/max on non-strings (avg of integers is an integer there) | count sum min max avg |
//! | date/time comparisons | yes | yes | no (stored as text, numbers or Julian days) | yes | yes (typed literals) |
//! | casts | between numeric types | between numeric types | between numeric types | from integers to numeric types | from integers to numeric types |
//! | window functions | `row_number()`, `rank()`, `dense_rank()` over pushable keys | the same, text by its bytes (MySQL 8, MariaDB 10.2) | no | the same on keys that are not text | the same |
//! | subquery expressions | no (run in DataFusion) | no | no | no | no |
//! | JSON document tests (`$jsonContains`, `$hasKey`, … on `json`/`jsonb`) | as jsonb's `@> <@ ?\| ?&` (PostgreSQL only) | no | no | no | no |
//! | a JSON column's text (`json_text`: string comparisons, sort, grouping) | `CAST(doc AS TEXT)` | MariaDB: the column (its `JSON` is `LONGTEXT`); MySQL: `CAST(doc AS CHAR)` (its `JSON` compares as JSON); both then compared by their bytes as any string | no | no | no |
//!
//! KingbaseES follows PostgreSQL, except that `''` is not pushed (in its
//! Oracle compatibility mode it is NULL) and neither are the JSON document
//! tests (its jsonb depends on the version and mode).

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::expr::{AggregateFunction, Sort};
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, JoinType, LogicalPlan, Operator};
use tributary_schema_cache::SourceKind;

/// True when `node` (its own work, not its inputs) evaluates in a source of
/// `kind` exactly as DataFusion would.
pub fn node_is_pushable(node: &LogicalPlan, kind: SourceKind) -> bool {
    let all =
        |exprs: &[Expr], schema: &DFSchema| exprs.iter().all(|e| expr_is_pushable(e, schema, kind));
    match node {
        LogicalPlan::TableScan(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::Union(_) => true,
        LogicalPlan::Projection(p) => all(&p.expr, p.input.schema()),
        LogicalPlan::Filter(f) => expr_is_pushable(&f.predicate, f.input.schema(), kind),
        LogicalPlan::Aggregate(a) => {
            let schema = a.input.schema();
            all(&a.group_expr, schema)
                && !(folds_strings(kind) && a.group_expr.iter().any(|e| is_string(e, schema)))
                && a.aggr_expr
                    .iter()
                    .all(|e| aggregate_is_pushable(e, schema, kind))
        }
        // MySQL and MariaDB may ignore ORDER BY inside a derived table unless
        // a LIMIT goes with it: only top-N sorts go there.
        LogicalPlan::Sort(s) => {
            (s.fetch.is_some() || !sorts_need_limit(kind))
                && s.expr
                    .iter()
                    .all(|sort| sort_is_pushable(sort, s.input.schema(), kind))
        }
        LogicalPlan::Join(j) => {
            let mysql = is_mysql(kind);
            // Semi and anti joins are written `WHERE [NOT] EXISTS (…)`; a
            // null-aware anti join (`NOT IN`) is not `NOT EXISTS` when NULLs
            // come along, so it stays here.
            let join_type_ok = !(mysql && j.join_type == JoinType::Full)
                && (matches!(
                    j.join_type,
                    JoinType::Inner
                        | JoinType::Left
                        | JoinType::Right
                        | JoinType::Full
                        | JoinType::LeftSemi
                ) || j.join_type == JoinType::LeftAnti && !j.null_aware);
            let keys_ok = j.on.iter().all(|(l, r)| {
                expr_is_pushable(l, j.left.schema(), kind)
                    && expr_is_pushable(r, j.right.schema(), kind)
                    && !(folds_strings(kind) && is_string(l, j.left.schema()))
            });
            let filter_ok = j
                .filter
                .as_ref()
                .is_none_or(|f| expr_is_pushable(f, &j.schema, kind));
            join_type_ok && keys_ok && filter_ok
        }
        // `row_number()`, `rank()`, `dense_rank()` per key (a nested
        // relation's page per parent, `distinct_on`, a top-N per group):
        // PostgreSQL numbers rows as we do, MySQL 8 and MariaDB 10.2 too
        // (text keys by their bytes), SQL Server on keys that are not text,
        // KingbaseES as PostgreSQL, Oracle (its sessions compare text
        // binary, NULLS FIRST/LAST written out).
        LogicalPlan::Window(w) => {
            kind != SourceKind::Sqlite
                && w.window_expr
                    .iter()
                    .all(|e| ranking_is_pushable(e, w.input.schema(), kind))
        }
        LogicalPlan::Distinct(d) => {
            !(is_mysql(kind) || folds_strings(kind))
                || d.input()
                    .schema()
                    .fields()
                    .iter()
                    .all(|f| !is_string_type(f.data_type()))
        }
        _ => false,
    }
}

/// `row_number()`, `rank()` or `dense_rank()` `OVER (PARTITION BY … ORDER
/// BY …) AS name` over pushable keys (they ignore a frame). Only under a
/// name (SQL's are given one by `window_names`): the unparser would refer
/// to an unnamed window's output by its display name, too long an
/// identifier. On MySQL and MariaDB text keys partition and order by their
/// bytes (`mysql_strings`), not by the collation, so peers are equal
/// strings; on SQL Server no key may be text (nothing makes its collation
/// exact).
fn ranking_is_pushable(expr: &Expr, schema: &DFSchema, kind: SourceKind) -> bool {
    let Expr::Alias(alias) = expr else {
        return false;
    };
    let Expr::WindowFunction(window) = alias.expr.as_ref() else {
        return false;
    };
    matches!(window.fun.name(), "row_number" | "rank" | "dense_rank")
        && window.params.args.is_empty()
        && window.params.filter.is_none()
        && window.params.partition_by.iter().all(|e| {
            expr_is_pushable(e, schema, kind) && !(folds_strings(kind) && is_string(e, schema))
        })
        && window
            .params
            .order_by
            .iter()
            .all(|sort| sort_is_pushable(sort, schema, kind))
}

fn is_mysql(kind: SourceKind) -> bool {
    matches!(kind, SourceKind::Mysql | SourceKind::Mariadb)
}

/// An ORDER BY inside a derived table is ignored (MySQL) or refused (SQL
/// Server) unless a row limit goes with it.
fn sorts_need_limit(kind: SourceKind) -> bool {
    is_mysql(kind) || kind == SourceKind::Sqlserver
}

/// Strings compare by a collation that ignores case and trailing spaces
/// (SQL Server's defaults), and nothing here makes them exact.
fn folds_strings(kind: SourceKind) -> bool {
    kind == SourceKind::Sqlserver
}

/// No boolean values in SQL: SQL Server's `bit` and Oracle's `NUMBER(1)`
/// cannot stand as a condition or be compared with `TRUE`.
fn lacks_booleans(kind: SourceKind) -> bool {
    matches!(kind, SourceKind::Sqlserver | SourceKind::Oracle)
}

/// `''` is NULL (Oracle; KingbaseES in its Oracle mode).
fn empty_string_is_null(kind: SourceKind) -> bool {
    matches!(kind, SourceKind::Oracle | SourceKind::Kingbase)
}

/// Values a source of `kind` orders or matches otherwise than we do: dates
/// in SQLite (text, numbers or Julian days), strings in SQL Server.
fn compared_differently(expr: &Expr, schema: &DFSchema, kind: SourceKind) -> bool {
    (kind == SourceKind::Sqlite && is_temporal(expr, schema))
        || (folds_strings(kind) && is_string(expr, schema))
}

/// An integer narrower than 64 bits.
fn is_narrow_integer(expr: &Expr, schema: &DFSchema) -> bool {
    expr.get_type(schema)
        .is_ok_and(|t| t.is_integer() && !matches!(t, DataType::Int64 | DataType::UInt64))
}

fn is_integer(expr: &Expr, schema: &DFSchema) -> bool {
    expr.get_type(schema).is_ok_and(|t| t.is_integer())
}

fn is_string_type(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ) || matches!(data_type, DataType::Dictionary(_, v) if is_string_type(v))
}

fn is_string(expr: &Expr, schema: &DFSchema) -> bool {
    expr.get_type(schema).is_ok_and(|t| is_string_type(&t))
}

fn is_temporal(expr: &Expr, schema: &DFSchema) -> bool {
    expr.get_type(schema).is_ok_and(|t| t.is_temporal())
}

fn is_numeric(data_type: &DataType) -> bool {
    data_type.is_numeric()
}

fn sort_is_pushable(sort: &Sort, schema: &DFSchema, kind: SourceKind) -> bool {
    if !expr_is_pushable(&sort.expr, schema, kind)
        || (folds_strings(kind) && is_string(&sort.expr, schema))
    {
        return false;
    }
    // MySQL and SQL Server cannot write NULLS FIRST/LAST: a leading key
    // places the NULLs where ours go (`null_order`).
    true
}

fn aggregate_is_pushable(expr: &Expr, schema: &DFSchema, kind: SourceKind) -> bool {
    let expr = match expr {
        Expr::Alias(alias) => alias.expr.as_ref(),
        other => other,
    };
    let Expr::AggregateFunction(AggregateFunction { func, params }) = expr else {
        return false;
    };
    if params.filter.is_some() || !params.order_by.is_empty() {
        return false;
    }
    if !params
        .args
        .iter()
        .all(|a| expr_is_pushable(a, schema, kind))
    {
        return false;
    }
    let strings = params.args.iter().any(|a| is_string(a, schema));
    match (func.name(), kind) {
        ("count", SourceKind::Mysql | SourceKind::Mariadb) => !params.distinct,
        ("count", SourceKind::Sqlserver) => !(params.distinct && strings),
        ("count", _) => true,
        // SQL Server sums an int column as int: past 2^31 it fails where we
        // answer.
        ("sum", SourceKind::Sqlserver) => {
            !params.distinct && params.args.iter().all(|a| !is_narrow_integer(a, schema))
        }
        ("sum", _) => !params.distinct,
        // SQL Server's avg of integers is an integer; SQLite's is a double.
        (
            "avg",
            SourceKind::Postgres
            | SourceKind::Kingbase
            | SourceKind::Mysql
            | SourceKind::Mariadb
            | SourceKind::Oracle,
        ) => !params.distinct,
        ("min" | "max", SourceKind::Mysql | SourceKind::Mariadb | SourceKind::Sqlserver) => {
            !strings
        }
        ("min" | "max", _) => true,
        _ => false,
    }
}

/// True when `expr` evaluates the same in a source of `kind`.
pub fn expr_is_pushable(expr: &Expr, schema: &DFSchema, kind: SourceKind) -> bool {
    let pushable = |e: &Expr| expr_is_pushable(e, schema, kind);
    match expr {
        Expr::Column(_) => {
            !(lacks_booleans(kind) && expr.get_type(schema).is_ok_and(|t| t == DataType::Boolean))
        }
        Expr::Literal(value, _) => literal_is_pushable(value, kind),
        // An open parameter (the fast path plans with them): PostgreSQL
        // binds `$n` itself.
        Expr::Placeholder(_) => kind == SourceKind::Postgres,
        Expr::Alias(alias) => pushable(&alias.expr),
        Expr::Not(e) | Expr::IsNull(e) | Expr::IsNotNull(e) | Expr::Negative(e) => pushable(e),
        Expr::IsTrue(e) | Expr::IsFalse(e) => !lacks_booleans(kind) && pushable(e),
        Expr::BinaryExpr(binary) => binary_is_pushable(binary, schema, kind),
        Expr::Between(between) => {
            !compared_differently(&between.expr, schema, kind)
                && pushable(&between.expr)
                && pushable(&between.low)
                && pushable(&between.high)
        }
        Expr::InList(list) => {
            !compared_differently(&list.expr, schema, kind)
                && pushable(&list.expr)
                && list.list.iter().all(pushable)
        }
        Expr::Like(like) => {
            like.escape_char.is_none()
                && pushable(&like.expr)
                && pushable(&like.pattern)
                && match kind {
                    SourceKind::Postgres | SourceKind::Kingbase => true,
                    // Compared as bytes there (mysql_strings): exact while `_`
                    // (one byte there, one character here) and escapes are absent.
                    SourceKind::Mysql | SourceKind::Mariadb => {
                        !like.case_insensitive
                            && super::mysql_strings::byte_like_pattern(&like.pattern)
                    }
                    // Case-sensitive under the connector's BINARY sessions;
                    // a pattern of `''` would be NULL.
                    SourceKind::Oracle => {
                        !like.case_insensitive
                            && matches!(like.pattern.as_ref(), Expr::Literal(v, _) if !v.is_null())
                    }
                    SourceKind::Sqlite | SourceKind::Sqlserver => false,
                }
        }
        Expr::Case(case) => {
            case.expr.as_deref().is_none_or(pushable)
                && case
                    .when_then_expr
                    .iter()
                    .all(|(w, t)| pushable(w) && pushable(t))
                && case.else_expr.as_deref().is_none_or(pushable)
        }
        // SQL Server truncates a decimal cast to an integer; casts there and
        // to Oracle start from integers.
        Expr::Cast(cast) => {
            pushable(&cast.expr)
                && is_numeric(cast.field.data_type())
                && cast.expr.get_type(schema).is_ok_and(|t| is_numeric(&t))
                && (!lacks_booleans(kind) || is_integer(&cast.expr, schema))
        }
        // A JSON document's text: MariaDB's `JSON` is `LONGTEXT`; Oracle
        // MySQL's is cast to its text (`filter::json_mysql_sql`).
        Expr::ScalarFunction(function)
            if matches!(kind, SourceKind::Mariadb | SourceKind::Mysql)
                && function.name() == crate::filter::JSON_TEXT =>
        {
            function.args.iter().all(pushable)
        }
        // Our jsonb tests (`filter::json_document`), which PostgreSQL has as operators.
        Expr::ScalarFunction(function)
            if kind == SourceKind::Postgres
                && crate::filter::json_pushable_to_postgres(function.name(), &function.args) =>
        {
            pushable(&function.args[0])
        }
        Expr::ScalarFunction(function) => {
            function_is_pushable(function.name(), kind) && function.args.iter().all(pushable)
        }
        _ => false,
    }
}

/// Boolean literals need a boolean type; `''` is NULL where empty strings are.
fn literal_is_pushable(value: &ScalarValue, kind: SourceKind) -> bool {
    match value {
        ScalarValue::Boolean(_) => !lacks_booleans(kind),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => !(s.is_empty() && empty_string_is_null(kind)),
        _ => true,
    }
}

fn binary_is_pushable(binary: &BinaryExpr, schema: &DFSchema, kind: SourceKind) -> bool {
    if !expr_is_pushable(&binary.left, schema, kind)
        || !expr_is_pushable(&binary.right, schema, kind)
    {
        return false;
    }
    // SQLite keeps dates and times as text, numbers or Julian days, and
    // writes a DATE literal as a number: no temporal comparison goes there.
    let temporal = kind == SourceKind::Sqlite
        && (is_temporal(&binary.left, schema) || is_temporal(&binary.right, schema));
    if temporal {
        return false;
    }
    let strings = is_string(&binary.left, schema) || is_string(&binary.right, schema);
    match binary.op {
        Operator::And | Operator::Or | Operator::Plus | Operator::Minus | Operator::Multiply => {
            true
        }
        Operator::Divide | Operator::Modulo => match kind {
            SourceKind::Postgres | SourceKind::Kingbase | SourceKind::Sqlite => true,
            SourceKind::Sqlserver => {
                is_integer(&binary.left, schema) && is_integer(&binary.right, schema)
            }
            SourceKind::Mysql | SourceKind::Mariadb | SourceKind::Oracle => false,
        },
        Operator::Eq
        | Operator::NotEq
        | Operator::Lt
        | Operator::LtEq
        | Operator::Gt
        | Operator::GtEq => !(folds_strings(kind) && strings),
        // Neither SQL Server (before 2022) nor Oracle writes it.
        Operator::IsDistinctFrom | Operator::IsNotDistinctFrom => !lacks_booleans(kind),
        Operator::StringConcat => {
            matches!(
                kind,
                SourceKind::Postgres | SourceKind::Kingbase | SourceKind::Sqlite
            )
        }
        // PostgreSQL's regular expressions are the meaning; elsewhere the
        // engine matches (MySQL's REGEXP follows the collation's case).
        Operator::RegexMatch
        | Operator::RegexIMatch
        | Operator::RegexNotMatch
        | Operator::RegexNotIMatch => {
            matches!(kind, SourceKind::Postgres | SourceKind::Kingbase)
        }
        _ => false,
    }
}

fn function_is_pushable(name: &str, kind: SourceKind) -> bool {
    const EVERYWHERE: &[&str] = &["abs", "coalesce", "nullif"];
    const POSTGRES: &[&str] = &[
        "ceil",
        "floor",
        "upper",
        "lower",
        "length",
        "character_length",
        "char_length",
        "substr",
        "substring",
        "btrim",
        "ltrim",
        "rtrim",
        "trim",
        "replace",
        "concat",
        "date_trunc",
    ];
    const MYSQL: &[&str] = &[
        "ceil",
        "floor",
        "upper",
        "lower",
        "character_length",
        "char_length",
    ];
    // SQLite's dialect writes character_length as length(), which counts characters.
    const SQLITE: &[&str] = &["character_length", "length", "substr", "substring"];
    // SQL Server spells ceil CEILING, and its LEN ignores trailing spaces.
    const SQLSERVER: &[&str] = &["floor", "upper", "lower"];
    // Oracle's LENGTH('') and SUBSTR of an empty result are NULL.
    const ORACLE: &[&str] = &["ceil", "floor", "upper", "lower"];
    EVERYWHERE.contains(&name)
        || match kind {
            SourceKind::Postgres | SourceKind::Kingbase => POSTGRES.contains(&name),
            SourceKind::Mysql | SourceKind::Mariadb => MYSQL.contains(&name),
            SourceKind::Sqlite => SQLITE.contains(&name),
            SourceKind::Sqlserver => SQLSERVER.contains(&name),
            SourceKind::Oracle => ORACLE.contains(&name),
        }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::functions::expr_fn::{character_length, upper};
    use datafusion::logical_expr::binary_expr;
    use datafusion::prelude::{col, lit};

    use super::*;

    fn schema() -> DFSchema {
        DFSchema::try_from(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("n", DataType::Int32, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("day", DataType::Date32, true),
            Field::new("flag", DataType::Boolean, true),
            Field::new("price", DataType::Decimal128(10, 2), true),
        ]))
        .unwrap()
    }

    #[test]
    fn expressions_per_kind() {
        use SourceKind::{Mariadb, Postgres, Sqlite};
        let schema = schema();
        // (expression, PostgreSQL, MariaDB, SQLite)
        let cases: Vec<(Expr, bool, bool, bool)> = vec![
            (col("id").gt(lit(2_i64)), true, true, true),
            // Strings compare exactly in MySQL once mysql_strings adds the bytes.
            (col("name").eq(lit("x")), true, true, true),
            (col("name").in_list(vec![lit("a")], false), true, true, true),
            (col("name").like(lit("a%")), true, true, false),
            // `_` is a byte there, a character here.
            (col("name").like(lit("a_")), true, false, false),
            (col("name").ilike(lit("a%")), true, false, false),
            // PostgreSQL's regular expressions: matched by the engine elsewhere.
            (
                binary_expr(col("name"), Operator::RegexIMatch, lit("^a")),
                true,
                false,
                false,
            ),
            (col("id") / lit(2_i64), true, false, true),
            (col("id") % lit(2_i64), true, false, true),
            (col("id") + col("n"), true, true, true),
            (
                col("n").is_null().or(col("id").lt_eq(lit(1_i64))),
                true,
                true,
                true,
            ),
            (upper(col("name")), true, true, false),
            (character_length(col("name")), true, true, true),
            (
                col("day").gt_eq(lit(ScalarValue::Date32(Some(19_000)))),
                true,
                true,
                false,
            ),
            (
                datafusion::functions::expr_fn::md5(col("name")),
                false,
                false,
                false,
            ),
            (
                Expr::Cast(datafusion::logical_expr::Cast::new(
                    Box::new(col("n")),
                    DataType::Int64,
                )),
                true,
                true,
                true,
            ),
            (
                Expr::Cast(datafusion::logical_expr::Cast::new(
                    Box::new(col("n")),
                    DataType::Utf8,
                )),
                false,
                false,
                false,
            ),
        ];
        for (expr, postgres, mariadb, sqlite) in cases {
            assert_eq!(
                expr_is_pushable(&expr, &schema, Postgres),
                postgres,
                "postgres: {expr}"
            );
            assert_eq!(
                expr_is_pushable(&expr, &schema, Mariadb),
                mariadb,
                "mariadb: {expr}"
            );
            assert_eq!(
                expr_is_pushable(&expr, &schema, Sqlite),
                sqlite,
                "sqlite: {expr}"
            );
        }
    }

    #[test]
    fn expressions_for_sqlserver_oracle_and_kingbase() {
        use SourceKind::{Kingbase, Oracle, Sqlserver};
        let schema = schema();
        // (expression, SQL Server, Oracle, KingbaseES)
        let cases: Vec<(Expr, bool, bool, bool)> = vec![
            (col("id").gt(lit(2_i64)), true, true, true),
            // SQL Server's default collations ignore case and trailing spaces.
            (col("name").eq(lit("x")), false, true, true),
            (
                col("name").in_list(vec![lit("a")], false),
                false,
                true,
                true,
            ),
            (col("name").between(lit("a"), lit("b")), false, true, true),
            // `''` is NULL in Oracle (and KingbaseES' Oracle mode).
            (col("name").not_eq(lit("")), false, false, false),
            (col("name").like(lit("a%")), false, true, true),
            (col("name").like(lit("")), false, false, false),
            (col("name").ilike(lit("a%")), false, false, true),
            (
                binary_expr(col("name"), Operator::RegexNotMatch, lit("^a")),
                false,
                false,
                true,
            ),
            // No boolean type: neither a bare column nor TRUE.
            (col("flag"), false, false, true),
            (col("flag").eq(lit(true)), false, false, true),
            (col("flag").is_true(), false, false, true),
            (col("flag").is_null(), false, false, true),
            (col("id") / lit(2_i64), true, false, true),
            (col("price") / lit(2_i64), false, false, true),
            (col("id") % lit(2_i64), true, false, true),
            (
                binary_expr(col("name"), Operator::StringConcat, lit("x")),
                false,
                false,
                true,
            ),
            (
                binary_expr(col("n"), Operator::IsDistinctFrom, lit(1_i32)),
                false,
                false,
                true,
            ),
            (upper(col("name")), true, true, true),
            (character_length(col("name")), false, false, true),
            (
                datafusion::functions::expr_fn::ceil(col("price")),
                false,
                true,
                true,
            ),
            (
                Expr::Cast(datafusion::logical_expr::Cast::new(
                    Box::new(col("n")),
                    DataType::Int64,
                )),
                true,
                true,
                true,
            ),
            (
                Expr::Cast(datafusion::logical_expr::Cast::new(
                    Box::new(col("price")),
                    DataType::Int64,
                )),
                false,
                false,
                true,
            ),
            (
                col("day").gt_eq(lit(ScalarValue::Date32(Some(19_000)))),
                true,
                true,
                true,
            ),
        ];
        for (expr, sqlserver, oracle, kingbase) in cases {
            assert_eq!(
                expr_is_pushable(&expr, &schema, Sqlserver),
                sqlserver,
                "sqlserver: {expr}"
            );
            assert_eq!(
                expr_is_pushable(&expr, &schema, Oracle),
                oracle,
                "oracle: {expr}"
            );
            assert_eq!(
                expr_is_pushable(&expr, &schema, Kingbase),
                kingbase,
                "kingbase: {expr}"
            );
        }
    }

    #[test]
    fn sqlserver_sorts_top_n_and_never_on_strings() {
        let schema = schema();
        let sort =
            |name: &str, asc: bool, nulls_first: bool| Sort::new(col(name), asc, nulls_first);
        let sqlserver = SourceKind::Sqlserver;
        assert!(sort_is_pushable(
            &sort("id", true, false),
            &schema,
            sqlserver
        ));
        // NULLs placed by a leading key (`null_order`), whatever the order.
        assert!(sort_is_pushable(&sort("n", true, true), &schema, sqlserver));
        assert!(sort_is_pushable(
            &sort("n", true, false),
            &schema,
            sqlserver
        ));
        assert!(sort_is_pushable(
            &sort("n", false, true),
            &schema,
            sqlserver
        ));
        assert!(!sort_is_pushable(
            &sort("name", true, true),
            &schema,
            sqlserver
        ));
        assert!(sort_is_pushable(
            &sort("name", true, false),
            &schema,
            SourceKind::Oracle
        ));
        let scan =
            datafusion::logical_expr::table_scan(Some("t"), schema.as_arrow(), None).unwrap();
        let unlimited = scan
            .clone()
            .sort(vec![col("id").sort(true, false)])
            .unwrap()
            .build()
            .unwrap();
        assert!(
            !node_is_pushable(&unlimited, sqlserver),
            "ORDER BY in a derived table needs TOP"
        );
        assert!(node_is_pushable(&unlimited, SourceKind::Oracle));
        let grouped = scan
            .aggregate(
                vec![col("name")],
                vec![datafusion::functions_aggregate::expr_fn::count(col("id"))],
            )
            .unwrap()
            .build()
            .unwrap();
        assert!(
            !node_is_pushable(&grouped, sqlserver),
            "GROUP BY a string folds case there"
        );
        assert!(node_is_pushable(&grouped, SourceKind::Oracle));
        let summed = |column: &str| {
            datafusion::logical_expr::table_scan(Some("t"), schema.as_arrow(), None)
                .unwrap()
                .aggregate(
                    vec![col("id")],
                    vec![datafusion::functions_aggregate::expr_fn::sum(col(column))],
                )
                .unwrap()
                .build()
                .unwrap()
        };
        assert!(
            !node_is_pushable(&summed("n"), sqlserver),
            "int sums overflow there"
        );
        assert!(node_is_pushable(&summed("id"), sqlserver));
        assert!(node_is_pushable(&summed("price"), sqlserver));
    }

    #[test]
    fn sorts_keep_our_null_order() {
        let schema = schema();
        let sort =
            |name: &str, asc: bool, nulls_first: bool| Sort::new(col(name), asc, nulls_first);
        // MySQL: any order (`null_order` puts NULLs where ours go,
        // `mysql_strings` strings in their bytes' order).
        for kind in [SourceKind::Mysql, SourceKind::Mariadb] {
            for (name, asc, nulls_first) in [
                ("n", true, true),
                ("n", true, false),
                ("n", false, true),
                ("name", true, false),
            ] {
                assert!(
                    sort_is_pushable(&sort(name, asc, nulls_first), &schema, kind),
                    "{kind} {name} {asc} {nulls_first}"
                );
            }
        }
        // SQL Server: see `sqlserver_sorts_top_n_and_never_on_strings`.
        assert!(sort_is_pushable(
            &sort("n", true, false),
            &schema,
            SourceKind::Sqlite
        ));
    }

    #[test]
    fn named_rankings_go_where_they_rank_rows_as_we_do() {
        use datafusion::functions_window::expr_fn::{dense_rank, percent_rank, rank, row_number};
        use datafusion::logical_expr::ExprFunctionExt;
        let schema = schema();
        let numbered = |f: Expr, by: Sort| {
            f.partition_by(vec![col("n")])
                .order_by(vec![by])
                .build()
                .unwrap()
        };
        let by_name = || col("name").sort(true, false);
        let named = numbered(row_number(), by_name()).alias("place");
        assert!(ranking_is_pushable(&named, &schema, SourceKind::Postgres));
        // Unnamed, the unparser would refer to it by its display name.
        assert!(!ranking_is_pushable(
            &numbered(row_number(), by_name()),
            &schema,
            SourceKind::Postgres
        ));
        for ranking in [rank(), dense_rank()] {
            assert!(ranking_is_pushable(
                &numbered(ranking, by_name()).alias("place"),
                &schema,
                SourceKind::Mariadb
            ));
        }
        assert!(!ranking_is_pushable(
            &numbered(percent_rank(), by_name()).alias("place"),
            &schema,
            SourceKind::Postgres
        ));
        let window = |expr: Expr| {
            datafusion::logical_expr::table_scan(Some("t"), schema.as_arrow(), None)
                .unwrap()
                .window(vec![expr])
                .unwrap()
                .build()
                .unwrap()
        };
        let by_text = window(named);
        assert!(node_is_pushable(&by_text, SourceKind::Postgres));
        // Text keys order by their bytes there, NULLs placed as ours
        // (`mysql_strings`).
        assert!(node_is_pushable(&by_text, SourceKind::Mariadb));
        assert!(node_is_pushable(&by_text, SourceKind::Mysql));
        // SQL Server's collations would order text otherwise.
        assert!(!node_is_pushable(&by_text, SourceKind::Sqlserver));
        let by_id = window(numbered(row_number(), col("id").sort(false, false)).alias("place"));
        for kind in [
            SourceKind::Postgres,
            SourceKind::Mysql,
            SourceKind::Mariadb,
            SourceKind::Sqlserver,
        ] {
            assert!(node_is_pushable(&by_id, kind), "{kind}");
        }
        assert!(node_is_pushable(&by_id, SourceKind::Oracle));
        assert!(node_is_pushable(&by_id, SourceKind::Kingbase));
        assert!(!node_is_pushable(&by_id, SourceKind::Sqlite));
        // NULLs placed by a leading key where they cannot be told.
        let nulls_last = window(numbered(row_number(), col("n").sort(true, false)).alias("place"));
        for kind in [
            SourceKind::Postgres,
            SourceKind::Mariadb,
            SourceKind::Sqlserver,
        ] {
            assert!(node_is_pushable(&nulls_last, kind), "{kind}");
        }
        let text_partition = window(
            row_number()
                .partition_by(vec![col("name")])
                .order_by(vec![col("id").sort(true, true)])
                .build()
                .unwrap()
                .alias("place"),
        );
        for kind in [SourceKind::Postgres, SourceKind::Mysql, SourceKind::Mariadb] {
            assert!(node_is_pushable(&text_partition, kind), "{kind}");
        }
        assert!(!node_is_pushable(&text_partition, SourceKind::Sqlserver));
    }
}
