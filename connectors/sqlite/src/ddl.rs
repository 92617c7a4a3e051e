//! Reads what SQLite's pragmas do not report from the stored `CREATE TABLE`
//! / `CREATE INDEX` text: CHECK constraints, generated column expressions,
//! constraint names, `AUTOINCREMENT`, `PRIMARY KEY DESC` (which keeps an
//! INTEGER column from being a rowid alias) and expression index terms.
//!
//! A small tokenizer (identifiers in every SQLite quoting style, strings,
//! comments, parentheses) — enough to find these clauses, not a SQL parser.

/// What one `CREATE TABLE` statement declares beyond the pragmas.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct TableDdl {
    pub(crate) columns: Vec<ColumnDdl>,
    pub(crate) constraints: Vec<Constraint>,
}

/// What one column definition declares.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ColumnDdl {
    pub(crate) name: String,
    /// `GENERATED ALWAYS AS (expr)` / `AS (expr)`: the expression text.
    pub(crate) generated: Option<String>,
    pub(crate) autoincrement: bool,
    /// `PRIMARY KEY DESC` on the column itself.
    pub(crate) primary_key_desc: bool,
}

/// A named or unnamed constraint, table-level or column-level (then with
/// that one column).
#[derive(Debug, PartialEq)]
pub(crate) enum Constraint {
    PrimaryKey {
        name: Option<String>,
        columns: Vec<String>,
    },
    Unique {
        name: Option<String>,
        columns: Vec<String>,
    },
    Check {
        name: Option<String>,
        expression: String,
    },
    ForeignKey {
        name: Option<String>,
        columns: Vec<String>,
        table: String,
    },
}

impl TableDdl {
    pub(crate) fn column(&self, name: &str) -> Option<&ColumnDdl> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// A bare word: keyword, identifier, number or operator run.
    Word,
    /// A quoted identifier (`"x"`, `` `x` ``, `[x]`).
    Quoted,
    /// A string literal.
    Str,
    Open,
    Close,
    Comma,
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

struct Tokens<'a> {
    sql: &'a str,
    tokens: Vec<Token>,
}

impl<'a> Tokens<'a> {
    fn new(sql: &'a str) -> Self {
        Self {
            sql,
            tokens: tokenize(sql),
        }
    }

