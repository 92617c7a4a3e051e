//! `/admin/relations` and `/admin/aliases`: relations declared by an admin
//! (also across sources), and API names chosen by an admin. Both are checked
//! against the catalog before they are stored.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tributary_schema_cache::{CatalogSnapshot, Relation, RelationOrigin, TableRef, naming};

use crate::error::{ApiError, json_rejection};
use crate::state::AppState;

/// A table named as `"source.schema.table"`, `"source.table"` (the source's
/// default schema) or `{"source", "schema", "table"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TableName {
    Text(String),
    Parts {
        source: String,
        schema: Option<String>,
        table: String,
    },
}

impl TableName {
    /// Resolves the name against the catalog; the table must exist.
    fn resolve(
        &self,
        snapshot: &CatalogSnapshot,
        field: &str,
    ) -> Result<(TableRef, Vec<String>), ApiError> {
        let (source, schema, table) = match self {
            Self::Parts {
                source,
                schema,
                table,
            } => (source.clone(), schema.clone(), table.clone()),
            Self::Text(text) => {
                let mut parts = text.splitn(3, '.');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(s), Some(t), None) => (s.to_string(), None, t.to_string()),
                    (Some(s), Some(sc), Some(t)) => {
                        (s.to_string(), Some(sc.to_string()), t.to_string())
                    }
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "`{text}` is not a table name like source.schema.table"
                        ))
                        .at(field));
                    }
                }
            }
        };
        let model = snapshot
            .sources
            .get(&source)
            .and_then(|e| e.schema.clone())
            .ok_or_else(|| ApiError::bad_request(format!("unknown source `{source}`")).at(field))?;
        let schema = schema
            .or_else(|| model.default_schema.clone())
            .unwrap_or_default();
        let table_def = model.table(&schema, &table).ok_or_else(|| {
            ApiError::bad_request(format!("unknown table `{source}.{schema}.{table}`")).at(field)
        })?;
        let columns = table_def.columns.iter().map(|c| c.name.clone()).collect();
        Ok((TableRef::new(source, schema, table), columns))
    }
}

/// The body of `POST /admin/relations`: `from_columns` of `from` reference
/// `to_columns` of `to` (many-to-one).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRelation {
    pub name: String,
    pub from: TableName,
    pub from_columns: Vec<String>,
    pub to: TableName,
    pub to_columns: Vec<String>,
}

fn check_columns(
    wanted: &[String],
    have: &[String],
    table: &TableRef,
    field: &str,
) -> Result<(), ApiError> {
    for (i, column) in wanted.iter().enumerate() {
        if !have.contains(column) {
            return Err(
                ApiError::bad_request(format!("unknown column `{column}` in {table}"))
                    .at(format!("{field}[{i}]")),
            );
        }
    }
    Ok(())
}

/// `GET /admin/relations`: declared and foreign-key relations.
pub async fn list(State(state): State<AppState>) -> Json<Vec<Relation>> {
    Json(state.cache.snapshot().relations.clone())
}

/// `GET /admin/relations/{name}`
pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Relation>, ApiError> {
    state
        .cache
        .snapshot()
        .relations
        .iter()
        .find(|r| r.name == name)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found("relation", &name))
}

