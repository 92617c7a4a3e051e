//! Reading Oracle `JSON` columns (21c+) as text. The `oracle` crate cannot
//! fetch the JSON type, so a statement whose result has a JSON column is run
//! wrapped:
//! `WITH "TRIBUTARY_JSON" ("C1", "C2", …) AS (<sql>) SELECT "C1", JSON_SERIALIZE("C2" RETURNING CLOB) "C2", … FROM "TRIBUTARY_JSON"`
//! with the same binds. Which columns are JSON comes from describing the
//! statement through `DBMS_SQL` ([`DESCRIBE_BLOCK`]), since the driver fails
//! before it shows its column metadata; [`JsonPlans`] remembers the wrapped
//! form per SQL text so later reads run it directly. Pure: the client layer
//! runs the statements.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tributary_connector::{ConnectorError, Dialect, Result};

use crate::dialect::OracleDialect;

/// `DBMS_SQL`'s (and `DUMP`'s) type code of the JSON type.
const JSON_TYPE_CODE: u32 = 119;

/// The name of the wrapping `WITH` query, unless the statement mentions it.
const WRAPPER_NAME: &str = "TRIBUTARY_JSON";

/// Describes the query bound as `:1` without running it and answers its
/// columns in `:2` as `<type code> <name>;` each, the name's `\` and `;`
/// escaped with `\`. The cursor is closed whatever happens.
pub const DESCRIBE_BLOCK: &str = "DECLARE
  c INTEGER := DBMS_SQL.OPEN_CURSOR;
  n INTEGER;
  d DBMS_SQL.DESC_TAB3;
  r CLOB;
BEGIN
  DBMS_SQL.PARSE(c, :1, DBMS_SQL.NATIVE);
  DBMS_SQL.DESCRIBE_COLUMNS3(c, n, d);
  DBMS_SQL.CLOSE_CURSOR(c);
  FOR i IN 1 .. n LOOP
    r := r || d(i).col_type || ' ' || REPLACE(REPLACE(d(i).col_name, '\\', '\\\\'), ';', '\\;') || ';';
  END LOOP;
  :2 := r;
EXCEPTION
  WHEN OTHERS THEN
    IF DBMS_SQL.IS_OPEN(c) THEN
      DBMS_SQL.CLOSE_CURSOR(c);
    END IF;
    RAISE;
END;";

/// One result column as described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedColumn {
    pub name: String,
    pub json: bool,
}

/// Parses what [`DESCRIBE_BLOCK`] answers (`None`: a result without columns).
pub fn parse_description(text: Option<&str>) -> Result<Vec<DescribedColumn>> {
    let malformed = || {
        ConnectorError::internal(format!(
            "unexpected column description from DBMS_SQL: {:?}",
            text.unwrap_or_default()
        ))
    };
    let mut columns = Vec::new();
    let mut chars = text.unwrap_or_default().chars();
    loop {
        let mut code = String::new();
        for c in chars.by_ref() {
            if c == ' ' {
                break;
            }
            code.push(c);
        }
        if code.is_empty() {
            return Ok(columns);
        }
        let code: u32 = code.parse().map_err(|_| malformed())?;
        let mut name = String::new();
        let mut ended = false;
        while let Some(c) = chars.next() {
            match c {
                '\\' => name.push(chars.next().ok_or_else(malformed)?),
                ';' => {
                    ended = true;
                    break;
                }
                c => name.push(c),
            }
        }
        if !ended {
            return Err(malformed());
        }
        columns.push(DescribedColumn {
            name,
            json: code == JSON_TYPE_CODE,
        });
    }
}

/// How to run a statement whose result has JSON columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPlan {
    /// The wrapped statement; it takes the original's binds.
    pub sql: String,
    /// The original statement's column names, for the wrapped result's
    /// generated ones.
    pub names: Vec<String>,
}

/// The plan for a statement with these result columns, `None` when none of
/// them is JSON (the statement then runs as it is).
pub fn plan(sql: &str, columns: &[DescribedColumn]) -> Option<JsonPlan> {
    if !columns.iter().any(|c| c.json) {
        return None;
    }
    let json: Vec<bool> = columns.iter().map(|c| c.json).collect();
    Some(JsonPlan {
        sql: json_as_text_sql(sql, &json),
        names: columns.iter().map(|c| c.name.clone()).collect(),
    })
}