    fn text(&self, token: Token) -> &'a str {
        &self.sql[token.start..token.end]
    }

    fn is_keyword(&self, index: usize, keyword: &str) -> bool {
        self.tokens
            .get(index)
            .is_some_and(|t| t.kind == Kind::Word && self.text(*t).eq_ignore_ascii_case(keyword))
    }

    /// The identifier at `index`, unquoted.
    fn identifier(&self, index: usize) -> Option<String> {
        let token = *self.tokens.get(index)?;
        let text = self.text(token);
        match token.kind {
            Kind::Word | Kind::Str | Kind::Quoted => Some(unquote(text)),
            _ => None,
        }
    }

    /// The index of the `)` matching the `(` at `open`.
    fn matching_close(&self, open: usize) -> Option<usize> {
        let mut depth = 0usize;
        for (i, token) in self.tokens.iter().enumerate().skip(open) {
            match token.kind {
                Kind::Open => depth += 1,
                Kind::Close => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        return Some(i);
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// The source text strictly between tokens `open` and `close`.
    fn between(&self, open: usize, close: usize) -> String {
        self.sql[self.tokens[open].end..self.tokens[close].start]
            .trim()
            .to_string()
    }

    /// Splits tokens `from..to` at top-level commas.
    fn split_commas(&self, from: usize, to: usize) -> Vec<(usize, usize)> {
        let mut items = Vec::new();
        let (mut depth, mut start) = (0usize, from);
        for i in from..to {
            match self.tokens[i].kind {
                Kind::Open => depth += 1,
                Kind::Close => depth = depth.saturating_sub(1),
                Kind::Comma if depth == 0 => {
                    items.push((start, i));
                    start = i + 1;
                }
                _ => {}
            }
        }
        if start < to {
            items.push((start, to));
        }
        items
    }

    /// The first top-level `(` at or after `from`.
    fn next_open(&self, from: usize) -> Option<usize> {
        (from..self.tokens.len()).find(|&i| self.tokens[i].kind == Kind::Open)
    }
}

fn unquote(text: &str) -> String {
    let mut chars = text.chars();
    match (chars.next(), text.chars().last()) {
        (Some(q @ ('"' | '`' | '\'')), Some(end)) if end == q && text.len() >= 2 => {
            let inner = &text[1..text.len() - 1];
            let doubled: String = [q, q].iter().collect();
            inner.replace(&doubled, &q.to_string())
        }
        (Some('['), Some(']')) => text[1..text.len() - 1].to_string(),
        _ => text.to_string(),
    }
}

fn tokenize(sql: &str) -> Vec<Token> {
    let bytes = sql.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let kind = match bytes[i] {
            b if b.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n);
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |n| i + 2 + n + 2);
                continue;
            }
            quote @ (b'"' | b'`' | b'\'') => {
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => break,
                        Some(&b) if b == quote && bytes.get(i + 1) == Some(&quote) => i += 2,
                        Some(&b) if b == quote => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
                if quote == b'\'' {
                    Kind::Str
                } else {
                    Kind::Quoted
                }
            }
            b'[' => {
                i = sql[i..].find(']').map_or(bytes.len(), |n| i + n + 1);
                Kind::Quoted
            }
            b'(' => {
                i += 1;
                Kind::Open
            }
            b')' => {
                i += 1;
                Kind::Close
            }
            b',' => {
                i += 1;
                Kind::Comma
            }
            b if b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80 => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] >= 0x80)
                {
                    i += 1;
                }
                Kind::Word
            }
            _ => {
                i += 1;
                Kind::Other
            }
        };
        tokens.push(Token {
            kind,
            start,
            end: i,
        });
    }
    tokens
}

/// Parses a `CREATE TABLE name (definitions) [options]` statement.
/// Returns an empty model when the text does not have that shape.
pub(crate) fn parse_create_table(sql: &str) -> TableDdl {
    let t = Tokens::new(sql);
    let mut model = TableDdl::default();
    let Some(open) = t.next_open(0) else {
        return model;
    };
    let Some(close) = t.matching_close(open) else {
        return model;
    };
    for (from, to) in t.split_commas(open + 1, close) {
        if from >= to {
            continue;
        }
        let first_is = |kw: &str| t.is_keyword(from, kw);
        if ["CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"]
            .iter()
            .any(|kw| first_is(kw))
        {
            parse_constraints(&t, from, to, None, &mut model.constraints);
        } else if let Some(name) = t.identifier(from) {
            let mut column = ColumnDdl {
                name: name.clone(),
                ..ColumnDdl::default()
            };
            parse_column(&t, from + 1, to, &mut column, &mut model.constraints);
            model.columns.push(column);
        }
    }
    model
}

