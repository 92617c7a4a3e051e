//! Drift detection: compare the cheap per-table fingerprints a source reports
//! now with the ones stored in the catalog at the last introspection.

use std::collections::BTreeMap;

use serde::Serialize;
use tributary_schema_cache::{SourceSchema, fingerprint};

use crate::connector::TableKey;

/// Folds the rows of a connector's fingerprint query — `(schema, table,
/// descriptor)`, in a stable order — into one hash per table.
pub fn fingerprints_from_rows(
    rows: impl IntoIterator<Item = (String, String, String)>,
) -> BTreeMap<TableKey, String> {
    let mut parts: BTreeMap<TableKey, Vec<String>> = BTreeMap::new();
    for (schema, table, descriptor) in rows {
        parts.entry((schema, table)).or_default().push(descriptor);
    }
    parts
        .into_iter()
        .map(|(key, lines)| (key, fingerprint::hash_iter(lines)))
        .collect()
}

/// Which tables differ between the catalog and the source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// Compares the catalog's stored fingerprints with `current`.
    pub fn detect(catalog: &SourceSchema, current: &BTreeMap<TableKey, String>) -> Self {
        let mut drift = Self::default();
        let known: BTreeMap<TableKey, &str> = catalog
            .tables()
            .map(|(schema, t)| {
                (
                    (schema.to_string(), t.name.clone()),
                    t.drift_fingerprint.as_str(),
                )
            })
            .collect();
        for (key, hash) in current {
            match known.get(key) {
                None => drift.added.push(format!("{}.{}", key.0, key.1)),
                Some(old) if *old != hash => drift.changed.push(format!("{}.{}", key.0, key.1)),
                Some(_) => {}
            }
        }
        for key in known.keys() {
            if !current.contains_key(key) {
                drift.removed.push(format!("{}.{}", key.0, key.1));
            }
        }
        drift
    }
}
