//! The schema cache: persistence across restarts, atomic swaps with diffs,
//! status changes that keep the model, and the derived names and relations.

use std::collections::BTreeMap;

use arrow_schema::DataType;
use tributary_schema_cache::{
    CatalogDiff, CatalogStore, ColumnDef, FileCatalogStore, ForeignKeyDef, KeyDef,
    MemoryCatalogStore, ReferentialAction, Relation, RelationOrigin, SchemaCache, SchemaDef,
    SourceKind, SourceSchema, SourceStatus, TableDef, TableKind, TableRef,
};

fn column(name: &str, ordinal: u32, native: &str, data_type: DataType) -> ColumnDef {
    ColumnDef {
        name: name.into(),
        ordinal,
        native_type: native.into(),
        data_type,
        nullable: true,
        default: None,
        generated: None,
        comment: None,
        unsupported_type: None,
    }
}

fn table(name: &str, columns: Vec<ColumnDef>) -> TableDef {
    TableDef {
        name: name.into(),
        kind: TableKind::Table,
        comment: None,
        columns,
        primary_key: Some(KeyDef {
            name: None,
            columns: vec!["id".into()],
        }),
        unique_constraints: vec![],
        foreign_keys: vec![],
        indexes: vec![],
        check_constraints: vec![],
        row_estimate: Some(10),
        drift_fingerprint: "d1".into(),
    }
}

fn source(name: &str, tables: Vec<TableDef>) -> SourceSchema {
    let mut schema = SchemaDef {
        name: "public".into(),
        ..Default::default()
    };
    for t in tables {
        schema.tables.insert(t.name.clone(), t);
    }
    SourceSchema {
        source: name.into(),
        kind: SourceKind::Postgres,
        server_version: "15".into(),
        default_schema: Some("public".into()),
        schemas: BTreeMap::from([("public".into(), schema)]),
        introspected_at: chrono::Utc::now(),
    }
}

fn crm() -> SourceSchema {
    let mut contacts = table(
        "contacts",
        vec![
            column("id", 1, "integer", DataType::Int32),
            column("customer_id", 2, "integer", DataType::Int32),
        ],
    );
    contacts.foreign_keys.push(ForeignKeyDef {
        name: Some("contacts_customer_fk".into()),
        columns: vec!["customer_id".into()],
        referenced_schema: "public".into(),
        referenced_table: "customers".into(),
        referenced_columns: vec!["id".into()],
        on_update: ReferentialAction::NoAction,
        on_delete: ReferentialAction::Cascade,
    });
    source(
        "crm",
        vec![
            table(
                "customers",
                vec![
                    column("id", 1, "integer", DataType::Int32),
                    column("name", 2, "text", DataType::Utf8),
                ],
            ),
            contacts,
        ],
    )
}

#[test]
fn install_persists_and_reopening_serves_the_cache_unchecked() {
    let dir = tempfile::tempdir().unwrap();
    let cache = SchemaCache::open(Box::new(FileCatalogStore::in_dir(dir.path()))).unwrap();
    let mut changes = cache.subscribe();
    let version = cache.snapshot().version;
    let diff = cache.install(crm()).unwrap();
    assert_eq!(
        diff.tables_added,
        vec!["public.contacts", "public.customers"]
    );
    assert!(changes.has_changed().unwrap());
    assert_eq!(changes.borrow_and_update().version, version + 1);
    let snapshot = cache.snapshot();
    assert!(matches!(
        snapshot.sources["crm"].status,
        SourceStatus::Ready { .. }
    ));
    let names: Vec<_> = snapshot
        .collections
        .iter()
        .map(|c| c.api_name.as_str())
        .collect();
    assert_eq!(names, vec!["crm_contacts", "crm_customers"]);
    assert_eq!(snapshot.relations.len(), 1);
    assert_eq!(snapshot.relations[0].origin, RelationOrigin::ForeignKey);
    let fingerprint = snapshot.sources["crm"].fingerprint().unwrap();
    drop(cache);

    // No temp file is left behind, and a restart serves the same model.
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, vec![std::ffi::OsString::from("catalog.json")]);
    let reopened = SchemaCache::open(Box::new(FileCatalogStore::in_dir(dir.path()))).unwrap();
    let snapshot = reopened.snapshot();
    assert_eq!(snapshot.sources["crm"].status, SourceStatus::Unchecked);
    assert_eq!(snapshot.sources["crm"].fingerprint().unwrap(), fingerprint);
    assert_eq!(snapshot.collections.len(), 2);
}

