//! The `information_schema` queries introspection and drift detection run,
//! per flavor where MySQL and MariaDB differ, and the normalization of what
//! the two report differently. Every query covers all selected schemas at
//! once (`TABLE_SCHEMA IN (…)`), and every selected column has an explicit
//! lower-case alias (MySQL 8 returns information_schema names upper-case).

use mysql_async::Value as MyValue;

use crate::flavor::Flavor;

/// `?, ?, …` for `count` parameters.
fn placeholders(count: usize) -> String {
    vec!["?"; count].join(", ")
}

/// Every database on the server.
pub const SCHEMATA: &str =
    "SELECT SCHEMA_NAME AS schema_name FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME";

/// Databases that are never introspected unless named explicitly.
pub const SYSTEM_SCHEMAS: [&str; 4] = ["mysql", "information_schema", "performance_schema", "sys"];

/// Tables and views: schema, name, type, row estimate, comment.
pub fn tables(schemas: usize) -> String {
    format!(
        "SELECT TABLE_SCHEMA AS table_schema, TABLE_NAME AS table_name, TABLE_TYPE AS table_type, \
         TABLE_ROWS AS table_rows, TABLE_COMMENT AS table_comment \
         FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ({})",
        placeholders(schemas)
    )
}

/// Columns: schema, table, name, position, default, nullable, data type,
/// column type, extra, comment, generation expression.
pub fn columns(schemas: usize) -> String {
    format!(
        "SELECT TABLE_SCHEMA AS table_schema, TABLE_NAME AS table_name, COLUMN_NAME AS column_name, \
         ORDINAL_POSITION AS ordinal_position, COLUMN_DEFAULT AS column_default, \
         IS_NULLABLE AS is_nullable, DATA_TYPE AS data_type, COLUMN_TYPE AS column_type, \
         EXTRA AS extra, COLUMN_COMMENT AS column_comment, \
         GENERATION_EXPRESSION AS generation_expression \
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA IN ({})",
        placeholders(schemas)
    )
}

/// Index columns: schema, table, index, non-unique, position, column,
/// method, expression (MySQL 8 functional key parts; MariaDB has none).
pub fn statistics(flavor: Flavor, schemas: usize) -> String {
    let expression = match flavor {
        Flavor::MySql => "EXPRESSION",
        Flavor::MariaDb => "NULL",
    };
    format!(
        "SELECT TABLE_SCHEMA AS table_schema, TABLE_NAME AS table_name, INDEX_NAME AS index_name, \
         NON_UNIQUE AS non_unique, SEQ_IN_INDEX AS seq_in_index, COLUMN_NAME AS column_name, \
         INDEX_TYPE AS index_type, {expression} AS expression \
         FROM information_schema.STATISTICS WHERE TABLE_SCHEMA IN ({})",
        placeholders(schemas)
    )
}

/// Key columns of primary keys (`PRIMARY`), unique keys and foreign keys
/// (those with a referenced table): schema, table, constraint, column,
/// position, referenced schema / table / column.
pub fn key_columns(schemas: usize) -> String {
    format!(
        "SELECT TABLE_SCHEMA AS table_schema, TABLE_NAME AS table_name, \
         CONSTRAINT_NAME AS constraint_name, COLUMN_NAME AS column_name, \
         ORDINAL_POSITION AS ordinal_position, REFERENCED_TABLE_SCHEMA AS referenced_table_schema, \
         REFERENCED_TABLE_NAME AS referenced_table_name, \
         REFERENCED_COLUMN_NAME AS referenced_column_name \
         FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA IN ({})",
        placeholders(schemas)
    )
}

/// Foreign key rules: schema, table, constraint, on update, on delete.
pub fn referential(schemas: usize) -> String {
    format!(
        "SELECT CONSTRAINT_SCHEMA AS constraint_schema, TABLE_NAME AS table_name, \
         CONSTRAINT_NAME AS constraint_name, UPDATE_RULE AS update_rule, DELETE_RULE AS delete_rule \
         FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA IN ({})",
        placeholders(schemas)
    )
}

