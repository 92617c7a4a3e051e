//! The introspection and drift queries, as SQL text over Oracle's `ALL_*`
//! dictionary views. Each query selects the owners of one chunk through a
//! common `WITH sel AS (…)` so the owner names are bound once; every result
//! column is read as text by the client layer and assembled by `introspect.rs`.
//!
//! `LONG` dictionary columns (`DATA_DEFAULT`, `SEARCH_CONDITION`,
//! `COLUMN_EXPRESSION`) are selected plainly: a `LONG` may be joined but not
//! used in expressions, so they are post-processed in Rust.

use tributary_connector::{Statement, Value};

/// Most owners in one query (Oracle allows 1000 expressions in an IN list).
pub const OWNERS_PER_QUERY: usize = 500;

/// The schema of the session (the connecting user unless changed).
pub const CURRENT_SCHEMA: &str = "SELECT SYS_CONTEXT('USERENV', 'CURRENT_SCHEMA') FROM DUAL";

/// Every user with whether Oracle maintains it (`SYS`, `MDSYS`, …).
pub const USERS: &str = "SELECT USERNAME, ORACLE_MAINTAINED FROM ALL_USERS ORDER BY USERNAME";

/// Tables (without nested, secondary, overflow and recycle-bin tables;
/// materialized views and partitioned tables told apart) and views:
/// `OWNER, NAME, KIND, NUM_ROWS, COMMENTS`.
const RELATIONS: &str = "SELECT t.OWNER, t.TABLE_NAME AS NAME, \
       CASE WHEN m.MVIEW_NAME IS NOT NULL THEN 'MATERIALIZED VIEW' \
            WHEN t.PARTITIONED = 'YES' THEN 'PARTITIONED TABLE' ELSE 'TABLE' END AS KIND, \
       t.NUM_ROWS, c.COMMENTS \
  FROM ALL_TABLES t \
  LEFT JOIN ALL_MVIEWS m ON m.OWNER = t.OWNER AND m.MVIEW_NAME = t.TABLE_NAME \
  LEFT JOIN ALL_TAB_COMMENTS c ON c.OWNER = t.OWNER AND c.TABLE_NAME = t.TABLE_NAME \
 WHERE t.OWNER IN (SELECT OWNER FROM sel) AND t.NESTED = 'NO' AND t.SECONDARY = 'N' \
   AND t.DROPPED = 'NO' AND (t.IOT_TYPE IS NULL OR t.IOT_TYPE = 'IOT') \
UNION ALL \
SELECT v.OWNER, v.VIEW_NAME, 'VIEW', NULL, c.COMMENTS \
  FROM ALL_VIEWS v \
  LEFT JOIN ALL_TAB_COMMENTS c ON c.OWNER = v.OWNER AND c.TABLE_NAME = v.VIEW_NAME \
 WHERE v.OWNER IN (SELECT OWNER FROM sel)";

/// `OWNER, TABLE_NAME, COLUMN_NAME, COLUMN_ID, DATA_TYPE, DATA_PRECISION,
/// DATA_SCALE, CHAR_LENGTH, DATA_LENGTH, NULLABLE, DATA_DEFAULT,
/// IDENTITY_COLUMN, VIRTUAL_COLUMN, GENERATION_TYPE, COMMENTS`: user-visible
/// columns of tables and views (`ALL_TAB_COLS` for the identity and virtual
/// flags, without hidden and system-generated ones).
const COLUMNS: &str = "SELECT c.OWNER, c.TABLE_NAME, c.COLUMN_NAME, c.COLUMN_ID, c.DATA_TYPE, \
       c.DATA_PRECISION, c.DATA_SCALE, c.CHAR_LENGTH, c.DATA_LENGTH, c.NULLABLE, \
       c.DATA_DEFAULT, c.IDENTITY_COLUMN, c.VIRTUAL_COLUMN, i.GENERATION_TYPE, cm.COMMENTS \
  FROM ALL_TAB_COLS c \
  LEFT JOIN ALL_TAB_IDENTITY_COLS i \
    ON i.OWNER = c.OWNER AND i.TABLE_NAME = c.TABLE_NAME AND i.COLUMN_NAME = c.COLUMN_NAME \
  LEFT JOIN ALL_COL_COMMENTS cm \
    ON cm.OWNER = c.OWNER AND cm.TABLE_NAME = c.TABLE_NAME AND cm.COLUMN_NAME = c.COLUMN_NAME \
 WHERE c.OWNER IN (SELECT OWNER FROM sel) AND c.HIDDEN_COLUMN = 'NO' AND c.COLUMN_ID IS NOT NULL \
 ORDER BY c.OWNER, c.TABLE_NAME, c.COLUMN_ID";

