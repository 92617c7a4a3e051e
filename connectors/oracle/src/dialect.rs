//! `OracleDialect`: how Oracle spells the SQL the connector generates —
//! `"QUOTED"` identifiers, `:1` positional binds, and `RETURNING … INTO`
//! (rendered by `write_sql.rs`, since it needs out binds).

use tributary_connector::{Dialect, ReturningSupport};

/// Oracle Database.
#[derive(Debug, Clone, Copy, Default)]
pub struct OracleDialect;

impl Dialect for OracleDialect {
    /// Always quoted, so names keep their stored case (upper case unless
    /// created quoted) and keywords work as names. Oracle names cannot
    /// contain `"` at all; a doubled one can never come from the catalog,
    /// and the write path refuses column names the catalog does not have.
    fn quote_identifier(&self, ident: &str) -> String {
        let mut out = String::with_capacity(ident.len() + 2);
        out.push('"');
        for c in ident.chars() {
            if c == '"' {
                out.push('"');
            }
            out.push(c);
        }
        out.push('"');
        out
    }

    fn placeholder(&self, index: usize) -> String {
        format!(":{index}")
    }

    /// Oracle returns from every DML statement, but as `RETURNING … INTO`
    /// out binds, which the generic renderer cannot spell: the connector
    /// renders its writes itself (`write_sql.rs`).
    fn returning(&self) -> ReturningSupport {
        ReturningSupport {
            insert: true,
            update: true,
            delete: true,
        }
    }

    /// Oracle has no `DEFAULT VALUES`; the connector's own insert renderer
    /// writes `("<first column>") VALUES (DEFAULT)` instead. This is what a
    /// single-column table takes.
    fn default_values(&self) -> &'static str {
        "VALUES (DEFAULT)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_placeholders() {
        assert_eq!(OracleDialect.quote_identifier("ORDERS"), r#""ORDERS""#);
        assert_eq!(
            OracleDialect.quote_identifier("MixedCase"),
            r#""MixedCase""#
        );
        assert_eq!(OracleDialect.quote_identifier(r#"a"b"#), r#""a""b""#);
        assert_eq!(OracleDialect.placeholder(1), ":1");
        assert_eq!(OracleDialect.placeholder(12), ":12");
    }
}
