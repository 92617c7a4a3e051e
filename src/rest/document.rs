//! `GET /api/openapi.json`: the OpenAPI document of what the caller may
//! do — for a role only the collections, columns and operations its rules
//! allow; the admin also gets the admin API. Built from the catalog on
//! each request, so it follows every catalog and rule change.

use std::collections::HashSet;

use axum::Extension;
use axum::Json;
use axum::extract::State;
use serde_json::Value;
use tributary_schema_cache::CatalogSnapshot;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::openapi::{self, CollectionDoc, ColumnDoc, Operations, RelationDoc};
use crate::permissions::{Action, Columns, Permission};
use crate::state::AppState;

/// Collection names other routes answer under `/api/`: such a collection
/// is reached through NocoBase's routes (`/api/sql:list`) and is left out.
const TAKEN: [&str; 2] = ["sql", "docs"];

/// `GET /api/openapi.json`
pub async fn openapi_json(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    let snapshot = state.cache.snapshot();
    let rules = state.permissions.all();
    let role = (!principal.is_admin()).then_some(principal.role.as_str());
    let mut docs: Vec<CollectionDoc> = snapshot
        .collections
        .iter()
        .filter(|c| !TAKEN.contains(&c.api_name.as_str()))
        .filter_map(|c| collection_doc(&snapshot, &c.api_name, role, &rules))
        .collect();
    // Relations only to collections in the document.
    let present: HashSet<String> = docs.iter().map(|d| d.api_name.clone()).collect();
    for doc in &mut docs {
        doc.relations.retain(|r| present.contains(&r.target));
    }
    let document = openapi::document(&docs, env!("CARGO_PKG_VERSION"), principal.is_admin())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(document))
}

/// One collection as `role` (the admin when `None`) may use it, or `None`
/// when it may do nothing with it.
fn collection_doc(
    snapshot: &CatalogSnapshot,
    name: &str,
    role: Option<&str>,
    rules: &[Permission],
) -> Option<CollectionDoc> {
    let collection = snapshot.collection(name)?;
    let def = snapshot
        .sources
        .get(&collection.table.source)?
        .schema
        .as_deref()?
        .table(&collection.table.schema, &collection.table.table)?;
    let rule = |action: Action| -> Option<Option<&Columns>> {
        match role {
            None => Some(None),
            Some(role) => rules
                .iter()
                .find(|p| p.role == role && p.collection == name && p.action == action)
                .map(|p| Some(&p.rule.columns)),
        }
    };
    let select = rule(Action::Select);
    let aggregate = rule(Action::Aggregate);
    let insert = rule(Action::Insert);
    let update = rule(Action::Update);
    let delete = rule(Action::Delete);
    let primary_key = def
        .primary_key
        .as_ref()
        .map(|k| k.columns.clone())
        .unwrap_or_default();
    let writable_table = def.kind.is_writable() && !primary_key.is_empty();
    let operations = Operations {
        list: select.is_some(),
        get: select.is_some(),
        aggregate: aggregate.is_some(),
        create: writable_table && insert.is_some(),
        update: writable_table && update.is_some(),
        delete: writable_table && delete.is_some(),
    };
    if operations == Operations::default() {
        return None;
    }
    let allows = |columns: Option<Option<&Columns>>, column: &str| match columns {
        None => false,
        Some(None) => true,
        Some(Some(columns)) => columns.allows(column),
    };
    let read_rule = select.or(aggregate);
    let columns = def
        .columns
        .iter()
        .filter(|c| allows(read_rule, &c.name))
        .map(|c| ColumnDoc {
            name: c.name.clone(),
            data_type: c.data_type.clone(),
            nullable: c.nullable,
            comment: c.comment.clone(),
            writable: c.generated.is_none()
                && ((operations.create && allows(insert, &c.name))
                    || (operations.update && allows(update, &c.name))),
            has_default: c.default.is_some() || c.generated.is_some(),
        })
        .collect();
    let relations = snapshot
        .relations
        .iter()
        .filter_map(|r| {
            let (other, many) = if r.from == collection.table {
                (&r.to, false)
            } else if r.to == collection.table {
                (&r.from, true)
            } else {
                return None;
            };
            let target = snapshot.collections.iter().find(|c| &c.table == other)?;
            Some(RelationDoc {
                name: r.name.clone(),
                target: target.api_name.clone(),
                many,
            })
        })
        .collect();
    Some(CollectionDoc {
        api_name: collection.api_name.clone(),
        sql_name: collection.sql_name.clone(),
        comment: def.comment.clone(),
        columns,
        primary_key,
        operations,
        relations,
    })
}
