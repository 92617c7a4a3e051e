//! What one caller's GraphQL schema holds, decided before any type is
//! built: the collections it may read or write, each with its readable
//! columns (and their scalar), its primary key when every key column is
//! readable, its relations to other collections it may read, whether it
//! may select rows, aggregate them, or both, and which columns it may
//! insert and update and whether it may delete. Names that are not
//! GraphQL names are left out.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use tributary_schema_cache::{CatalogSnapshot, ColumnDef, TableDef};

use crate::engine::Caller;
use crate::filter;
use crate::permissions::{Action, Permission, Permissions, Rule};

/// The scalar a column is answered and compared as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scalar {
    Boolean,
    Int,
    /// 64-bit integers: a JSON number, as Hasura sends them by default.
    Bigint,
    Float,
    /// Decimals: a string, every digit kept.
    Numeric,
    String,
    Uuid,
    Date,
    Timestamp,
    Timestamptz,
    Time,
    /// PostgreSQL's `json`, MySQL's `JSON`, arrays and other nested values.
    Json,
    Jsonb,
    /// Bytes, as PostgreSQL writes them (`\x0a1b`).
    Bytea,
}

impl Scalar {
    pub const ALL: [Self; 14] = [
        Self::Boolean,
        Self::Int,
        Self::Bigint,
        Self::Float,
        Self::Numeric,
        Self::String,
        Self::Uuid,
        Self::Date,
        Self::Timestamp,
        Self::Timestamptz,
        Self::Time,
        Self::Json,
        Self::Jsonb,
        Self::Bytea,
    ];

    /// The GraphQL type name (Hasura's).
    pub fn name(self) -> &'static str {
        match self {
            Self::Boolean => "Boolean",
            Self::Int => "Int",
            Self::Bigint => "bigint",
            Self::Float => "Float",
            Self::Numeric => "numeric",
            Self::String => "String",
            Self::Uuid => "uuid",
            Self::Date => "date",
            Self::Timestamp => "timestamp",
            Self::Timestamptz => "timestamptz",
            Self::Time => "time",
            Self::Json => "json",
            Self::Jsonb => "jsonb",
            Self::Bytea => "bytea",
        }
    }

    /// One of GraphQL's own scalars (not registered by us).
    pub fn is_builtin(self) -> bool {
        matches!(self, Self::Boolean | Self::Int | Self::Float | Self::String)
    }

    pub fn of(column: &ColumnDef) -> Self {
        let native = column.native_type.to_ascii_lowercase();
        match &column.data_type {
            DataType::Boolean => Self::Boolean,
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::UInt8
            | DataType::UInt16 => Self::Int,
            DataType::Int64 | DataType::UInt32 | DataType::UInt64 => Self::Bigint,
            DataType::Float16 | DataType::Float32 | DataType::Float64 => Self::Float,
            DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..) => Self::Numeric,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => match native.as_str() {
                "json" => Self::Json,
                "jsonb" => Self::Jsonb,
                "uuid" => Self::Uuid,
                _ => Self::String,
            },
            DataType::Date32 | DataType::Date64 => Self::Date,
            DataType::Timestamp(_, None) => Self::Timestamp,
            DataType::Timestamp(_, Some(_)) => Self::Timestamptz,
            DataType::Time32(_) | DataType::Time64(_) => Self::Time,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => Self::Bytea,
            DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(..)
            | DataType::Struct(_)
            | DataType::Map(..) => Self::Json,
            // Intervals and the rest: their text.
            _ => Self::String,
        }
    }

    /// Compared with `_eq _neq _gt _gte _lt _lte _in _nin` (all but
    /// `_is_null`, which every scalar has).
    pub fn is_ordered(self) -> bool {
        !matches!(self, Self::Json | Self::Jsonb | Self::Bytea)
    }

    /// `_like _nlike _ilike _nilike _regex _iregex _nregex _niregex
    /// _similar _nsimilar`.
    pub fn is_text(self) -> bool {
        self == Self::String
    }

    /// `json` or `jsonb`: jsonb's operators and `_cast`.
    pub fn is_json(self) -> bool {
        matches!(self, Self::Json | Self::Jsonb)
    }

    /// In `sum` and `avg`.
    pub fn is_summable(self) -> bool {
        matches!(self, Self::Int | Self::Bigint | Self::Float | Self::Numeric)
    }

    /// In `min` and `max`.
    pub fn has_extremes(self) -> bool {
        self.is_ordered() && !matches!(self, Self::Boolean | Self::Uuid)
    }

    /// The type of a sum of this scalar.
    pub fn sum(self) -> Self {
        match self {
            Self::Int => Self::Bigint,
            other => other,
        }
    }
}