/// `OWNER, TABLE_NAME, CONSTRAINT_NAME, CONSTRAINT_TYPE, SEARCH_CONDITION,
/// INDEX_NAME, COLUMN_NAME, POSITION`: enabled primary keys, unique and
/// check constraints.
const CONSTRAINTS: &str = "SELECT c.OWNER, c.TABLE_NAME, c.CONSTRAINT_NAME, c.CONSTRAINT_TYPE, \
       c.SEARCH_CONDITION, c.INDEX_NAME, cc.COLUMN_NAME, cc.POSITION \
  FROM ALL_CONSTRAINTS c \
  LEFT JOIN ALL_CONS_COLUMNS cc \
    ON cc.OWNER = c.OWNER AND cc.CONSTRAINT_NAME = c.CONSTRAINT_NAME AND cc.TABLE_NAME = c.TABLE_NAME \
 WHERE c.OWNER IN (SELECT OWNER FROM sel) AND c.CONSTRAINT_TYPE IN ('P', 'U', 'C') \
   AND c.STATUS = 'ENABLED' \
 ORDER BY c.OWNER, c.TABLE_NAME, c.CONSTRAINT_NAME, cc.POSITION";

/// `OWNER, TABLE_NAME, CONSTRAINT_NAME, DELETE_RULE, COLUMN_NAME,
/// R_OWNER, R_TABLE_NAME, R_COLUMN_NAME`: foreign keys, column pairs in key
/// order (Oracle has no ON UPDATE actions).
const FOREIGN_KEYS: &str = "SELECT f.OWNER, f.TABLE_NAME, f.CONSTRAINT_NAME, f.DELETE_RULE, \
       fc.COLUMN_NAME, r.OWNER, r.TABLE_NAME, rc.COLUMN_NAME \
  FROM ALL_CONSTRAINTS f \
  JOIN ALL_CONS_COLUMNS fc \
    ON fc.OWNER = f.OWNER AND fc.CONSTRAINT_NAME = f.CONSTRAINT_NAME AND fc.TABLE_NAME = f.TABLE_NAME \
  JOIN ALL_CONSTRAINTS r ON r.OWNER = f.R_OWNER AND r.CONSTRAINT_NAME = f.R_CONSTRAINT_NAME \
  JOIN ALL_CONS_COLUMNS rc \
    ON rc.OWNER = r.OWNER AND rc.CONSTRAINT_NAME = r.CONSTRAINT_NAME \
   AND rc.TABLE_NAME = r.TABLE_NAME AND rc.POSITION = fc.POSITION \
 WHERE f.OWNER IN (SELECT OWNER FROM sel) AND f.CONSTRAINT_TYPE = 'R' \
 ORDER BY f.OWNER, f.TABLE_NAME, f.CONSTRAINT_NAME, fc.POSITION";