/// `sql` wrapped so the columns marked `true` come back as CLOB text.
///
/// Only generated names appear: the original column names may be
/// expressions (`'A"B'`, longer than an identifier) that Oracle cannot take
/// as identifiers, so the caller renames the result columns instead. The
/// wrapper's name is one the statement does not mention — a statement
/// naming its own `WITH` query would make it recursive — and its column
/// names are only seen by the outer `SELECT`, where nothing else is in scope.
pub fn json_as_text_sql(sql: &str, json: &[bool]) -> String {
    let body = sql.trim_end().trim_end_matches(';').trim_end();
    let wrapper = OracleDialect.quote_identifier(&wrapper_name(body));
    let columns: Vec<String> = (1..=json.len())
        .map(|i| OracleDialect.quote_identifier(&format!("C{i}")))
        .collect();
    let select: Vec<String> = columns
        .iter()
        .zip(json)
        .map(|(column, json)| {
            if *json {
                format!("JSON_SERIALIZE({column} RETURNING CLOB) {column}")
            } else {
                column.clone()
            }
        })
        .collect();
    // The body on lines of its own: a trailing `--` comment ends there.
    format!(
        "WITH {wrapper} ({}) AS (\n{body}\n) SELECT {} FROM {wrapper}",
        columns.join(", "),
        select.join(", ")
    )
}

/// `TRIBUTARY_JSON`, numbered past any spelling of it in `sql`.
fn wrapper_name(sql: &str) -> String {
    let upper = sql.to_uppercase();
    let mut name = WRAPPER_NAME.to_string();
    let mut n = 1_u32;
    while upper.contains(&name) {
        n += 1;
        name = format!("{WRAPPER_NAME}_{n}");
    }
    name
}

/// The plans of the statements that needed wrapping, by SQL text, so that
/// later reads skip the failing first attempt and the describe.
#[derive(Debug, Default)]
pub struct JsonPlans {
    plans: Mutex<HashMap<String, Arc<JsonPlan>>>,
}

impl JsonPlans {
    /// At most this many statements are remembered (then forgotten at once).
    const LIMIT: usize = 256;

    pub fn get(&self, sql: &str) -> Option<Arc<JsonPlan>> {
        self.lock().get(sql).cloned()
    }

    /// Remembers the plan for `sql` and hands it back.
    pub fn remember(&self, sql: &str, plan: JsonPlan) -> Arc<JsonPlan> {
        let plan = Arc::new(plan);
        let mut plans = self.lock();
        if plans.len() >= Self::LIMIT && !plans.contains_key(sql) {
            plans.clear();
        }
        plans.insert(sql.to_string(), Arc::clone(&plan));
        plan
    }

