//! DataFusion catalogs built from a catalog snapshot, with the name
//! resolution SQL users get: `source.schema.table`; `source.table` for the
//! source's default schema; and a bare `table` when exactly one source has a
//! table of that name (otherwise an error listing the candidates).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider, SchemaProvider,
};
use datafusion::common::TableReference;
use datafusion::datasource::TableProvider;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::TableScan;
use datafusion_federation::sql::{
    LogicalOptimizer, SQLFederationProvider, SQLTable, SQLTableSource,
};
use datafusion_federation::{FederatedTableProviderAdaptor, get_table_source};
use tributary_connector::Connector;
use tributary_schema_cache::{CatalogSnapshot, SourceKind, TableDef, TableRef};

use super::executor::SourceExecutor;
use super::permission_rewrite::TableProviders;
use super::runtime_filter::JoinFilters;
use super::{mysql_strings, null_order, rules};
use crate::metrics::Metrics;

/// DataFusion's default catalog and schema, where `source.table` and bare
/// table names are resolved.
pub const DEFAULT_CATALOG: &str = "datafusion";
pub const DEFAULT_SCHEMA: &str = "public";

/// The Arrow schema of a table, from the catalog.
pub fn table_schema(table: &TableDef) -> SchemaRef {
    Arc::new(Schema::new(
        table
            .columns
            .iter()
            .map(|c| Field::new(&c.name, c.data_type.clone(), c.nullable))
            .collect::<Vec<_>>(),
    ))
}

/// Builds every catalog: one per source with a model and a connector, and
/// the table providers by table (for permission filters' subqueries).
/// Sources without a model yet (never introspected) are left out; sources
/// that are down keep their cached model and fail at execution, naming
/// themselves.
pub fn build(
    snapshot: &CatalogSnapshot,
    connectors: &BTreeMap<String, Arc<dyn Connector>>,
    metrics: &Arc<Metrics>,
    joins: &Arc<JoinFilters>,
) -> Result<(Arc<dyn CatalogProviderList>, TableProviders)> {
    let list = MemoryCatalogProviderList::new();
    let mut providers = TableProviders::new();
    let defaults = MemoryCatalogProvider::new();
    let mut bare: BTreeMap<String, Vec<Candidate>> = BTreeMap::new();
    for (name, entry) in &snapshot.sources {
        let (Some(model), Some(connector)) = (entry.schema.as_ref(), connectors.get(name)) else {
            continue;
        };
        let executor = Arc::new(SourceExecutor::new(
            model,
            connector.clone(),
            metrics.clone(),
            joins.clone(),
        ));
        let provider = Arc::new(SQLFederationProvider::new(executor));
        let catalog = MemoryCatalogProvider::new();
        for (schema_name, schema) in &model.schemas {
            let schema_provider = MemorySchemaProvider::new();
            for table in schema.tables.values() {
                let remote = SourceTable {
                    reference: TableReference::partial(schema_name.as_str(), table.name.as_str()),
                    schema: table_schema(table),
                    kind: model.kind,
                    json: table
                        .columns
                        .iter()
                        .filter(|c| crate::filter::is_json_column(c))
                        .map(|c| c.name.clone())
                        .collect(),
                };
                let source = SQLTableSource::new_with_table(provider.clone(), Arc::new(remote));
                let table_provider: Arc<dyn TableProvider> =
                    Arc::new(FederatedTableProviderAdaptor::new(Arc::new(source)));
                schema_provider.register_table(table.name.clone(), table_provider.clone())?;
                providers.insert(
                    TableRef::new(name, schema_name, &table.name),
                    table_provider.clone(),
                );
                bare.entry(table.name.clone()).or_default().push((
                    format!("{name}.{schema_name}.{}", table.name),
                    table_provider,
                ));
            }
            let schema_provider = Arc::new(schema_provider);
            if model.default_schema.as_deref() == Some(schema_name.as_str()) {
                defaults.register_schema(name, schema_provider.clone())?;
            }
            catalog.register_schema(schema_name, schema_provider)?;
        }
        list.register_catalog(name.clone(), Arc::new(catalog));
    }
    defaults.register_schema(DEFAULT_SCHEMA, Arc::new(BareNames { tables: bare }))?;
    list.register_catalog(DEFAULT_CATALOG.to_string(), Arc::new(defaults));
    Ok((Arc::new(list), providers))
}