/// CHECK constraints: schema, table, name, clause. MariaDB's
/// `CHECK_CONSTRAINTS` names the table; MySQL's does not, so it is joined
/// through `TABLE_CONSTRAINTS` (check names are unique per schema there),
/// which also says whether MySQL enforces it: a `NOT ENFORCED` check is left
/// out, as the data need not satisfy it (MariaDB has no such checks).
pub fn checks(flavor: Flavor, schemas: usize) -> String {
    match flavor {
        Flavor::MariaDb => format!(
            "SELECT CONSTRAINT_SCHEMA AS constraint_schema, TABLE_NAME AS table_name, \
             CONSTRAINT_NAME AS constraint_name, CHECK_CLAUSE AS check_clause \
             FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA IN ({})",
            placeholders(schemas)
        ),
        Flavor::MySql => format!(
            "SELECT tc.TABLE_SCHEMA AS constraint_schema, tc.TABLE_NAME AS table_name, \
             cc.CONSTRAINT_NAME AS constraint_name, cc.CHECK_CLAUSE AS check_clause \
             FROM information_schema.CHECK_CONSTRAINTS cc \
             JOIN information_schema.TABLE_CONSTRAINTS tc \
               ON tc.CONSTRAINT_SCHEMA = cc.CONSTRAINT_SCHEMA \
              AND tc.CONSTRAINT_NAME = cc.CONSTRAINT_NAME AND tc.CONSTRAINT_TYPE = 'CHECK' \
             WHERE cc.CONSTRAINT_SCHEMA IN ({}) AND tc.ENFORCED = 'YES'",
            placeholders(schemas)
        ),
    }
}

/// The number of times [`fingerprint`] repeats the schema list.
pub const FINGERPRINT_PARTS: usize = 6;

/// The cheap drift query: one `(schema, table, descriptor)` row per table,
/// column, index column, key column, foreign key rule and check — every
/// property introspection reads except row estimates. Its parameters are
/// the schema list repeated [`FINGERPRINT_PARTS`] times.
pub fn fingerprint(flavor: Flavor, schemas: usize) -> String {
    let list = placeholders(schemas);
    let checks = match flavor {
        Flavor::MariaDb => format!(
            "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, \
             CONCAT_WS('|', 'x', CONSTRAINT_NAME, CHECK_CLAUSE) \
             FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA IN ({list})"
        ),
        Flavor::MySql => format!(
            "SELECT tc.TABLE_SCHEMA, tc.TABLE_NAME, \
             CONCAT_WS('|', 'x', cc.CONSTRAINT_NAME, cc.CHECK_CLAUSE, tc.ENFORCED) \
             FROM information_schema.CHECK_CONSTRAINTS cc \
             JOIN information_schema.TABLE_CONSTRAINTS tc \
               ON tc.CONSTRAINT_SCHEMA = cc.CONSTRAINT_SCHEMA \
              AND tc.CONSTRAINT_NAME = cc.CONSTRAINT_NAME AND tc.CONSTRAINT_TYPE = 'CHECK' \
             WHERE cc.CONSTRAINT_SCHEMA IN ({list})"
        ),
    };
    format!(
        "SELECT TABLE_SCHEMA AS table_schema, TABLE_NAME AS table_name, \
         CONCAT_WS('|', 't', TABLE_TYPE, TABLE_COMMENT) AS descriptor \
         FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ({list}) \
         UNION ALL SELECT TABLE_SCHEMA, TABLE_NAME, CONCAT_WS('|', 'c', ORDINAL_POSITION, \
           COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, IFNULL(COLUMN_DEFAULT, '~'), EXTRA, \
           COLUMN_COMMENT, IFNULL(GENERATION_EXPRESSION, '')) \
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA IN ({list}) \
         UNION ALL SELECT TABLE_SCHEMA, TABLE_NAME, CONCAT_WS('|', 'i', INDEX_NAME, SEQ_IN_INDEX, \
           IFNULL(COLUMN_NAME, ''), NON_UNIQUE, INDEX_TYPE) \
         FROM information_schema.STATISTICS WHERE TABLE_SCHEMA IN ({list}) \
         UNION ALL SELECT TABLE_SCHEMA, TABLE_NAME, CONCAT_WS('|', 'k', CONSTRAINT_NAME, \
           ORDINAL_POSITION, COLUMN_NAME, IFNULL(REFERENCED_TABLE_SCHEMA, ''), \
           IFNULL(REFERENCED_TABLE_NAME, ''), IFNULL(REFERENCED_COLUMN_NAME, '')) \
         FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA IN ({list}) \
         UNION ALL SELECT CONSTRAINT_SCHEMA, TABLE_NAME, \
           CONCAT_WS('|', 'r', CONSTRAINT_NAME, UPDATE_RULE, DELETE_RULE) \
         FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA IN ({list}) \
         UNION ALL {checks}"
    )
}

