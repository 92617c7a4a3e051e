//! SQL dialects: identifier quoting, parameter placeholders and what the
//! database can return from a write. Pure: no I/O, golden-testable.

use std::fmt::Debug;

/// How one database family spells the parts of SQL we generate.
pub trait Dialect: Send + Sync + Debug {
    /// Quotes an identifier (always, so names that are keywords or mixed case work).
    fn quote_identifier(&self, ident: &str) -> String;
    /// Appends `ident` to `out` quoted as [`Self::quote_identifier`] quotes
    /// it (statements are rendered on every write: without a string each).
    fn push_identifier(&self, out: &mut String, ident: &str) {
        out.push_str(&self.quote_identifier(ident));
    }
    /// The placeholder for the `index`-th parameter (1-based).
    fn placeholder(&self, index: usize) -> String;
    /// Appends [`Self::placeholder`] for `index` to `out`.
    fn push_placeholder(&self, out: &mut String, index: usize) {
        out.push_str(&self.placeholder(index));
    }
    /// Which writes accept a `RETURNING` clause.
    fn returning(&self) -> ReturningSupport;
    /// The SQL for a single row of all defaults (`INSERT INTO t <this>`).
    fn default_values(&self) -> &'static str {
        "DEFAULT VALUES"
    }
    /// Has PostgreSQL's `jsonb` and its operators (`||`, `-`, `#-`), which
    /// [`crate::JsonEdit`]s are written with; other databases' JSON
    /// functions merge and remove differently, so the server edits their
    /// documents itself ([`crate::JsonEdit::apply`]).
    fn jsonb_operators(&self) -> bool {
        false
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
    push_quoted(&mut out, ident, quote);
    out
}

/// Appends `ident` between `quote`s, each `quote` in it doubled.
fn push_quoted(out: &mut String, ident: &str, quote: char) {
    out.reserve(ident.len() + 2);
    out.push(quote);
    let mut parts = ident.split(quote);
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for part in parts {
        out.push(quote);
        out.push(quote);
        out.push_str(part);
    }
    out.push(quote);
}

/// Appends `prefix` and `index` (`$1`, `?1`).
fn push_numbered(out: &mut String, prefix: char, index: usize) {
    use std::fmt::Write as _;
    out.push(prefix);
    // Writing to a String cannot fail.
    let _ = write!(out, "{index}");
}

/// PostgreSQL (and KingbaseES): `"ident"`, `$1`, RETURNING everywhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgresDialect;

impl Dialect for PostgresDialect {
    fn quote_identifier(&self, ident: &str) -> String {
        quote_with(ident, '"')
    }
    fn push_identifier(&self, out: &mut String, ident: &str) {
        push_quoted(out, ident, '"');
    }
    fn placeholder(&self, index: usize) -> String {
        format!("${index}")
    }
    fn push_placeholder(&self, out: &mut String, index: usize) {
        push_numbered(out, '$', index);
    }
    fn returning(&self) -> ReturningSupport {
        ReturningSupport {
            insert: true,
            update: true,
            delete: true,
        }
    }
    fn jsonb_operators(&self) -> bool {
        true
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
    fn push_identifier(&self, out: &mut String, ident: &str) {
        push_quoted(out, ident, '`');
    }
    fn placeholder(&self, _index: usize) -> String {
        "?".to_string()
    }
    fn push_placeholder(&self, out: &mut String, _index: usize) {
        out.push('?');
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
    fn push_identifier(&self, out: &mut String, ident: &str) {
        push_quoted(out, ident, '"');
    }
    fn placeholder(&self, index: usize) -> String {
        format!("?{index}")
    }
    fn push_placeholder(&self, out: &mut String, index: usize) {
        push_numbered(out, '?', index);
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

    /// What statements are built with (appended in place) is what
    /// `quote_identifier` and `placeholder` answer.
    #[test]
    fn appended_identifiers_and_placeholders_are_the_quoted_ones() {
        let dialects: [&dyn Dialect; 3] = [
            &PostgresDialect,
            &MySqlDialect { mariadb: true },
            &SqliteDialect,
        ];
        let names = [
            "",
            "plain",
            "\"",
            "``",
            "a\"b`c",
            "\"lead",
            "trail`",
            "x\"\"y",
            "ünï ☃",
            "a;DROP",
        ];
        for dialect in dialects {
            for name in names {
                let mut out = String::from("<");
                dialect.push_identifier(&mut out, name);
                assert_eq!(
                    out,
                    format!("<{}", dialect.quote_identifier(name)),
                    "{dialect:?} {name}"
                );
            }
            for index in [1, 9, 10, 12345] {
                let mut out = String::from("=");
                dialect.push_placeholder(&mut out, index);
                assert_eq!(
                    out,
                    format!("={}", dialect.placeholder(index)),
                    "{dialect:?}"
                );
            }
        }
        for (name, quoted) in [
            ("x\"\"y", r#""x""""y""#),
            ("\"lead", r#""""lead""#),
            ("", r#""""#),
        ] {
            let mut out = String::new();
            PostgresDialect.push_identifier(&mut out, name);
            assert_eq!(out, quoted);
        }
        let mut out = String::new();
        MySqlDialect::default().push_identifier(&mut out, "trail`");
        assert_eq!(out, "`trail```");
    }

    #[test]
    fn placeholders() {
        assert_eq!(PostgresDialect.placeholder(3), "$3");
        assert_eq!(MySqlDialect { mariadb: true }.placeholder(3), "?");
        assert_eq!(SqliteDialect.placeholder(3), "?3");
    }
}