/// `source.schema.table.column` for every one-column primary key and
/// unique constraint of the catalog (join regrouping only joins tables of a
/// source on keys).
pub fn one_column_keys(snapshot: &CatalogSnapshot) -> std::collections::HashSet<String> {
    let mut keys = std::collections::HashSet::new();
    for (source, entry) in &snapshot.sources {
        let Some(model) = &entry.schema else {
            continue;
        };
        for (schema, table) in model.tables() {
            for key in table.primary_key.iter().chain(&table.unique_constraints) {
                if let [column] = key.columns.as_slice() {
                    keys.insert(format!("{source}.{schema}.{}.{column}", table.name));
                }
            }
        }
    }
    keys
}

/// A table a bare name may mean: its full `source.schema.table` name and provider.
type Candidate = (String, Arc<dyn TableProvider>);

/// One table of a source, as the federation planner unparses it.
#[derive(Debug)]
struct SourceTable {
    reference: TableReference,
    schema: SchemaRef,
    kind: SourceKind,
    /// Its columns holding JSON documents (delivered as their text).
    json: Vec<String>,
}

/// The JSON columns of the source table `scan` reads (none for any other
/// table).
pub fn json_columns(scan: &TableScan) -> Vec<String> {
    let Ok(Some(source)) = get_table_source(&scan.source) else {
        return Vec::new();
    };
    (source.as_ref() as &dyn std::any::Any)
        .downcast_ref::<SQLTableSource>()
        .and_then(|sql| sql.table.as_any().downcast_ref::<SourceTable>())
        .map(|table| table.json.clone())
        .unwrap_or_default()
}

impl SQLTable for SourceTable {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn table_reference(&self) -> TableReference {
        self.reference.clone()
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn logical_optimizer(&self) -> Option<LogicalOptimizer> {
        match self.kind {
            // NULLs placed first, on the keys as written (`k IS NULL`),
            // then string keys made their bytes.
            SourceKind::Mysql | SourceKind::Mariadb => Some(Box::new(|plan| {
                let placed = null_order::place_nulls(plan, null_order::is_null)?;
                rules::alias_derived_tables(mysql_strings::exact_strings(placed)?)
            })),
            SourceKind::Sqlserver => Some(Box::new(|plan| {
                rules::alias_derived_tables(null_order::place_nulls(plan, null_order::null_as_one)?)
            })),
            _ => Some(Box::new(rules::alias_derived_tables)),
        }
    }
}

/// The default schema: a bare table name resolves when exactly one source
/// has a table of that name.
#[derive(Debug)]
struct BareNames {
    /// Table name → every `source.schema.table` with that name, and its provider.
    tables: BTreeMap<String, Vec<Candidate>>,
}

#[async_trait]
impl SchemaProvider for BareNames {
    fn table_names(&self) -> Vec<String> {
        self.tables
            .iter()
            .filter(|(_, c)| c.len() == 1)
            .map(|(n, _)| n.clone())
            .collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        match self.tables.get(name).map(Vec::as_slice) {
            None | Some([]) => Ok(None),
            Some([(_, provider)]) => Ok(Some(provider.clone())),
            Some(candidates) => {
                let names: Vec<&str> = candidates.iter().map(|(n, _)| n.as_str()).collect();
                Err(DataFusionError::Plan(format!(
                    "table `{name}` is ambiguous; name one of: {}",
                    names.join(", ")
                )))
            }
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.get(name).is_some_and(|c| c.len() == 1)
    }
}