/// One readable column.
#[derive(Debug, Clone)]
pub struct ColumnShape {
    pub name: String,
    pub scalar: Scalar,
    pub nullable: bool,
    /// A JSON document (`json`, `jsonb`, MySQL's `JSON` …; not an array
    /// type): updates edit it in place (`_append` …).
    pub document: bool,
}

impl ColumnShape {
    pub fn of(column: &ColumnDef) -> Self {
        Self {
            name: column.name.clone(),
            scalar: Scalar::of(column),
            nullable: column.nullable,
            document: filter::is_json_column(column),
        }
    }
}

/// One collection as a caller sees it.
#[derive(Debug)]
pub struct Shape {
    /// The API name: the object type and the root field.
    pub name: String,
    pub columns: Vec<ColumnShape>,
    /// Key columns, when the collection has a key and all of it is readable.
    pub primary_key: Option<Vec<ColumnShape>>,
    /// Unique constraints other than the primary key, by name (a GraphQL
    /// name): `on_conflict` may name them.
    pub unique_keys: Vec<(String, Vec<String>)>,
    /// Relations to collections the caller may read.
    pub relations: Vec<RelationShape>,
    /// The caller may read its rows (`x`, `x_by_pk`).
    pub select: bool,
    /// The caller may aggregate it (`x_aggregate`).
    pub aggregate: bool,
    /// What the caller may write (the mutations).
    pub writes: Writes,
}

/// What a caller may write of a collection with a primary key.
#[derive(Debug, Clone, Default)]
pub struct Writes {
    /// `insert_x`: the columns an insert may give — writable by the rule,
    /// not generated by the database, not preset by the rule.
    pub insert: Option<Vec<ColumnShape>>,
    /// `update_x`: the columns `_set` may give (as for insert); `_inc`
    /// takes the numeric ones outside the primary key.
    pub update: Option<Vec<ColumnShape>>,
    /// `delete_x`.
    pub delete: bool,
}

impl Writes {
    pub fn any(&self) -> bool {
        self.insert.is_some() || self.update.is_some() || self.delete
    }
}

impl Shape {
    pub fn column(&self, name: &str) -> Option<&ColumnShape> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The related collection of a relation field.
    pub fn relation(&self, name: &str) -> Option<&str> {
        self.relations
            .iter()
            .find(|r| r.field == name)
            .map(|r| r.target.as_str())
    }
}

/// A relation of a collection as a caller sees it.
#[derive(Debug, Clone)]
pub struct RelationShape {
    /// The field: in `where` (a relation filter) and, when `fetchable`, in
    /// the object type (the related rows).
    pub field: String,
    /// The related collection's API name.
    pub target: String,
    /// Several related rows per row (an array relationship).
    pub many: bool,
    /// (column of this collection, column of the related one) pairs.
    pub pairs: Vec<(String, String)>,
    /// The caller may read the columns on both ends, which fetching the
    /// related rows needs.
    pub fetchable: bool,
    /// Both collections are on one source: related rows can be inserted
    /// with a row (one transaction).
    pub same_source: bool,
}

/// Every collection of one caller's schema, by API name.
pub type Shapes = BTreeMap<String, Arc<Shape>>;

/// `[_A-Za-z][_0-9A-Za-z]*`, not starting with `__` (reserved for
/// introspection).
pub fn is_graphql_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
        && !name.starts_with("__")
}