/// An expression as MariaDB writes it. MySQL reports generation
/// expressions, CHECK clauses, expression defaults and functional index parts
/// differently: escaped once more as if inside a string literal
/// (`_utf8mb4\'it\\\'s\'` for the literal `'it\'s'`), with a character set
/// introducer before every string literal, and generation expressions and
/// CHECK clauses wrapped in one pair of parentheses (`(a > 0)`); MariaDB writes
/// `a > 0` and `'it\'s'`.
pub fn normalize_expression(flavor: Flavor, expression: String) -> String {
    match flavor {
        Flavor::MariaDb => expression,
        Flavor::MySql => {
            let text = mysql_expression(&expression, QuoteStyle::Backslash);
            match enclosed(&text) {
                Some(inner) => inner.to_string(),
                None => text,
            }
        }
    }
}

/// A functional index part (`STATISTICS.EXPRESSION`, MySQL only) without
/// MySQL's extra escaping and introducers; it has no enclosing parentheses.
pub fn normalize_index_expression(flavor: Flavor, expression: String) -> String {
    match flavor {
        Flavor::MariaDb => expression,
        Flavor::MySql => mysql_expression(&expression, QuoteStyle::Backslash),
    }
}

/// How a quote inside a string literal is written in the normalized text:
/// MariaDB writes `\'` in expressions and CHECK clauses but `''` in column
/// defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuoteStyle {
    Backslash,
    Doubled,
}

