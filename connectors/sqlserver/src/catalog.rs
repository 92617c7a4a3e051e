//! The catalog queries introspection runs, as constants: every one reads
//! the whole database's user tables and views from the `sys.*` catalog
//! views (objects shipped by Microsoft left out), and the connector keeps
//! the rows of the selected schemas. A fixed set of queries, however many
//! tables there are.
//!
//! Row estimates come from `sys.partitions.rows` of the heap or clustered
//! index (`index_id` 0 or 1): the same counts `sys.dm_db_partition_stats`
//! reports, without the `VIEW DATABASE STATE` permission that view needs.

/// Every schema of the database.
pub const SCHEMAS: &str = "SELECT s.name AS schema_name FROM sys.schemas AS s ORDER BY s.name";

/// The server's version text and number, and the login's default schema.
pub const SERVER: &str = "SELECT CAST(@@VERSION AS nvarchar(4000)) AS version_text, \
CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128)) AS product_version, \
SCHEMA_NAME() AS default_schema";

/// Tables and views: kind (`U` / `V`), comment, row estimate.
pub const TABLES: &str = "\
SELECT s.name AS schema_name, o.name AS table_name, o.type AS object_type,
    CAST(ep.value AS nvarchar(4000)) AS comment,
    (SELECT SUM(p.rows) FROM sys.partitions AS p
      WHERE p.object_id = o.object_id AND p.index_id IN (0, 1)) AS row_estimate
FROM sys.objects AS o
JOIN sys.schemas AS s ON s.schema_id = o.schema_id
LEFT JOIN sys.extended_properties AS ep
    ON ep.class = 1 AND ep.major_id = o.object_id AND ep.minor_id = 0
    AND ep.name = N'MS_Description'
WHERE o.type IN ('U', 'V') AND o.is_ms_shipped = 0
ORDER BY s.name, o.name";

/// Columns in ordinal order: the base system type (alias types resolved),
/// size attributes, nullability, identity, computed expression, default and
/// comment.
pub const COLUMNS: &str = "\
SELECT s.name AS schema_name, o.name AS table_name, c.name AS column_name, c.column_id,
    CASE WHEN t.is_user_defined = 1 AND t.is_assembly_type = 0
        THEN TYPE_NAME(t.system_type_id) ELSE t.name END AS type_name,
    CAST(CASE WHEN t.is_user_defined = 1 AND t.is_assembly_type = 1 THEN 1 ELSE 0 END AS bit)
        AS user_clr,
    c.max_length, c.precision, c.scale, c.is_nullable, c.is_identity,
    cc.definition AS computed_definition, cc.is_persisted,
    dc.definition AS default_definition,
    CAST(ep.value AS nvarchar(4000)) AS comment
FROM sys.columns AS c
JOIN sys.objects AS o ON o.object_id = c.object_id
JOIN sys.schemas AS s ON s.schema_id = o.schema_id
JOIN sys.types AS t ON t.user_type_id = c.user_type_id
LEFT JOIN sys.computed_columns AS cc
    ON cc.object_id = c.object_id AND cc.column_id = c.column_id
LEFT JOIN sys.default_constraints AS dc ON dc.object_id = c.default_object_id
LEFT JOIN sys.extended_properties AS ep
    ON ep.class = 1 AND ep.major_id = c.object_id AND ep.minor_id = c.column_id
    AND ep.name = N'MS_Description'
WHERE o.type IN ('U', 'V') AND o.is_ms_shipped = 0
ORDER BY s.name, o.name, c.column_id";

/// Index key columns in key order (all columns of columnstore indexes),
/// with whether the index backs the primary key or a unique constraint.
pub const INDEXES: &str = "\
SELECT s.name AS schema_name, o.name AS table_name, i.name AS index_name,
    i.is_primary_key, i.is_unique_constraint, i.is_unique, i.type_desc,
    c.name AS column_name
FROM sys.indexes AS i
JOIN sys.objects AS o ON o.object_id = i.object_id
JOIN sys.schemas AS s ON s.schema_id = o.schema_id
JOIN sys.index_columns AS ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id
JOIN sys.columns AS c ON c.object_id = ic.object_id AND c.column_id = ic.column_id
WHERE o.type IN ('U', 'V') AND o.is_ms_shipped = 0 AND i.type > 0
    AND i.is_hypothetical = 0 AND (ic.key_ordinal > 0 OR i.type IN (5, 6))
ORDER BY s.name, o.name, i.name, ic.key_ordinal, ic.index_column_id";

/// Foreign key column pairs in constraint order, with the referential actions.
pub const FOREIGN_KEYS: &str = "\
SELECT s.name AS schema_name, o.name AS table_name, fk.name AS constraint_name,
    pc.name AS column_name, rs.name AS referenced_schema, ro.name AS referenced_table,
    rc.name AS referenced_column,
    fk.update_referential_action_desc, fk.delete_referential_action_desc