#[test]
fn a_refresh_swaps_the_source_and_reports_the_diff() {
    let cache = SchemaCache::open(Box::<MemoryCatalogStore>::default()).unwrap();
    cache.install(crm()).unwrap();
    let mut changed = crm();
    let customers = changed
        .schemas
        .get_mut("public")
        .unwrap()
        .tables
        .get_mut("customers")
        .unwrap();
    customers.columns[1].nullable = false;
    customers.columns[1].native_type = "varchar(80)".into();
    customers
        .columns
        .push(column("email", 3, "text", DataType::Utf8));
    customers.indexes.push(tributary_schema_cache::IndexDef {
        name: "customers_email".into(),
        columns: vec!["email".into()],
        unique: true,
        primary: false,
        method: Some("btree".into()),
    });
    changed
        .schemas
        .get_mut("public")
        .unwrap()
        .tables
        .remove("contacts");
    let before = cache.snapshot();
    let diff = cache.install(changed).unwrap();
    assert_eq!(diff.tables_removed, vec!["public.contacts"]);
    assert_eq!(diff.tables_changed.len(), 1);
    let change = &diff.tables_changed[0];
    assert_eq!(change.columns_added, vec!["email"]);
    assert_eq!(change.columns_changed[0].column, "name");
    assert_eq!(
        change.columns_changed[0].changes,
        vec!["type: text → varchar(80)", "nullable: true → false"]
    );
    assert_eq!(change.other_changes, vec!["indexes"]);
    // Readers holding the old snapshot still see the old model.
    assert_eq!(
        before.sources["crm"]
            .schema
            .as_ref()
            .unwrap()
            .tables()
            .count(),
        2
    );
    assert_eq!(
        cache.snapshot().relations.len(),
        0,
        "the FK went away with its table"
    );
    // Installing the same model again changes nothing.
    let same = cache.snapshot().sources["crm"]
        .schema
        .as_deref()
        .cloned()
        .unwrap();
    assert!(cache.install(same).unwrap().is_empty());
}

#[test]
fn status_changes_keep_the_model_and_the_first_failure_time() {
    let cache = SchemaCache::open(Box::<MemoryCatalogStore>::default()).unwrap();
    cache.install(crm()).unwrap();
    let first = chrono::Utc::now() - chrono::Duration::minutes(5);
    cache
        .set_status(
            "crm",
            SourceStatus::Unavailable {
                error: "refused".into(),
                since: first,
            },
        )
        .unwrap();
    cache
        .set_status(
            "crm",
            SourceStatus::Unavailable {
                error: "still refused".into(),
                since: chrono::Utc::now(),
            },
        )
        .unwrap();
    let snapshot = cache.snapshot();
    assert_eq!(
        snapshot.sources["crm"].status,
        SourceStatus::Unavailable {
            error: "still refused".into(),
            since: first
        }
    );
    assert!(snapshot.sources["crm"].schema.is_some());
    assert!(cache.set_status("nope", SourceStatus::Unchecked).is_err());
}

#[test]
fn declared_relations_and_aliases_feed_the_derived_views() {
    let cache = SchemaCache::open(Box::<MemoryCatalogStore>::default()).unwrap();
    cache.install(crm()).unwrap();
    cache
        .install(source(
            "shop",
            vec![table(
                "orders",
                vec![column("id", 1, "integer", DataType::Int32)],
            )],
        ))
        .unwrap();
    let declared = Relation {
        name: "order_customer".into(),
        from: TableRef::new("shop", "public", "orders"),
        from_columns: vec!["customer_id".into()],
        to: TableRef::new("crm", "public", "customers"),
        to_columns: vec!["id".into()],
        origin: RelationOrigin::Declared,
    };
    let aliases = BTreeMap::from([(
        TableRef::new("shop", "public", "orders"),
        "orders".to_string(),
    )]);
    cache.set_declared(vec![declared], aliases).unwrap();
    let snapshot = cache.snapshot();
    assert_eq!(
        snapshot
            .relations
            .iter()
            .filter(|r| r.is_cross_source())
            .count(),
        1
    );
    assert_eq!(
        snapshot.collection("orders").unwrap().sql_name,
        "shop.public.orders"
    );
    cache.remove("shop").unwrap();
    assert!(cache.snapshot().collection("orders").is_none());
    cache.retain(&[]).unwrap();
    assert!(cache.snapshot().sources.is_empty());
}

#[test]
fn a_corrupt_cache_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("catalog.json"), b"{not json").unwrap();
    let err = SchemaCache::open(Box::new(FileCatalogStore::in_dir(dir.path()))).unwrap_err();
    assert!(err.to_string().contains("catalog.json"), "{err}");
    let store = FileCatalogStore::in_dir(dir.path());
    assert!(store.load().is_err());
}

#[test]
fn first_introspection_diff_lists_every_table() {
    let diff = CatalogDiff::between(None, &crm());
    assert_eq!(diff.tables_added.len(), 2);
    assert!(diff.tables_removed.is_empty() && diff.tables_changed.is_empty());
}

#[test]
fn an_unchanged_status_publishes_nothing() {
    let cache = SchemaCache::open(Box::<MemoryCatalogStore>::default()).unwrap();
    cache.install(crm()).unwrap();
    let version = cache.snapshot().version;
    let SourceStatus::Ready { since } = cache.snapshot().sources["crm"].status.clone() else {
        panic!("ready")
    };
    cache
        .set_status(
            "crm",
            SourceStatus::Ready {
                since: chrono::Utc::now(),
            },
        )
        .unwrap();
    assert_eq!(
        cache.snapshot().version,
        version,
        "a healthy check changes nothing"
    );
    assert_eq!(
        cache.snapshot().sources["crm"].status,
        SourceStatus::Ready { since }
    );
    cache
        .set_status(
            "crm",
            SourceStatus::Unavailable {
                error: "down".into(),
                since: chrono::Utc::now(),
            },
        )
        .unwrap();
    assert_eq!(cache.snapshot().version, version + 1);
    cache
        .set_status(
            "crm",
            SourceStatus::Ready {
                since: chrono::Utc::now(),
            },
        )
        .unwrap();
    assert_eq!(cache.snapshot().version, version + 2);
}
