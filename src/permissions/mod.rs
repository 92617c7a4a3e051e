//! Roles' permissions as data: per role, collection and action (select,
//! aggregate, insert, update, delete) a rule — row filter, readable or
//! writable columns, a check new rows must pass, presets and a row limit.
//! [`Permissions`] keeps the stored rules in memory; [`RolePolicy`] is one
//! role's view of them against the current catalog, which the SQL engine
//! enforces in every plan (`engine/permission_rewrite.rs`). A role with no
//! rule for a collection sees nothing of it; the `admin` role sees all.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use datafusion::datasource::TableProvider;
use datafusion::datasource::empty::EmptyTable;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tributary_schema_cache::{CatalogSnapshot, TableDef, TableRef};

use crate::filter::{self, FilterError};
use crate::metadata::{MetadataError, MetadataStore};

/// The role that bypasses permissions (the bootstrap admin key has it).
pub const ADMIN_ROLE: &str = "admin";

/// What a rule allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Select,
    Aggregate,
    Insert,
    Update,
    Delete,
}

impl Action {
    pub const ALL: [Self; 5] = [
        Self::Select,
        Self::Aggregate,
        Self::Insert,
        Self::Update,
        Self::Delete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Select => "select",
            Self::Aggregate => "aggregate",
            Self::Insert => "insert",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == text)
    }
}

/// The columns a rule lets a role read (select, aggregate) or write
/// (insert, update): `"*"` or a list.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Columns {
    #[default]
    #[serde(with = "star")]
    All,
    Only(BTreeSet<String>),
}

impl Columns {
    pub fn allows(&self, column: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(names) => names.contains(column),
        }
    }
}

/// `"*"` as the serialized form of [`Columns::All`].
mod star {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("*")
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
        let text = String::deserialize(d)?;
        if text == "*" {
            Ok(())
        } else {
            Err(serde::de::Error::custom(
                "columns must be \"*\" or a list of column names",
            ))
        }
    }
}

/// One rule. Which fields an action takes is checked by [`validate`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Rows the role may read, update or delete (filter JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Value>,
    #[serde(default)]
    pub columns: Columns,
    /// Rows an insert or update leaves behind must pass this filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Value>,
    /// Column values set on insert / update, whatever the body says.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub presets: BTreeMap<String, Value>,
    /// Most rows one select answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// A stored rule: who, on what, doing what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Permission {
    pub role: String,
    pub collection: String,
    pub action: Action,
    pub rule: Rule,
}

/// Why a rule cannot be stored.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("unknown collection `{0}`")]
    UnknownCollection(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Filter(#[from] FilterError),
}

/// Checks a rule against the catalog: the collection and every column it
/// names exist, filters compile (variables bound to NULL), and each field
/// is one the action takes.
pub fn validate(permission: &Permission, snapshot: &CatalogSnapshot) -> Result<(), RuleError> {
    if permission.role == ADMIN_ROLE {
        return Err(RuleError::Invalid(
            "the admin role sees everything; rules are for other roles".into(),
        ));
    }
    if !crate::auth::is_role_name(&permission.role) {
        return Err(RuleError::Invalid(format!(
            "`{}` is not a role name (letters, digits, `_` and `-`)",
            permission.role
        )));
    }
    let collection = snapshot
        .collection(&permission.collection)
        .ok_or_else(|| RuleError::UnknownCollection(permission.collection.clone()))?;
    let table = &collection.table;
    let def = table_def(snapshot, table)
        .ok_or_else(|| RuleError::UnknownCollection(permission.collection.clone()))?;
    let rule = &permission.rule;
    let action = permission.action;
    let refuse = |field: &str, allowed: &str| {
        Err(RuleError::Invalid(format!(
            "`{field}` is not used by {} rules ({allowed})",
            action.as_str()
        )))
    };
    if rule.filter.is_some() && action == Action::Insert {
        return refuse("filter", "inserts are limited by `check`");
    }
    let writes = matches!(action, Action::Insert | Action::Update);
    if rule.check.is_some() && !writes {
        return refuse("check", "only insert and update take it");
    }
    if !rule.presets.is_empty() && !writes {
        return refuse("presets", "only insert and update take them");
    }
    if rule.limit.is_some() && action != Action::Select {
        return refuse("limit", "only select takes it");
    }
    if let Columns::Only(names) = &rule.columns {
        for name in names {
            if !def.columns.iter().any(|c| &c.name == name) {
                return Err(RuleError::Invalid(format!(
                    "`{}` has no column `{name}`",
                    permission.collection
                )));
            }
        }
    }
    for name in rule.presets.keys() {
        if !def.columns.iter().any(|c| &c.name == name) {
            return Err(RuleError::Invalid(format!(
                "preset for unknown column `{name}` of `{}`",
                permission.collection
            )));
        }
    }
    // Relation filters are compiled against empty tables of the right shape.
    let providers = |table: &TableRef| -> Option<Arc<dyn TableProvider>> {
        let def = table_def(snapshot, table)?;
        Some(Arc::new(EmptyTable::new(crate::engine::table_schema(def))))
    };
    let cx = filter::Context {
        snapshot,
        providers: &providers,
        variables: None,
        time_zone: None,
    };
    let qualifier = datafusion::common::TableReference::bare("t");
    for (field, value) in [("filter", &rule.filter), ("check", &rule.check)] {
        if let Some(value) = value {
            filter::check_variables(value, field)?;
            filter::compile(value, table, &qualifier, &cx).map_err(|e| FilterError {
                path: if e.path.is_empty() {
                    field.to_string()
                } else {
                    format!("{field}.{}", e.path)
                },
                message: e.message,
            })?;
        }
    }
    for (column, value) in &rule.presets {
        filter::check_variables(value, &format!("presets.{column}"))?;
    }
    Ok(())
}

fn table_def<'a>(snapshot: &'a CatalogSnapshot, table: &TableRef) -> Option<&'a TableDef> {
    snapshot
        .sources
        .get(&table.source)?
        .schema
        .as_deref()?
        .schemas
        .get(&table.schema)?
        .tables
        .get(&table.table)
}