FROM sys.foreign_keys AS fk
JOIN sys.objects AS o ON o.object_id = fk.parent_object_id
JOIN sys.schemas AS s ON s.schema_id = o.schema_id
JOIN sys.objects AS ro ON ro.object_id = fk.referenced_object_id
JOIN sys.schemas AS rs ON rs.schema_id = ro.schema_id
JOIN sys.foreign_key_columns AS fkc ON fkc.constraint_object_id = fk.object_id
JOIN sys.columns AS pc
    ON pc.object_id = fkc.parent_object_id AND pc.column_id = fkc.parent_column_id
JOIN sys.columns AS rc
    ON rc.object_id = fkc.referenced_object_id AND rc.column_id = fkc.referenced_column_id
WHERE o.is_ms_shipped = 0
ORDER BY s.name, o.name, fk.name, fkc.constraint_column_id";

/// CHECK constraints.
pub const CHECKS: &str = "\
SELECT s.name AS schema_name, o.name AS table_name, ck.name AS constraint_name,
    ck.definition
FROM sys.check_constraints AS ck
JOIN sys.objects AS o ON o.object_id = ck.parent_object_id
JOIN sys.schemas AS s ON s.schema_id = o.schema_id
WHERE o.is_ms_shipped = 0
ORDER BY s.name, o.name, ck.name";

/// The drift fingerprint rows: `(schema, table, descriptor)` for each table
/// or view (its kind and last DDL time), each column (name, type, size,
/// nullability, identity, computed, default), each constraint, default or
/// trigger on it (name, kind, last DDL time), each index, and each
/// `MS_Description` comment. Hashed per table; the same rows introspection
/// hashes into `TableDef::drift_fingerprint`.
pub const FINGERPRINT: &str = "\
SELECT s.name AS schema_name, o.name AS table_name,
    CONCAT(N'T|', o.type, N'|', CONVERT(nvarchar(30), o.modify_date, 126)) AS descriptor
FROM sys.objects AS o
JOIN sys.schemas AS s ON s.schema_id = o.schema_id
WHERE o.type IN ('U', 'V') AND o.is_ms_shipped = 0
UNION ALL
SELECT s.name, o.name,
    CONCAT(N'C|', c.column_id, N'|', c.name, N'|', c.user_type_id, N'|', c.max_length, N',',
        c.precision, N',', c.scale, N'|', c.is_nullable, c.is_identity, c.is_computed, N'|',
        c.default_object_id)
FROM sys.columns AS c
JOIN sys.objects AS o ON o.object_id = c.object_id
JOIN sys.schemas AS s ON s.schema_id = o.schema_id
WHERE o.type IN ('U', 'V') AND o.is_ms_shipped = 0
UNION ALL
SELECT s.name, o.name,
    CONCAT(N'K|', k.name, N'|', k.type, N'|', CONVERT(nvarchar(30), k.modify_date, 126))
FROM sys.objects AS k
JOIN sys.objects AS o ON o.object_id = k.parent_object_id
JOIN sys.schemas AS s ON s.schema_id = o.schema_id
WHERE o.type IN ('U', 'V') AND o.is_ms_shipped = 0
UNION ALL
SELECT s.name, o.name, CONCAT(N'I|', i.name, N'|', i.index_id, N'|', i.type, N'|', i.is_unique)
FROM sys.indexes AS i
JOIN sys.objects AS o ON o.object_id = i.object_id
JOIN sys.schemas AS s ON s.schema_id = o.schema_id
WHERE o.type IN ('U', 'V') AND o.is_ms_shipped = 0 AND i.type > 0
UNION ALL
SELECT s.name, o.name,
    CONCAT(N'D|', ep.minor_id, N'|', CAST(ep.value AS nvarchar(4000)))
FROM sys.extended_properties AS ep
JOIN sys.objects AS o ON o.object_id = ep.major_id
JOIN sys.schemas AS s ON s.schema_id = o.schema_id
WHERE ep.class = 1 AND ep.name = N'MS_Description'
    AND o.type IN ('U', 'V') AND o.is_ms_shipped = 0";

/// Every catalog query, for tests.
#[cfg(test)]
pub const ALL: [(&str, &str); 8] = [
    ("SCHEMAS", SCHEMAS),
    ("SERVER", SERVER),
    ("TABLES", TABLES),
    ("COLUMNS", COLUMNS),
    ("INDEXES", INDEXES),
    ("FOREIGN_KEYS", FOREIGN_KEYS),
    ("CHECKS", CHECKS),
    ("FINGERPRINT", FINGERPRINT),
];

#[cfg(test)]
mod tests {
    use sqlparser::dialect::MsSqlDialect;
    use sqlparser::parser::Parser;

    use super::ALL;

    /// Each catalog query is one well-formed T-SQL SELECT.
    #[test]
    fn catalog_queries_parse_as_t_sql() {
        for (name, sql) in ALL {
            let statements = Parser::parse_sql(&MsSqlDialect {}, sql)
                .unwrap_or_else(|e| panic!("{name} does not parse: {e}\n{sql}"));
            assert_eq!(statements.len(), 1, "{name}");
            assert!(
                matches!(statements[0], sqlparser::ast::Statement::Query(_)),
                "{name} is not a query"
            );
        }
    }
}
