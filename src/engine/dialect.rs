//! The SQL dialect DataFusion's unparser writes for each source: DataFusion's
//! own dialect of the source's kind (ours for SQL Server and Oracle, which
//! DataFusion lacks), with our two additions — every derived table named
//! (SQLite: without a name, the unparser's qualified references to a derived
//! table's columns do not resolve), the UTF-8 bytes function of
//! [`mysql_strings`](super::mysql_strings) written out, and the JSON
//! document tests as PostgreSQL's jsonb operators. What the unparser
//! has no hook for (row limits, Oracle's table aliases, typed date literals)
//! is respelled afterwards by [`dialect_ast`](super::dialect_ast).

use std::sync::Arc;

use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::datatypes::TimeUnit;
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::sql::sqlparser::ast::{self, BinaryOperator, WindowFrameBound};
use datafusion::sql::unparser::Unparser;
use datafusion::sql::unparser::dialect::{
    CharacterLengthStyle, DateFieldExtractStyle, Dialect, DistinctFromStyle, IntervalStyle,
    MySqlDialect, PostgreSqlDialect, SqliteDialect,
};
use tributary_schema_cache::SourceKind;

use super::mysql_strings;

/// The unparser dialect for a source kind.
pub fn for_kind(kind: SourceKind) -> Arc<dyn Dialect> {
    let base: Box<dyn Dialect> = match kind {
        SourceKind::Postgres | SourceKind::Kingbase => Box::new(PostgreSqlDialect {}),
        SourceKind::Sqlserver => Box::new(SqlServerDialect),
        SourceKind::Oracle => Box::new(OracleDialect),
        SourceKind::Mysql | SourceKind::Mariadb => Box::new(MySqlDialect {}),
        SourceKind::Sqlite => Box::new(SqliteDialect {}),
    };
    Arc::new(SourceDialect {
        base,
        name_derived_tables: kind == SourceKind::Sqlite,
        json_operators: kind == SourceKind::Postgres,
        json_text: match kind {
            SourceKind::Mariadb => Some(false),
            SourceKind::Mysql => Some(true),
            _ => None,
        },
    })
}

/// SQL Server (T-SQL): `[bracket]` identifiers, `N'…'` strings (the column
/// may be `nvarchar`), no `NULLS FIRST`/`LAST`, and its own type names in
/// casts (`TIMESTAMP` is a row version there, `DOUBLE` does not exist).
#[derive(Debug)]
struct SqlServerDialect;

impl Dialect for SqlServerDialect {
    fn identifier_quote_style(&self, _identifier: &str) -> Option<char> {
        Some('[')
    }
    fn supports_nulls_first_in_sort(&self) -> bool {
        false
    }
    fn requires_derived_table_alias(&self) -> bool {
        true
    }
    fn float64_ast_dtype(&self) -> ast::DataType {
        ast::DataType::Float(ast::ExactNumberInfo::None)
    }
    fn utf8_cast_dtype(&self) -> ast::DataType {
        ast::DataType::Nvarchar(Some(ast::CharacterLength::Max))
    }
    fn large_utf8_cast_dtype(&self) -> ast::DataType {
        ast::DataType::Nvarchar(Some(ast::CharacterLength::Max))
    }
    fn int8_cast_dtype(&self) -> ast::DataType {
        // TINYINT is unsigned there.
        ast::DataType::SmallInt(None)
    }
    fn timestamp_cast_dtype(&self, _unit: &TimeUnit, _tz: &Option<Arc<str>>) -> ast::DataType {
        custom_type("DATETIME2")
    }
    fn date_field_extract_style(&self) -> DateFieldExtractStyle {
        DateFieldExtractStyle::DatePart
    }
    fn string_literal_to_sql(&self, s: &str) -> Option<ast::Expr> {
        // sqlparser writes a national literal verbatim: the quotes are doubled here.
        Some(ast::Expr::value(ast::Value::NationalStringLiteral(
            s.replace('\'', "''"),
        )))
    }
}

/// Oracle: `"QUOTED"` identifiers (exact case), its own type names in casts,
/// `EXTRACT`, no column list after a table alias.
#[derive(Debug)]
struct OracleDialect;

impl Dialect for OracleDialect {
    fn identifier_quote_style(&self, _identifier: &str) -> Option<char> {
        Some('"')
    }
    fn requires_derived_table_alias(&self) -> bool {
        true
    }
    fn float64_ast_dtype(&self) -> ast::DataType {
        custom_type("BINARY_DOUBLE")
    }
    fn utf8_cast_dtype(&self) -> ast::DataType {
        custom_type("VARCHAR2(4000)")
    }
    fn large_utf8_cast_dtype(&self) -> ast::DataType {
        custom_type("CLOB")
    }
    fn int64_cast_dtype(&self) -> ast::DataType {
        custom_type("NUMBER(19)")
    }
    fn int32_cast_dtype(&self) -> ast::DataType {
        custom_type("NUMBER(10)")
    }
    fn int8_cast_dtype(&self) -> ast::DataType {
        custom_type("NUMBER(3)")
    }
    fn timestamp_cast_dtype(&self, _unit: &TimeUnit, _tz: &Option<Arc<str>>) -> ast::DataType {
        ast::DataType::Timestamp(None, ast::TimezoneInfo::None)
    }
    fn date_field_extract_style(&self) -> DateFieldExtractStyle {
        DateFieldExtractStyle::Extract
    }
    fn supports_column_alias_in_table_alias(&self) -> bool {
        false
    }
}