/// The collections `caller` may read, aggregate or write in `snapshot`.
pub fn shapes(snapshot: &CatalogSnapshot, permissions: &Permissions, caller: &Caller) -> Shapes {
    let all_rules = permissions.all();
    let (policy, rules) = match caller {
        Caller::Admin => (None, None),
        Caller::Role { role, .. } => (
            Some(permissions.for_role(role, snapshot)),
            Some(write_rules(&all_rules, role)),
        ),
    };
    let mut readable: Vec<Readable<'_>> = Vec::new();
    for collection in &snapshot.collections {
        if !is_graphql_name(&collection.api_name) {
            continue;
        }
        let Some(def) = snapshot
            .sources
            .get(&collection.table.source)
            .and_then(|entry| entry.schema.as_deref())
            .and_then(|schema| schema.table(&collection.table.schema, &collection.table.table))
        else {
            continue;
        };
        let (columns, select, aggregate): (Vec<&ColumnDef>, bool, bool) = match &policy {
            None => (def.columns.iter().collect(), true, true),
            Some(policy) => match policy.tables.get(&collection.table) {
                Some(rules) => (
                    def.columns
                        .iter()
                        .filter(|c| rules.readable.contains(&c.name))
                        .collect(),
                    rules.select.is_some(),
                    rules.aggregate.is_some(),
                ),
                None => (Vec::new(), false, false),
            },
        };
        let columns: Vec<&ColumnDef> = columns
            .into_iter()
            .filter(|c| is_graphql_name(&c.name))
            .collect();
        let readable_here = !columns.is_empty() && (select || aggregate);
        let writes = writes(
            def,
            rules.as_ref().map(|rules| {
                let of = |action| rules.get(&(collection.api_name.as_str(), action)).copied();
                [of(Action::Insert), of(Action::Update), of(Action::Delete)]
            }),
        );
        if readable_here || writes.any() {
            readable.push(Readable {
                collection,
                def,
                columns: if readable_here { columns } else { Vec::new() },
                select: readable_here && select,
                aggregate: readable_here && aggregate,
                writes,
            });
        }
    }
    // Relations lead to collections whose rows the caller may read; these
    // are their readable columns.
    let selectable: HashMap<&str, HashSet<&str>> = readable
        .iter()
        .filter(|r| r.select)
        .map(|r| {
            let columns = r.columns.iter().map(|c| c.name.as_str()).collect();
            (r.collection.api_name.as_str(), columns)
        })
        .collect();
    let mut shapes = Shapes::new();
    for readable in &readable {
        let columns: Vec<ColumnShape> = readable
            .columns
            .iter()
            .map(|c| ColumnShape::of(c))
            .collect();
        let primary_key = readable
            .def
            .primary_key
            .as_ref()
            .filter(|key| !key.columns.is_empty())
            .and_then(|key| {
                key.columns
                    .iter()
                    .map(|name| columns.iter().find(|c| &c.name == name).cloned())
                    .collect::<Option<Vec<_>>>()
            });
        let unique_keys = readable
            .def
            .unique_constraints
            .iter()
            .filter_map(|key| {
                let name = key.name.as_deref().filter(|n| is_graphql_name(n))?;
                (!key.columns.is_empty()).then(|| (name.to_string(), key.columns.clone()))
            })
            .collect();
        let relations = relations(snapshot, readable.collection, &columns, &selectable);
        let name = readable.collection.api_name.clone();
        shapes.insert(
            name.clone(),
            Arc::new(Shape {
                name,
                columns,
                primary_key,
                unique_keys,
                relations,
                select: readable.select,
                aggregate: readable.aggregate,
                writes: readable.writes.clone(),
            }),
        );
    }
    shapes
}

/// A collection the caller may read, aggregate or write, before its shape.
struct Readable<'a> {
    collection: &'a tributary_schema_cache::Collection,
    def: &'a TableDef,
    columns: Vec<&'a ColumnDef>,
    select: bool,
    aggregate: bool,
    writes: Writes,
}