/// Column constraints of one column definition (after its name).
fn parse_column(
    t: &Tokens<'_>,
    from: usize,
    to: usize,
    column: &mut ColumnDdl,
    out: &mut Vec<Constraint>,
) {
    let mut i = from;
    while i < to {
        if t.is_keyword(i, "AS") {
            if let Some((open, close)) = paren_after(t, i + 1, to) {
                column.generated = Some(t.between(open, close));
                i = close + 1;
                continue;
            }
        } else if t.is_keyword(i, "AUTOINCREMENT") {
            column.autoincrement = true;
        } else if t.is_keyword(i, "PRIMARY") && t.is_keyword(i + 2, "DESC") {
            column.primary_key_desc = true;
        }
        if ["CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "REFERENCES"]
            .iter()
            .any(|kw| t.is_keyword(i, kw))
        {
            i = parse_constraints(t, i, to, Some(&column.name), out).max(i + 1);
            continue;
        }
        i = skip_group(t, i, to);
    }
}

/// One constraint at `i` (optionally named), for `column` or the table.
/// Returns the index after what it consumed.
fn parse_constraints(
    t: &Tokens<'_>,
    mut i: usize,
    to: usize,
    column: Option<&str>,
    out: &mut Vec<Constraint>,
) -> usize {
    let mut name = None;
    if t.is_keyword(i, "CONSTRAINT") {
        name = t.identifier(i + 1);
        i += 2;
    }
    let own = || column.map(|c| vec![c.to_string()]).unwrap_or_default();
    if t.is_keyword(i, "PRIMARY") || t.is_keyword(i, "UNIQUE") {
        let primary = t.is_keyword(i, "PRIMARY");
        let mut columns = own();
        let mut next = i + if primary { 2 } else { 1 };
        if let (None, Some((open, close))) = (column, paren_after(t, next, to)) {
            columns = indexed_columns(t, open, close);
            next = close + 1;
        }
        out.push(if primary {
            Constraint::PrimaryKey { name, columns }
        } else {
            Constraint::Unique { name, columns }
        });
        return next;
    }
    if t.is_keyword(i, "CHECK") {
        if let Some((open, close)) = paren_after(t, i + 1, to) {
            out.push(Constraint::Check {
                name,
                expression: t.between(open, close),
            });
            return close + 1;
        }
        return i + 1;
    }
    if t.is_keyword(i, "FOREIGN") {
        if let Some((open, close)) = paren_after(t, i + 2, to) {
            let columns = indexed_columns(t, open, close);
            if t.is_keyword(close + 1, "REFERENCES") {
                if let Some(table) = t.identifier(close + 2) {
                    out.push(Constraint::ForeignKey {
                        name,
                        columns,
                        table,
                    });
                }
                return close + 3;
            }
            return close + 1;
        }
        return i + 1;
    }
    if t.is_keyword(i, "REFERENCES") {
        if let Some(table) = t.identifier(i + 1) {
            out.push(Constraint::ForeignKey {
                name,
                columns: own(),
                table,
            });
        }
        return i + 2;
    }
    // A named constraint of another kind (NOT NULL, DEFAULT, COLLATE …).
    i
}

/// `(open, close)` when the token at `i` (before `to`) is `(`.
fn paren_after(t: &Tokens<'_>, i: usize, to: usize) -> Option<(usize, usize)> {
    (i < to && t.tokens.get(i)?.kind == Kind::Open).then_some(())?;
    let close = t.matching_close(i)?;
    (close < to).then_some((i, close))
}

/// Skips the token at `i`, or a whole parenthesized group starting there.
fn skip_group(t: &Tokens<'_>, i: usize, to: usize) -> usize {
    match paren_after(t, i, to) {
        Some((_, close)) => close + 1,
        None => i + 1,
    }
}

/// Column names of an indexed-column list (`a, b COLLATE nocase DESC`).
fn indexed_columns(t: &Tokens<'_>, open: usize, close: usize) -> Vec<String> {
    t.split_commas(open + 1, close)
        .into_iter()
        .filter_map(|(from, _)| t.identifier(from))
        .collect()
}

/// The terms of a `CREATE INDEX … ON table (terms) [WHERE …]` statement, as
/// written (without `ASC`/`DESC`), for expression index columns.
pub(crate) fn index_terms(sql: &str) -> Vec<String> {
    let t = Tokens::new(sql);
    let Some(on) = (0..t.tokens.len()).find(|&i| t.is_keyword(i, "ON")) else {
        return Vec::new();
    };
    let Some(open) = t.next_open(on) else {
        return Vec::new();
    };
    let Some(close) = t.matching_close(open) else {
        return Vec::new();
    };
    t.split_commas(open + 1, close)
        .into_iter()
        .filter(|(from, to)| from < to)
        .map(|(from, to)| {
            let last = to.saturating_sub(1);
            let end = if to - from > 1 && (t.is_keyword(last, "ASC") || t.is_keyword(last, "DESC"))
            {
                last
            } else {
                to
            };
            t.sql[t.tokens[from].start..t.tokens[end - 1].end]
                .trim()
                .to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_constraints_and_generated_expressions() {
        let ddl = parse_create_table(
            r#"CREATE TABLE "order lines" (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                [sku] VARCHAR(20) NOT NULL CONSTRAINT sku_unique UNIQUE,
                qty INT DEFAULT (1) CHECK (qty > 0), -- a comment, with (parens
                price DECIMAL(10,2) CONSTRAINT positive CHECK(price >= 0 AND price < 1e9),
                total DECIMAL(12,2) GENERATED ALWAYS AS (qty * price) STORED,
                label TEXT AS (upper(sku) || ',') VIRTUAL,
                "we""ird" TEXT REFERENCES other(x) ON DELETE CASCADE,
                /* table constraints */
                CONSTRAINT lines_fk FOREIGN KEY (qty, price) REFERENCES `prices` (q, p),
                UNIQUE (sku, qty),
                CHECK (length(sku) > 2)
            ) STRICT"#,
        );
        let names: Vec<&str> = ddl.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["id", "sku", "qty", "price", "total", "label", "we\"ird"]
        );
        assert!(ddl.column("ID").unwrap().autoincrement);
        assert_eq!(
            ddl.column("total").unwrap().generated.as_deref(),
            Some("qty * price")
        );
        assert_eq!(
            ddl.column("label").unwrap().generated.as_deref(),
            Some("upper(sku) || ','")
        );
        assert_eq!(ddl.column("qty").unwrap().generated, None);
        let col = |c: &str| vec![c.to_string()];
        assert_eq!(
            ddl.constraints,
            vec![
                Constraint::PrimaryKey {
                    name: None,
                    columns: col("id")
                },
                Constraint::Unique {
                    name: Some("sku_unique".into()),
                    columns: col("sku")
                },
                Constraint::Check {
                    name: None,
                    expression: "qty > 0".into()
                },
                Constraint::Check {
                    name: Some("positive".into()),
                    expression: "price >= 0 AND price < 1e9".into()
                },
                Constraint::ForeignKey {
                    name: None,
                    columns: col("we\"ird"),
                    table: "other".into()
                },
                Constraint::ForeignKey {
                    name: Some("lines_fk".into()),
                    columns: vec!["qty".into(), "price".into()],
                    table: "prices".into()
                },
                Constraint::Unique {
                    name: None,
                    columns: vec!["sku".into(), "qty".into()]
                },
                Constraint::Check {
                    name: None,
                    expression: "length(sku) > 2".into()
                },
            ]
        );
    }

    #[test]
    fn named_table_primary_key_and_desc_quirk() {
        let ddl = parse_create_table(
            "CREATE TABLE t(a INTEGER PRIMARY KEY DESC, b, CONSTRAINT pk PRIMARY KEY (a, b))",
        );
        assert!(ddl.column("a").unwrap().primary_key_desc);
        assert!(!ddl.column("b").unwrap().primary_key_desc);
        assert_eq!(
            ddl.constraints[1],
            Constraint::PrimaryKey {
                name: Some("pk".into()),
                columns: vec!["a".into(), "b".into()]
            }
        );
    }

    #[test]
    fn strings_hide_keywords_and_parentheses() {
        let ddl =
            parse_create_table("CREATE TABLE t(a TEXT DEFAULT 'CHECK (x' CHECK (a <> ')'), b)");
        assert_eq!(ddl.columns.len(), 2);
        assert_eq!(
            ddl.constraints,
            vec![Constraint::Check {
                name: None,
                expression: "a <> ')'".into()
            }]
        );
    }

    #[test]
    fn malformed_text_gives_an_empty_model() {
        assert_eq!(parse_create_table("CREATE TABLE t"), TableDdl::default());
        assert_eq!(parse_create_table("CREATE TABLE t(a"), TableDdl::default());
    }

    #[test]
    fn index_terms_as_written() {
        assert_eq!(
            index_terms(
                r#"CREATE UNIQUE INDEX "ix" ON t (lower(name) DESC, "b" COLLATE nocase, a + 1) WHERE a > 0"#
            ),
            vec![
                "lower(name)".to_string(),
                "\"b\" COLLATE nocase".to_string(),
                "a + 1".to_string()
            ]
        );
        assert!(index_terms("nonsense").is_empty());
    }
}
