//! SQL's `SIMILAR TO` patterns (Hasura's `_similar` / `_nsimilar`) as
//! regular expressions, converted as PostgreSQL converts them
//! (`similar_escape` in its `regexp.c`) before it matches with `~`: the
//! whole value must match (`^(?:…)$`), `%` is `.*`, `_` is `.` (either
//! matching a newline too: the `(?s)` both PostgreSQL and the engine's
//! regular expressions read), `.` `^`
//! `$` are literal, `(` groups without capturing, and `\` escapes the
//! next character (so `\%` is a literal `%`; `\d` keeps its regex
//! meaning, as in PostgreSQL). Inside a bracket expression characters
//! pass through. The filter then matches the regular expression: sent to
//! PostgreSQL, by the engine elsewhere — so `DataFusion`'s own reading of
//! `SIMILAR TO` (a regular expression as written) is never used.

/// The regular expression PostgreSQL matches for `SIMILAR TO pattern`, or
/// why the pattern is not one.
pub fn to_regex(pattern: &str) -> Result<String, String> {
    let mut out = String::with_capacity(pattern.len() + 8);
    out.push_str("(?s)^(?:");
    let mut after_escape = false;
    // Bracket expression nesting, and where in it we are: 1 just after
    // `[`, 2 just after `[^`, 3 later (a `]` closes only at 3).
    let mut class_depth = 0usize;
    let mut class_pos = 0u8;
    let mut quotes = 0u8;
    for c in pattern.chars() {
        if after_escape {
            after_escape = false;
            if c == '"' && class_depth == 0 {
                // An escape-double-quote splits the pattern in three (for
                // SUBSTRING); matching is unchanged.
                match quotes {
                    0 => out.push_str("){1,1}?("),
                    1 => out.push_str("){1,1}(?:"),
                    _ => {
                        return Err(
                            "a SIMILAR TO pattern takes at most two escape-double-quote separators"
                                .into(),
                        );
                    }
                }
                quotes += 1;
            } else {
                out.push('\\');
                out.push(c);
                class_pos = 3;
            }
        } else if c == '\\' {
            after_escape = true;
        } else if class_depth > 0 {
            out.push(c);
            if c == ']' && class_pos > 2 {
                class_depth -= 1;
            } else if c == '[' {
                class_depth += 1;
            }
            class_pos = if c == '^' && class_pos == 1 { 2 } else { 3 };
        } else {
            match c {
                '[' => {
                    out.push('[');
                    class_depth = 1;
                    class_pos = 1;
                }
                '%' => out.push_str(".*"),
                '_' => out.push('.'),
                '(' => out.push_str("(?:"),
                '.' | '^' | '$' => {
                    out.push('\\');
                    out.push(c);
                }
                _ => out.push(c),
            }
        }
    }
    // A trailing escape character escapes nothing: PostgreSQL drops it.
    out.push_str(")$");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::to_regex;

    fn matches(value: &str, pattern: &str) -> bool {
        let regex = to_regex(pattern).unwrap();
        regex::Regex::new(&regex).unwrap().is_match(value)
    }

    #[test]
    fn patterns_convert_as_postgresql_converts_them() {
        for (pattern, regex) in [
            ("abc", "^(?:abc)$"),
            ("a%", "^(?:a.*)$"),
            ("_b_", "^(?:.b.)$"),
            ("(a|b)%", "^(?:(?:a|b).*)$"),
            ("a.b^c$", r"^(?:a\.b\^c\$)$"),
            (r"100\%", r"^(?:100\%)$"),
            ("[%_.]x", "^(?:[%_.]x)$"),
            ("[]a]", "^(?:[]a])$"),
            ("[^]a]+", "^(?:[^]a]+)$"),
            (r"\d{2,3}", r"^(?:\d{2,3})$"),
            (r#"a\"b\"c"#, "^(?:a){1,1}?(b){1,1}(?:c)$"),
            (r"abc\", "^(?:abc)$"),
        ] {
            assert_eq!(
                to_regex(pattern).unwrap(),
                format!("(?s){regex}"),
                "{pattern}"
            );
        }
    }

    /// Answers PostgreSQL gives for `value SIMILAR TO pattern`.
    #[test]
    fn matches_answer_as_postgresql() {
        for (value, pattern, expected) in [
            ("abc", "abc", true),
            ("abc", "a", false),
            ("abc", "%(b|d)%", true),
            ("abc", "(b|c)%", false),
            ("abc", "a_c", true),
            ("a.c", "a.c", true),
            ("abc", "a.c", false),
            ("50%", r"50\%", true),
            ("500", r"50\%", false),
            ("aaa", "a+", true),
            ("AbC", "abc", false),
            ("x1", "x[0-9]", true),
            ("line\nbreak", "line%", true),
            ("abc", r"abc\", true),
        ] {
            assert_eq!(
                matches(value, pattern),
                expected,
                "{value} SIMILAR TO {pattern}"
            );
        }
    }

    #[test]
    fn a_third_escape_double_quote_is_refused() {
        assert!(to_regex(r#"a\"b\"c\"d"#).unwrap_err().contains("two"));
    }
}
