//! How SQL Server spells the SQL we generate: `[ident]` with `]` doubled,
//! `@P1, @P2, …` placeholders (tiberius binds by those names), and
//! `OUTPUT` instead of `RETURNING` (rendered by `render.rs`).

use tributary_connector::Dialect;
use tributary_connector::dialect::ReturningSupport;

/// SQL Server's dialect.
#[derive(Debug, Clone, Copy, Default)]
pub struct SqlServerDialect;

impl Dialect for SqlServerDialect {
    fn quote_identifier(&self, ident: &str) -> String {
        let mut out = String::with_capacity(ident.len() + 2);
        out.push('[');
        for c in ident.chars() {
            if c == ']' {
                out.push(']');
            }
            out.push(c);
        }
        out.push(']');
        out
    }

    fn placeholder(&self, index: usize) -> String {
        format!("@P{index}")
    }

    /// SQL Server has no `RETURNING`: core's renderers must not append one.
    /// Returned rows come from the `OUTPUT` clause this crate renders itself.
    fn returning(&self) -> ReturningSupport {
        ReturningSupport {
            insert: false,
            update: false,
            delete: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brackets_and_placeholders() {
        let d = SqlServerDialect;
        assert_eq!(d.quote_identifier("order"), "[order]");
        assert_eq!(d.quote_identifier("a]b"), "[a]]b]");
        assert_eq!(d.quote_identifier("]]"), "[]]]]]");
        assert_eq!(d.quote_identifier("it's [x] y"), "[it's [x]] y]");
        assert_eq!(d.placeholder(1), "@P1");
        assert_eq!(d.placeholder(12), "@P12");
        assert_eq!(d.default_values(), "DEFAULT VALUES");
    }
}