/// A role's insert, update and delete rules, by collection and action.
fn write_rules<'a>(all: &'a [Permission], role: &str) -> HashMap<(&'a str, Action), &'a Rule> {
    all.iter()
        .filter(|p| {
            p.role == role && matches!(p.action, Action::Insert | Action::Update | Action::Delete)
        })
        .map(|p| ((p.collection.as_str(), p.action), &p.rule))
        .collect()
}

/// What may be written of a table: everything for the admin (`None`),
/// else what the role's insert, update and delete rules allow. Nothing
/// without a primary key (writes address rows by key).
fn writes(def: &TableDef, rules: Option<[Option<&Rule>; 3]>) -> Writes {
    let keyed = def
        .primary_key
        .as_ref()
        .is_some_and(|key| !key.columns.is_empty());
    if !keyed || !def.kind.is_writable() {
        return Writes::default();
    }
    let input = |rule: Option<&Rule>| -> Vec<ColumnShape> {
        def.columns
            .iter()
            .filter(|c| c.generated.is_none() && is_graphql_name(&c.name))
            .filter(|c| {
                rule.is_none_or(|r| r.columns.allows(&c.name) && !r.presets.contains_key(&c.name))
            })
            .map(ColumnShape::of)
            .collect()
    };
    match rules {
        None => Writes {
            insert: Some(input(None)),
            update: Some(input(None)),
            delete: true,
        },
        Some([insert, update, delete]) => Writes {
            insert: insert.map(|r| input(Some(r))),
            update: update.map(|r| input(Some(r))),
            delete: delete.is_some(),
        },
    }
}

/// The relations of a collection to collections in the schema, each under
/// the first name the filter compiler resolves to that very relation: the
/// related table's name, its collection's name, the relation's own name.
fn relations(
    snapshot: &CatalogSnapshot,
    collection: &tributary_schema_cache::Collection,
    columns: &[ColumnShape],
    in_schema: &HashMap<&str, HashSet<&str>>,
) -> Vec<RelationShape> {
    let table = &collection.table;
    let mut out: Vec<RelationShape> = Vec::new();
    for relation in &snapshot.relations {
        let ends = [
            (
                &relation.from,
                &relation.to,
                &relation.from_columns,
                &relation.to_columns,
            ),
            (
                &relation.to,
                &relation.from,
                &relation.to_columns,
                &relation.from_columns,
            ),
        ];
        for (this, other, own, theirs) in ends {
            if this != table {
                continue;
            }
            let Some(target) = snapshot.collections.iter().find(|c| &c.table == other) else {
                continue;
            };
            let Some(their_columns) = in_schema.get(target.api_name.as_str()) else {
                continue;
            };
            let pairs: Vec<(String, String)> =
                own.iter().cloned().zip(theirs.iter().cloned()).collect();
            let candidates = [
                other.table.as_str(),
                target.api_name.as_str(),
                relation.name.as_str(),
            ];
            let chosen = candidates.into_iter().find(|name| {
                is_graphql_name(name)
                    && !matches!(*name, "_and" | "_or" | "_not")
                    && !columns.iter().any(|c| c.name == *name)
                    && !out.iter().any(|used| used.field == *name)
                    && filter::find_relation(snapshot, table, name)
                        .is_some_and(|link| &link.target == other && link.pairs == pairs)
            });
            let Some(name) = chosen else {
                continue;
            };
            let Some(link) = filter::find_relation(snapshot, table, name) else {
                continue;
            };
            let fetchable = pairs.iter().all(|(own, theirs)| {
                columns.iter().any(|c| &c.name == own) && their_columns.contains(theirs.as_str())
            });
            out.push(RelationShape {
                field: name.to_string(),
                target: target.api_name.clone(),
                many: link.many,
                pairs,
                fetchable,
                same_source: other.source == table.source,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphql_names() {
        for good in ["a", "_a", "pg_orders", "A1"] {
            assert!(is_graphql_name(good), "{good}");
        }
        for bad in ["", "1a", "a-b", "__typename", "é", "a b"] {
            assert!(!is_graphql_name(bad), "{bad}");
        }
    }
}