/// A type name the sqlparser AST has no variant for, written as given.
fn custom_type(name: &str) -> ast::DataType {
    ast::DataType::Custom(ast::ObjectName::from(vec![ast::Ident::new(name)]), vec![])
}

/// A DataFusion dialect with our additions; everything else is the base's.
struct SourceDialect {
    base: Box<dyn Dialect>,
    name_derived_tables: bool,
    /// The JSON document tests written as jsonb's operators (PostgreSQL).
    json_operators: bool,
    /// How a JSON document's text is written for MySQL: cast (`true`,
    /// Oracle MySQL) or the column (`false`, MariaDB's `JSON` is `LONGTEXT`).
    json_text: Option<bool>,
}

impl Dialect for SourceDialect {
    fn requires_derived_table_alias(&self) -> bool {
        self.name_derived_tables || self.base.requires_derived_table_alias()
    }

    fn scalar_function_to_sql_overrides(
        &self,
        unparser: &Unparser,
        func_name: &str,
        args: &[Expr],
    ) -> Result<Option<ast::Expr>> {
        if let Some(sql) = mysql_strings::bytes_to_sql(unparser, func_name, args)? {
            return Ok(Some(sql));
        }
        if self.json_operators
            && let Some(sql) = crate::filter::json_postgres_sql(unparser, func_name, args)?
        {
            return Ok(Some(sql));
        }
        if let Some(cast) = self.json_text
            && let Some(sql) = crate::filter::json_mysql_sql(unparser, func_name, args, cast)?
        {
            return Ok(Some(sql));
        }
        self.base
            .scalar_function_to_sql_overrides(unparser, func_name, args)
    }

    fn identifier_quote_style(&self, identifier: &str) -> Option<char> {
        self.base.identifier_quote_style(identifier)
    }
    fn use_array_keyword_for_array_literals(&self) -> bool {
        self.base.use_array_keyword_for_array_literals()
    }
    fn supports_nulls_first_in_sort(&self) -> bool {
        self.base.supports_nulls_first_in_sort()
    }
    fn use_timestamp_for_date64(&self) -> bool {
        self.base.use_timestamp_for_date64()
    }
    fn interval_style(&self) -> IntervalStyle {
        self.base.interval_style()
    }
    fn float64_ast_dtype(&self) -> ast::DataType {
        self.base.float64_ast_dtype()
    }
    fn utf8_cast_dtype(&self) -> ast::DataType {
        self.base.utf8_cast_dtype()
    }
    fn large_utf8_cast_dtype(&self) -> ast::DataType {
        self.base.large_utf8_cast_dtype()
    }
    fn date_field_extract_style(&self) -> DateFieldExtractStyle {
        self.base.date_field_extract_style()
    }
    fn distinct_from_style(&self) -> DistinctFromStyle {
        self.base.distinct_from_style()
    }
    fn character_length_style(&self) -> CharacterLengthStyle {
        self.base.character_length_style()
    }
    fn int64_cast_dtype(&self) -> ast::DataType {
        self.base.int64_cast_dtype()
    }
    fn int8_cast_dtype(&self) -> ast::DataType {
        self.base.int8_cast_dtype()
    }
    fn int32_cast_dtype(&self) -> ast::DataType {
        self.base.int32_cast_dtype()
    }
    fn timestamp_cast_dtype(&self, time_unit: &TimeUnit, tz: &Option<Arc<str>>) -> ast::DataType {
        self.base.timestamp_cast_dtype(time_unit, tz)
    }
    fn date32_cast_dtype(&self) -> ast::DataType {
        self.base.date32_cast_dtype()
    }
    fn supports_column_alias_in_table_alias(&self) -> bool {
        self.base.supports_column_alias_in_table_alias()
    }
    fn division_operator(&self) -> BinaryOperator {
        self.base.division_operator()
    }
    fn higher_order_function_to_sql_overrides(
        &self,
        unparser: &Unparser,
        func_name: &str,
        args: &[Expr],
    ) -> Result<Option<ast::Expr>> {
        self.base
            .higher_order_function_to_sql_overrides(unparser, func_name, args)
    }
    fn window_func_support_window_frame(
        &self,
        func_name: &str,
        start_bound: &WindowFrameBound,
        end_bound: &WindowFrameBound,
    ) -> bool {
        self.base
            .window_func_support_window_frame(func_name, start_bound, end_bound)
    }
    fn full_qualified_col(&self) -> bool {
        self.base.full_qualified_col()
    }
    fn unnest_as_table_factor(&self) -> bool {
        self.base.unnest_as_table_factor()
    }
    fn unnest_as_lateral_flatten(&self) -> bool {
        self.base.unnest_as_lateral_flatten()
    }
    fn col_alias_overrides(&self, alias: &str) -> Result<Option<String>> {
        self.base.col_alias_overrides(alias)
    }
    fn supports_qualify(&self) -> bool {
        self.base.supports_qualify()
    }
    fn timestamp_with_tz_to_string(&self, dt: chrono::DateTime<Tz>, unit: TimeUnit) -> String {
        self.base.timestamp_with_tz_to_string(dt, unit)
    }
    fn supports_empty_select_list(&self) -> bool {
        self.base.supports_empty_select_list()
    }
    fn string_literal_to_sql(&self, s: &str) -> Option<ast::Expr> {
        self.base.string_literal_to_sql(s)
    }
}