/// MySQL's `information_schema` spelling of an expression, in MariaDB's:
/// the outer escaping undone, character set introducers before string
/// literals dropped (`_binary` stays: it changes the value's type), quotes
/// inside literals written in `style`.
fn mysql_expression(text: &str, style: QuoteStyle) -> String {
    let text = unescape_once(text);
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        match c {
            '\'' => i = copy_literal(&chars, i, style, &mut out),
            '`' | '"' => {
                // A quoted identifier (or a double-quoted string): copied as is.
                let end = chars[i + 1..]
                    .iter()
                    .position(|&d| d == c)
                    .map_or(chars.len(), |p| i + 2 + p);
                out.extend(&chars[i..end]);
                i = end;
            }
            '_' if starts_word(&chars, i) => {
                let name_end = chars[i + 1..]
                    .iter()
                    .position(|d| !d.is_ascii_alphanumeric())
                    .map_or(chars.len(), |p| i + 1 + p);
                let name: String = chars[i + 1..name_end].iter().collect();
                let introducer = name_end > i + 1
                    && chars.get(name_end) == Some(&'\'')
                    && !name.eq_ignore_ascii_case("binary");
                if !introducer {
                    out.extend(&chars[i..name_end]);
                }
                i = name_end;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// True when `chars[i]` begins a word (nothing identifier-like before it).
fn starts_word(chars: &[char], i: usize) -> bool {
    i == 0
        || chars
            .get(i - 1)
            .is_some_and(|p| !(p.is_alphanumeric() || matches!(p, '_' | '$')))
}

/// Copies the string literal starting at `chars[start]` (a `'`), writing an
/// escaped quote inside it in `style`; returns the index after it.
fn copy_literal(chars: &[char], start: usize, style: QuoteStyle, out: &mut String) -> usize {
    out.push('\'');
    let mut i = start + 1;
    while let Some(&c) = chars.get(i) {
        match (c, chars.get(i + 1)) {
            ('\\', Some('\'')) if style == QuoteStyle::Doubled => {
                out.push_str("''");
                i += 2;
            }
            ('\\', Some(&next)) | ('\'', Some(&next @ '\'')) => {
                out.push(c);
                out.push(next);
                i += 2;
            }
            ('\'', _) => {
                out.push('\'');
                return i + 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    i
}

/// Undoes one level of MySQL string escaping (`\'` → `'`, `\\` → `\`,
/// `\n` → a line break, …).
fn unescape_once(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('0') => out.push('\0'),
            Some('Z') => out.push('\u{1a}'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// The text inside parentheses that enclose all of `text`, if they do.
fn enclosed(text: &str) -> Option<&str> {
    let inner = text.strip_prefix('(')?.strip_suffix(')')?;
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in inner.chars() {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(_) if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '\'' | '"' | '`' => quote = Some(c),
                '(' => depth += 1,
                ')' if depth == 0 => return None,
                ')' => depth -= 1,
                _ => {}
            },
        }
    }
    (depth == 0 && quote.is_none()).then_some(inner)
}

/// A column default in one form for both flavors: the SQL expression text
/// (`'abc'`, `0`, `1.50`, `b'101'`, `current_timestamp()`, `(1 + 2)`), `None`
/// for no default and for `DEFAULT NULL`.
///
/// MariaDB 10.2.7+ already reports expressions (and the text `NULL` for a
/// NULL default). MySQL reports literals unquoted (`abc`) and marks
/// expression defaults with `DEFAULT_GENERATED` in `EXTRA`, spelt as its
/// other expressions (see [`normalize_expression`]: `('abc')` reads
/// `_utf8mb4\'abc\'`); its `CURRENT_TIMESTAMP` is written MariaDB's way,
/// `current_timestamp()`.
pub fn normalize_default(
    flavor: Flavor,
    default: Option<&str>,
    data_type: &str,
    extra: &str,
) -> Option<String> {
    let default = default?;
    match flavor {
        Flavor::MariaDb => (!default.eq_ignore_ascii_case("NULL")).then(|| default.to_string()),
        Flavor::MySql => {
            let data_type = data_type.to_ascii_lowercase();
            if extra.to_ascii_uppercase().contains("DEFAULT_GENERATED") {
                let expression = mysql_expression(default, QuoteStyle::Doubled);
                Some(current_timestamp_spelling(&expression))
            } else if is_numeric(&data_type)
                || (data_type == "bit" && default.starts_with("b'"))
                || (is_binary(&data_type) && default.starts_with("0x"))
            {
                Some(default.to_string())
            } else {
                Some(quote_literal(default))
            }
        }
    }
}

fn current_timestamp_spelling(expression: &str) -> String {
    let upper = expression.to_ascii_uppercase();
    match upper.strip_prefix("CURRENT_TIMESTAMP") {
        Some("") => "current_timestamp()".to_string(),
        Some(rest) if rest.starts_with('(') => format!("current_timestamp{rest}"),
        _ => expression.to_string(),
    }
}

fn is_numeric(data_type: &str) -> bool {
    matches!(
        data_type,
        "tinyint"
            | "smallint"
            | "mediumint"
            | "int"
            | "integer"
            | "bigint"
            | "decimal"
            | "numeric"
            | "float"
            | "double"
            | "real"
            | "year"
    )
}

fn is_binary(data_type: &str) -> bool {
    matches!(
        data_type,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob"
    )
}

/// A string literal as MariaDB writes one: `'` doubled, `\` escaped.
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// One row of a catalog query, read by position.
pub struct CatalogRow(pub Vec<MyValue>);

impl CatalogRow {
    /// The cell as text; `None` for NULL.
    pub fn opt(&self, index: usize) -> Option<String> {
        match self.0.get(index)? {
            MyValue::NULL => None,
            MyValue::Bytes(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
            MyValue::Int(i) => Some(i.to_string()),
            MyValue::UInt(u) => Some(u.to_string()),
            other => Some(format!("{other:?}")),
        }
    }

    /// The cell as text; empty for NULL.
    pub fn text(&self, index: usize) -> String {
        self.opt(index).unwrap_or_default()
    }

    /// The cell as a non-negative number.
    pub fn number(&self, index: usize) -> Option<u64> {
        match self.0.get(index)? {
            MyValue::Int(i) => u64::try_from(*i).ok(),
            MyValue::UInt(u) => Some(*u),
            MyValue::Bytes(bytes) => std::str::from_utf8(bytes).ok()?.trim().parse().ok(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    // No default / DEFAULT NULL: None in both.
    #[case(Flavor::MariaDb, None, "int", "", None)]
    #[case(Flavor::MariaDb, Some("NULL"), "int", "", None)]
    #[case(Flavor::MySql, None, "int", "", None)]
    // String literals: MariaDB quotes, MySQL does not.
    #[case(
        Flavor::MariaDb,
        Some("'it''s\\\\'"),
        "varchar",
        "",
        Some("'it''s\\\\'")
    )]
    #[case(Flavor::MySql, Some("it's\\"), "varchar", "", Some("'it''s\\\\'"))]
    #[case(Flavor::MariaDb, Some("'NULL'"), "varchar", "", Some("'NULL'"))]
    #[case(Flavor::MySql, Some("NULL"), "varchar", "", Some("'NULL'"))]
    #[case(Flavor::MySql, Some("a"), "enum", "", Some("'a'"))]
    #[case(
        Flavor::MySql,
        Some("2020-01-01 00:00:00.000000"),
        "datetime",
        "",
        Some("'2020-01-01 00:00:00.000000'")
    )]
    // Numbers and bit literals as they are.
    #[case(Flavor::MariaDb, Some("1.50"), "decimal", "", Some("1.50"))]
    #[case(Flavor::MySql, Some("1.50"), "decimal", "", Some("1.50"))]
    #[case(Flavor::MySql, Some("-3"), "int", "", Some("-3"))]
    #[case(Flavor::MySql, Some("b'101'"), "bit", "", Some("b'101'"))]
    #[case(Flavor::MySql, Some("0x6162"), "varbinary", "", Some("0x6162"))]
    // Expressions.
    #[case(
        Flavor::MariaDb,
        Some("current_timestamp()"),
        "timestamp",
        "on update current_timestamp()",
        Some("current_timestamp()")
    )]
    #[case(
        Flavor::MySql,
        Some("CURRENT_TIMESTAMP"),
        "datetime",
        "DEFAULT_GENERATED",
        Some("current_timestamp()")
    )]
    #[case(
        Flavor::MySql,
        Some("CURRENT_TIMESTAMP(3)"),
        "timestamp",
        "DEFAULT_GENERATED on update CURRENT_TIMESTAMP(3)",
        Some("current_timestamp(3)")
    )]
    #[case(Flavor::MariaDb, Some("(1 + 2)"), "int", "", Some("(1 + 2)"))]
    #[case(
        Flavor::MySql,
        Some("(1 + 2)"),
        "int",
        "DEFAULT_GENERATED",
        Some("(1 + 2)")
    )]
    fn defaults_normalize_to_sql_expressions(
        #[case] flavor: Flavor,
        #[case] reported: Option<&str>,
        #[case] data_type: &str,
        #[case] extra: &str,
        #[case] expected: Option<&str>,
    ) {
        assert_eq!(
            normalize_default(flavor, reported, data_type, extra).as_deref(),
            expected
        );
    }

    #[rstest]
    #[case(Flavor::MySql, "(`quantity` > 0)", "`quantity` > 0")]
    #[case(Flavor::MySql, "(`a` + 1) * (`b` + 1)", "(`a` + 1) * (`b` + 1)")]
    #[case(Flavor::MySql, "((`a` > 0) and (`b` > 0))", "(`a` > 0) and (`b` > 0)")]
    #[case(Flavor::MySql, "(`s` <> _utf8mb4')')", "`s` <> ')'")]
    #[case(Flavor::MySql, "concat(`a`, ')')", "concat(`a`, ')')")]
    #[case(Flavor::MariaDb, "(`a` > 0)", "(`a` > 0)")]
    fn expressions_lose_mysql_outer_parentheses(
        #[case] flavor: Flavor,
        #[case] reported: &str,
        #[case] expected: &str,
    ) {
        assert_eq!(normalize_expression(flavor, reported.to_string()), expected);
    }

    /// MySQL 9.7's `information_schema` text (read with `mysql -r`) next to
    /// what MariaDB 10.11 reports for the same definition.
    #[rstest]
    // CHECK (st <> 'bad')
    #[case(r"(`st` <> _utf8mb4\'bad\')", r"`st` <> 'bad'")]
    // CHECK (s <> 'a''b\\c')
    #[case(r"(`s` <> _utf8mb4\'a\\\'b\\\\c\')", r"`s` <> 'a\'b\\c'")]
    // AS (CONCAT(email, 'it''s', '\n', 'a\\b'))
    #[case(
        r"concat(`email`,_utf8mb4\'it\\\'s\',_utf8mb4\'\\n\',_utf8mb4\'a\\\\b\')",
        r"concat(`email`,'it\'s','\n','a\\b')"
    )]
    // Identifiers that look like introducers or hold quotes stay as they are.
    #[case(r"(`_utf8mb4` > 0)", r"`_utf8mb4` > 0")]
    #[case(r"(`it's` <> _latin1\'x\')", r"`it's` <> 'x'")]
    #[case(r"(`a_b` + my_fn(_c))", r"`a_b` + my_fn(_c)")]
    // _binary changes the value's type: kept.
    #[case(r"(`b` <> _binary\'x\')", r"`b` <> _binary'x'")]
    fn mysql_expressions_read_as_mariadb_writes_them(
        #[case] reported: &str,
        #[case] expected: &str,
    ) {
        assert_eq!(
            normalize_expression(Flavor::MySql, reported.to_string()),
            expected
        );
    }

    #[rstest]
    // DEFAULT ('[]') on a JSON column; MariaDB: '[]'
    #[case(r"_utf8mb4\'[]\'", "'[]'")]
    // DEFAULT ('it''s'); MariaDB: 'it''s'
    #[case(r"_utf8mb4\'it\\\'s\'", "'it''s'")]
    // DEFAULT ('x\\y'); MariaDB: 'x\\y'
    #[case(r"_utf8mb4\'x\\\\y\'", r"'x\\y'")]
    #[case("rand()", "rand()")]
    #[case("uuid()", "uuid()")]
    fn mysql_expression_defaults_read_as_mariadb_writes_them(
        #[case] reported: &str,
        #[case] expected: &str,
    ) {
        assert_eq!(
            normalize_default(Flavor::MySql, Some(reported), "text", "DEFAULT_GENERATED")
                .as_deref(),
            Some(expected)
        );
    }

    #[test]
    fn mysql_index_expressions_lose_the_escaping_only() {
        assert_eq!(
            normalize_index_expression(
                Flavor::MySql,
                r"lower(concat(`email`,_utf8mb4\'q\\\'r\'))".to_string()
            ),
            r"lower(concat(`email`,'q\'r'))"
        );
        assert_eq!(
            normalize_index_expression(Flavor::MariaDb, r"a\'b".to_string()),
            r"a\'b"
        );
    }

    #[test]
    fn queries_alias_and_bind_every_schema() {
        for flavor in [Flavor::MySql, Flavor::MariaDb] {
            let sql = fingerprint(flavor, 2);
            assert_eq!(sql.matches('?').count(), 2 * FINGERPRINT_PARTS, "{sql}");
            assert!(checks(flavor, 3).contains("IN (?, ?, ?)"));
            assert!(statistics(flavor, 1).contains(" AS expression"));
        }
        assert!(checks(Flavor::MySql, 1).contains("TABLE_CONSTRAINTS"));
        assert!(checks(Flavor::MySql, 1).contains("ENFORCED = 'YES'"));
        assert!(fingerprint(Flavor::MySql, 1).contains("tc.ENFORCED"));
        assert!(!checks(Flavor::MariaDb, 1).contains("TABLE_CONSTRAINTS"));
    }

    #[test]
    fn catalog_cells() {
        let row = CatalogRow(vec![
            MyValue::Bytes(b"abc".to_vec()),
            MyValue::NULL,
            MyValue::UInt(7),
            MyValue::Bytes(b"12".to_vec()),
        ]);
        assert_eq!(row.text(0), "abc");
        assert_eq!(row.opt(1), None);
        assert_eq!(row.text(1), "");
        assert_eq!(row.number(2), Some(7));
        assert_eq!(row.number(3), Some(12));
        assert_eq!(row.number(9), None);
    }
}