/// `TABLE_OWNER, TABLE_NAME, INDEX_NAME, UNIQUENESS, INDEX_TYPE,
/// COLUMN_NAME, COLUMN_EXPRESSION`: index columns in order (the expression
/// of function-based ones; LOB indexes left out).
const INDEXES: &str = "SELECT i.TABLE_OWNER, i.TABLE_NAME, i.INDEX_NAME, i.UNIQUENESS, \
       i.INDEX_TYPE, ic.COLUMN_NAME, e.COLUMN_EXPRESSION \
  FROM ALL_INDEXES i \
  JOIN ALL_IND_COLUMNS ic ON ic.INDEX_OWNER = i.OWNER AND ic.INDEX_NAME = i.INDEX_NAME \
  LEFT JOIN ALL_IND_EXPRESSIONS e \
    ON e.INDEX_OWNER = ic.INDEX_OWNER AND e.INDEX_NAME = ic.INDEX_NAME \
   AND e.COLUMN_POSITION = ic.COLUMN_POSITION \
 WHERE i.TABLE_OWNER IN (SELECT OWNER FROM sel) AND i.INDEX_TYPE <> 'LOB' \
 ORDER BY i.TABLE_OWNER, i.TABLE_NAME, i.INDEX_NAME, ic.COLUMN_POSITION";

/// `OWNER, NAME, KIND, LAST_DDL_TIME, COMMENTS`: the drift descriptor of
/// every relation introspection lists (the same relation query, so the two
/// always cover the same tables). Oracle bumps `LAST_DDL_TIME` on every
/// DDL of the table, its columns, constraints, indexes and comments.
const DRIFT: &str = "SELECT r.OWNER, r.NAME, r.KIND, \
       TO_CHAR(o.LAST_DDL_TIME, 'YYYY-MM-DD HH24:MI:SS'), r.COMMENTS \
  FROM (RELATIONS) r \
  JOIN ALL_OBJECTS o ON o.OWNER = r.OWNER AND o.OBJECT_NAME = r.NAME \
   AND o.OBJECT_TYPE = CASE r.KIND WHEN 'VIEW' THEN 'VIEW' ELSE 'TABLE' END \
   AND o.SUBOBJECT_NAME IS NULL \
 ORDER BY r.OWNER, r.NAME";

/// One query of the introspection, for one chunk of owners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogQuery {
    Relations,
    Columns,
    Constraints,
    ForeignKeys,
    Indexes,
    Drift,
}

impl CatalogQuery {
    /// The statement for `owners` (at most [`OWNERS_PER_QUERY`]), each owner
    /// a bound parameter.
    pub fn statement(self, owners: &[String]) -> Statement {
        let placeholders: Vec<String> = (1..=owners.len()).map(|i| format!(":{i}")).collect();
        let body = match self {
            Self::Relations => format!("{RELATIONS} ORDER BY 1, 2"),
            Self::Columns => COLUMNS.to_string(),
            Self::Constraints => CONSTRAINTS.to_string(),
            Self::ForeignKeys => FOREIGN_KEYS.to_string(),
            Self::Indexes => INDEXES.to_string(),
            Self::Drift => DRIFT.replace("RELATIONS", RELATIONS),
        };
        let sql = format!(
            "WITH sel AS (SELECT USERNAME AS OWNER FROM ALL_USERS WHERE USERNAME IN ({})) {body}",
            placeholders.join(", ")
        );
        Statement::with_params(sql, owners.iter().cloned().map(Value::Text).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_bound_once_and_never_inlined() {
        let owners = vec!["APP".to_string(), "O'BRIEN".to_string()];
        for query in [
            CatalogQuery::Relations,
            CatalogQuery::Columns,
            CatalogQuery::Constraints,
            CatalogQuery::ForeignKeys,
            CatalogQuery::Indexes,
            CatalogQuery::Drift,
        ] {
            let statement = query.statement(&owners);
            assert!(
                statement
                    .sql
                    .starts_with("WITH sel AS (SELECT USERNAME AS OWNER FROM ALL_USERS WHERE USERNAME IN (:1, :2))"),
                "{query:?}"
            );
            assert!(!statement.sql.contains("O'BRIEN"), "{query:?}");
            assert!(!statement.sql.contains(":3"), "{query:?}");
            assert_eq!(statement.params.len(), 2);
        }
        let drift = CatalogQuery::Drift.statement(&owners).sql;
        assert!(drift.contains("ALL_OBJECTS") && drift.contains("ALL_TABLES"));
    }
}