/// Every stored rule, in memory, reloaded after each change.
pub struct Permissions {
    rules: ArcSwap<Vec<Permission>>,
    /// Bumped on every reload: role policies built from older rules are stale.
    version: AtomicU64,
}

impl std::fmt::Debug for Permissions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permissions")
            .field("version", &self.version.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Permissions {
    pub async fn load(store: &dyn MetadataStore) -> Result<Self, MetadataError> {
        Ok(Self {
            rules: ArcSwap::from_pointee(store.permissions().await?),
            version: AtomicU64::new(1),
        })
    }

    pub async fn reload(&self, store: &dyn MetadataStore) -> Result<(), MetadataError> {
        self.rules.store(Arc::new(store.permissions().await?));
        self.version.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Reloads the rules when the store holds others than these (another
    /// replica sharing the store changed them); true when it did.
    pub async fn refresh(&self, store: &dyn MetadataStore) -> Result<bool, MetadataError> {
        let stored = store.permissions().await?;
        if *self.rules.load_full() == stored {
            return Ok(false);
        }
        self.rules.store(Arc::new(stored));
        self.version.fetch_add(1, Ordering::AcqRel);
        Ok(true)
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub fn all(&self) -> Arc<Vec<Permission>> {
        self.rules.load_full()
    }

    /// Whether what `role` may read depends on who asks: a filter of its
    /// select or aggregate rules names the caller (`{{$user.id}}`, a
    /// claim). Otherwise every caller of the role reads the same rows.
    pub fn reads_depend_on_caller(&self, role: &str) -> bool {
        self.rules.load().iter().any(|p| {
            p.role == role
                && matches!(p.action, Action::Select | Action::Aggregate)
                && p.rule.filter.as_ref().is_some_and(filter::uses_caller)
        })
    }

    /// One role's rules resolved against a catalog snapshot (collections
    /// by table; rules on collections that no longer exist are skipped).
    pub fn for_role(&self, role: &str, snapshot: &CatalogSnapshot) -> RolePolicy {
        let version = self.version();
        let rules = self.rules.load();
        let mut by_collection: HashMap<&str, BTreeMap<Action, &Rule>> = HashMap::new();
        for p in rules.iter().filter(|p| p.role == role) {
            by_collection
                .entry(p.collection.as_str())
                .or_default()
                .insert(p.action, &p.rule);
        }
        let mut tables = HashMap::new();
        let mut uses_now = false;
        for (collection, actions) in by_collection {
            let Some(entry) = snapshot.collection(collection) else {
                continue;
            };
            let Some(def) = table_def(snapshot, &entry.table) else {
                continue;
            };
            let select = actions.get(&Action::Select).map(|r| (*r).clone());
            let aggregate = actions.get(&Action::Aggregate).map(|r| (*r).clone());
            uses_now |= [&select, &aggregate]
                .into_iter()
                .flatten()
                .any(|r| r.filter.as_ref().is_some_and(filter::uses_now));
            // Readable columns come from the select rule, or from the
            // aggregate rule for a role that may only aggregate.
            let columns = select
                .as_ref()
                .or(aggregate.as_ref())
                .map(|r| r.columns.clone());
            let readable = columns.map_or_else(Vec::new, |columns| {
                def.columns
                    .iter()
                    .filter(|c| columns.allows(&c.name))
                    .map(|c| c.name.clone())
                    .collect()
            });
            tables.insert(
                entry.table.clone(),
                Arc::new(TableRules {
                    collection: collection.to_string(),
                    select,
                    aggregate,
                    hidden: def
                        .columns
                        .iter()
                        .map(|c| c.name.clone())
                        .filter(|name| !readable.contains(name))
                        .collect(),
                    readable,
                }),
            );
        }
        RolePolicy {
            role: role.to_string(),
            version,
            tables,
            uses_now,
        }
    }
}

/// One role's read rules for the tables it may see.
#[derive(Debug)]
pub struct RolePolicy {
    pub role: String,
    /// The [`Permissions::version`] this was built from.
    pub version: u64,
    pub tables: HashMap<TableRef, Arc<TableRules>>,
    /// Some filter reads `{{$now}}`: answers must not be cached.
    pub uses_now: bool,
}

/// What one role may read of one table.
#[derive(Debug)]
pub struct TableRules {
    pub collection: String,
    pub select: Option<Rule>,
    pub aggregate: Option<Rule>,
    /// Readable columns, in the table's order.
    pub readable: Vec<String>,
    /// Columns the role may not read.
    pub hidden: Vec<String>,
}