/// `POST /admin/relations`
pub async fn create(
    State(state): State<AppState>,
    body: Result<Json<CreateRelation>, JsonRejection>,
) -> Result<(StatusCode, Json<Relation>), ApiError> {
    let Json(request) = body.map_err(|e| json_rejection(&e))?;
    if !naming::is_valid_api_name(&request.name) {
        return Err(ApiError::bad_request(
            "a relation name is letters, digits and `_`, starting with a letter",
        )
        .at("name"));
    }
    let snapshot = state.cache.snapshot();
    if snapshot.relations.iter().any(|r| r.name == request.name) {
        return Err(ApiError::conflict(format!(
            "a relation named `{}` already exists",
            request.name
        )));
    }
    let (from, from_have) = request.from.resolve(&snapshot, "from")?;
    let (to, to_have) = request.to.resolve(&snapshot, "to")?;
    if request.from_columns.is_empty() || request.from_columns.len() != request.to_columns.len() {
        return Err(ApiError::bad_request(
            "from_columns and to_columns need the same, non-zero number of columns",
        )
        .at("to_columns"));
    }
    check_columns(&request.from_columns, &from_have, &from, "from_columns")?;
    check_columns(&request.to_columns, &to_have, &to, "to_columns")?;
    let relation = Relation {
        name: request.name,
        from,
        from_columns: request.from_columns,
        to,
        to_columns: request.to_columns,
        origin: RelationOrigin::Declared,
    };
    if !state.store.insert_relation(&relation).await? {
        return Err(ApiError::conflict(format!(
            "a relation named `{}` already exists",
            relation.name
        )));
    }
    state.sources.reload_declared().await?;
    Ok((StatusCode::CREATED, Json(relation)))
}

/// `DELETE /admin/relations/{name}` (declared relations only).
pub async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !state.store.delete_relation(&name).await? {
        let is_foreign_key = state
            .cache
            .snapshot()
            .relations
            .iter()
            .any(|r| r.name == name);
        return Err(if is_foreign_key {
            ApiError::bad_request(format!(
                "`{name}` is a foreign key of the source; it cannot be deleted here"
            ))
        } else {
            ApiError::not_found("relation", &name)
        });
    }
    state.sources.reload_declared().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An alias as the API shows it.
#[derive(Debug, Serialize)]
pub struct AliasView {
    pub alias: String,
    pub table: String,
}

/// The body of `PUT /admin/aliases`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetAlias {
    pub table: TableName,
    pub alias: String,
}

/// `GET /admin/aliases`
pub async fn list_aliases(State(state): State<AppState>) -> Result<Json<Vec<AliasView>>, ApiError> {
    let aliases = state.store.aliases().await?;
    Ok(Json(
        aliases
            .into_iter()
            .map(|(table, alias)| AliasView {
                alias,
                table: table.to_string(),
            })
            .collect(),
    ))
}

/// `PUT /admin/aliases`: sets (or replaces) a table's API name.
pub async fn set_alias(
    State(state): State<AppState>,
    body: Result<Json<SetAlias>, JsonRejection>,
) -> Result<Json<AliasView>, ApiError> {
    let Json(request) = body.map_err(|e| json_rejection(&e))?;
    if !naming::is_valid_api_name(&request.alias) {
        return Err(ApiError::bad_request(
            "an alias is letters, digits and `_`, starting with a letter or `_` (not `__`), at most 128",
        )
        .at("alias"));
    }
    if naming::RESERVED_API_NAMES.contains(&request.alias.as_str()) {
        return Err(ApiError::bad_request(format!(
            "`{}` names a route of the REST API (`/api/{}`): choose another alias",
            request.alias, request.alias
        ))
        .at("alias"));
    }
    let snapshot = state.cache.snapshot();
    let (table, _) = request.table.resolve(&snapshot, "table")?;
    if let Some(other) = snapshot
        .collections
        .iter()
        .find(|c| c.api_name == request.alias && c.table != table)
    {
        return Err(ApiError::conflict(format!(
            "`{}` already names {}",
            request.alias, other.sql_name
        ))
        .at("alias"));
    }
    state.store.set_alias(&table, &request.alias).await?;
    state.sources.reload_declared().await?;
    Ok(Json(AliasView {
        alias: request.alias,
        table: table.to_string(),
    }))
}

/// `DELETE /admin/aliases/{alias}`
pub async fn remove_alias(
    State(state): State<AppState>,
    Path(alias): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !state.store.delete_alias(&alias).await? {
        return Err(ApiError::not_found("alias", &alias));
    }
    state.sources.reload_declared().await?;
    Ok(StatusCode::NO_CONTENT)
}