    /// Drops a plan that no longer fits its statement (the tables changed).
    pub fn forget(&self, sql: &str) {
        self.lock().remove(sql);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<JsonPlan>>> {
        // A panic elsewhere cannot leave the map half-updated.
        self.plans.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, json: bool) -> DescribedColumn {
        DescribedColumn {
            name: name.to_string(),
            json,
        }
    }

    #[test]
    fn one_json_column_is_serialized_in_place() {
        let sql = r#"SELECT "ID", "DOC" FROM "APP"."T" WHERE "ID" = :1"#;
        let plan = plan(sql, &[column("ID", false), column("DOC", true)]).unwrap();
        assert_eq!(
            plan.sql,
            "WITH \"TRIBUTARY_JSON\" (\"C1\", \"C2\") AS (\n\
             SELECT \"ID\", \"DOC\" FROM \"APP\".\"T\" WHERE \"ID\" = :1\n\
             ) SELECT \"C1\", JSON_SERIALIZE(\"C2\" RETURNING CLOB) \"C2\" FROM \"TRIBUTARY_JSON\""
        );
        assert_eq!(plan.names, ["ID", "DOC"]);
    }

    #[test]
    fn several_json_columns_keep_order_and_count() {
        let sql = "SELECT a.DOC, a.ID, b.DOC, b.NOTE FROM A a JOIN B b ON a.ID = b.ID -- note\n;";
        let columns = [
            column("DOC", true),
            column("ID", false),
            column("DOC", true),
            column("NOTE", false),
        ];
        let plan = plan(sql, &columns).unwrap();
        assert_eq!(
            plan.sql,
            "WITH \"TRIBUTARY_JSON\" (\"C1\", \"C2\", \"C3\", \"C4\") AS (\n\
             SELECT a.DOC, a.ID, b.DOC, b.NOTE FROM A a JOIN B b ON a.ID = b.ID -- note\n\
             ) SELECT JSON_SERIALIZE(\"C1\" RETURNING CLOB) \"C1\", \"C2\", \
             JSON_SERIALIZE(\"C3\" RETURNING CLOB) \"C3\", \"C4\" FROM \"TRIBUTARY_JSON\""
        );
        assert_eq!(plan.names, ["DOC", "ID", "DOC", "NOTE"]);
    }

    #[test]
    fn without_json_columns_the_statement_runs_as_it_is() {
        let columns = [column("ID", false), column("NOTE", false)];
        assert_eq!(plan("SELECT ID, NOTE FROM T", &columns), None);
        assert_eq!(plan("SELECT ID, NOTE FROM T", &[]), None);
    }

    #[test]
    fn names_with_quotes_never_reach_the_sql() {
        // An unaliased expression is named by its text, which no Oracle
        // identifier may spell: the SQL uses generated names only, and the
        // original ones come back through the plan.
        let sql = r#"SELECT 'a"b', "DOC" FROM "T""Q""#;
        let plan = plan(sql, &[column(r#"'A"B'"#, false), column("DOC", true)]).unwrap();
        assert_eq!(
            plan.sql,
            "WITH \"TRIBUTARY_JSON\" (\"C1\", \"C2\") AS (\n\
             SELECT 'a\"b', \"DOC\" FROM \"T\"\"Q\"\n\
             ) SELECT \"C1\", JSON_SERIALIZE(\"C2\" RETURNING CLOB) \"C2\" FROM \"TRIBUTARY_JSON\""
        );
        assert_eq!(plan.names, [r#"'A"B'"#, "DOC"]);
    }

    #[test]
    fn the_wrapper_name_avoids_every_name_in_the_statement() {
        let sql = "SELECT DOC FROM tributary_json JOIN \"TRIBUTARY_JSON_2\" USING (ID)";
        assert_eq!(
            json_as_text_sql(sql, &[true]),
            "WITH \"TRIBUTARY_JSON_3\" (\"C1\") AS (\n\
             SELECT DOC FROM tributary_json JOIN \"TRIBUTARY_JSON_2\" USING (ID)\n\
             ) SELECT JSON_SERIALIZE(\"C1\" RETURNING CLOB) \"C1\" FROM \"TRIBUTARY_JSON_3\""
        );
    }

    #[test]
    fn the_description_is_parsed_with_escapes() {
        let text = "2 ID;119 DOC;1 A\\;B\\\\C;96 'A\"B';119 ;";
        assert_eq!(
            parse_description(Some(text)).unwrap(),
            [
                column("ID", false),
                column("DOC", true),
                column("A;B\\C", false),
                column("'A\"B'", false),
                column("", true),
            ]
        );
        assert_eq!(parse_description(None).unwrap(), []);
        for bad in ["2 ID", "x ID;", "2 ID\\", "119"] {
            assert!(parse_description(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_describe_block_escapes_as_the_parser_reads() {
        // PL/SQL literals do not escape `\`: the block must spell one `\`
        // where the parser expects one.
        assert!(DESCRIBE_BLOCK.contains(r"REPLACE(REPLACE(d(i).col_name, '\', '\\'), ';', '\;')"));
        assert!(DESCRIBE_BLOCK.contains("DESCRIBE_COLUMNS3"));
    }

    #[test]
    fn plans_are_remembered_forgotten_and_bounded() {
        let plans = JsonPlans::default();
        let wrapped = plan("SELECT DOC FROM T", &[column("DOC", true)]).unwrap();
        assert_eq!(plans.get("SELECT DOC FROM T"), None);
        plans.remember("SELECT DOC FROM T", wrapped.clone());
        assert_eq!(plans.get("SELECT DOC FROM T").as_deref(), Some(&wrapped));
        plans.forget("SELECT DOC FROM T");
        assert_eq!(plans.get("SELECT DOC FROM T"), None);
        for i in 0..JsonPlans::LIMIT {
            plans.remember(&format!("SELECT {i}"), wrapped.clone());
        }
        assert!(plans.get("SELECT 0").is_some());
        plans.remember("SELECT 0", wrapped.clone());
        assert!(
            plans.get("SELECT 1").is_some(),
            "a known statement evicts nothing"
        );
        plans.remember("one more", wrapped);
        assert_eq!(plans.get("SELECT 0"), None);
        assert!(plans.get("one more").is_some());
    }
}
