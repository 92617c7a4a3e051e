//! SQL dialects: identifier quoting, parameter placeholders and what the
//! database can return from a write. Pure: no I/O, golden-testable.

use std::fmt::Debug;

/// How one database family spells the parts of SQL we generate.
pub trait Dialect: Send + Sync + Debug {
    /// Quotes an identifier (always, so names that are keywords or mixed case work).
    fn quote_identifier(&self, ident: &str) -> String;
    /// The placeholder for the `index`-th parameter (1-based).
    fn placeholder(&self, index: usize) -> String;
    /// Which writes accept a `RETURNING` clause.
    fn returning(&self) -> ReturningSupport;
    /// The SQL for a single row of all defaults (`INSERT INTO t <this>`).
    fn default_values(&self) -> &'static str {
        "DEFAULT VALUES"
    }
}

/// Which write statements take `RETURNING`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReturningSupport {
    pub insert: bool,
    pub update: bool,
    pub delete: bool,
}

fn quote_with(ident: &str, quote: char) -> String {
    let mut out = String::with_capacity(ident.len() + 2);
    out.push(quote);
    for c in ident.chars() {
        if c == quote {
            out.push(quote);
        }
        out.push(c);
    }
    out.push(quote);
    out
}

/// PostgreSQL (and KingbaseES): `"ident"`, `$1`, RETURNING everywhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgresDialect;

impl Dialect for PostgresDialect {
    fn quote_identifier(&self, ident: &str) -> String {
        quote_with(ident, '"')
    }
    fn placeholder(&self, index: usize) -> String {
        format!("${index}")
    }
    fn returning(&self) -> ReturningSupport {
        ReturningSupport {
            insert: true,
            update: true,
            delete: true,
        }
    }
}

/// MySQL and MariaDB: `` `ident` ``, `?`. MariaDB 10.5+ has `INSERT … RETURNING`
/// and `DELETE … RETURNING` but no `UPDATE … RETURNING`; MySQL has none.
#[derive(Debug, Clone, Copy, Default)]
pub struct MySqlDialect {
    pub mariadb: bool,
}

impl Dialect for MySqlDialect {
    fn quote_identifier(&self, ident: &str) -> String {
        quote_with(ident, '`')
    }
    fn placeholder(&self, _index: usize) -> String {
        "?".to_string()
    }
    fn returning(&self) -> ReturningSupport {
        ReturningSupport {
            insert: self.mariadb,
            update: false,
            delete: self.mariadb,
        }
    }
    fn default_values(&self) -> &'static str {
        "() VALUES ()"
    }
}

/// SQLite: `"ident"`, `?1`, RETURNING everywhere (3.35+; the bundled library is newer).
#[derive(Debug, Clone, Copy, Default)]
pub struct SqliteDialect;

impl Dialect for SqliteDialect {
    fn quote_identifier(&self, ident: &str) -> String {
        quote_with(ident, '"')
    }
    fn placeholder(&self, index: usize) -> String {
        format!("?{index}")
    }
    fn returning(&self) -> ReturningSupport {
        ReturningSupport {
            insert: true,
            update: true,
            delete: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_the_quote_character() {
        assert_eq!(
            PostgresDialect.quote_identifier(r#"we"ird"#),
            r#""we""ird""#
        );
        assert_eq!(MySqlDialect::default().quote_identifier("a`b"), "`a``b`");
        assert_eq!(
            SqliteDialect.quote_identifier("Order Items"),
            r#""Order Items""#
        );
    }

    #[test]
    fn placeholders() {
        assert_eq!(PostgresDialect.placeholder(3), "$3");
        assert_eq!(MySqlDialect { mariadb: true }.placeholder(3), "?");
        assert_eq!(SqliteDialect.placeholder(3), "?3");
    }
}
