//! The demo: two SQLite sources from the shipped SQL, with a relation across them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use serde_json::json;
use tributary::app::Application;
use tributary::config::{FileConfig, Overrides, ServerConfig};

#[tokio::test]
async fn demo_sources_and_cross_source_relation() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig::resolve(
        FileConfig::default(),
        Overrides {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(dir.path().join("data")),
            admin_token: Some(common::TOKEN.into()),
            refresh_interval_secs: Some(0),
            ..Overrides::default()
        },
    )
    .unwrap();
    let app = Application::build(config).await.unwrap();
    tributary::demo::register(&app, &dir.path().join("databases"))
        .await
        .unwrap();
    let snapshot = app.state().cache.snapshot();
    let names: Vec<&str> = snapshot
        .collections
        .iter()
        .map(|c| c.api_name.as_str())
        .collect();
    assert_eq!(
        names,
        vec![
            "crm_contacts",
            "crm_customers",
            "crm_segments",
            "shop_order_items",
            "shop_order_totals",
            "shop_orders",
            "shop_products"
        ]
    );
    let cross: Vec<_> = snapshot
        .relations
        .iter()
        .filter(|r| r.is_cross_source())
        .collect();
    assert_eq!(cross.len(), 1);
    assert_eq!(cross[0].from.to_string(), "shop.main.orders");
    assert_eq!(cross[0].to.to_string(), "crm.main.customers");
    let shop = snapshot.sources["shop"].schema.clone().unwrap();
    let items = shop.table("main", "order_items").unwrap();
    assert_eq!(
        items.primary_key.as_ref().unwrap().columns,
        vec!["order_id", "product_id"]
    );
    assert_eq!(
        shop.table("main", "products").unwrap().row_estimate,
        Some(4)
    );

    // The banner's commands work against the served demo.
    let base = format!("http://{}", app.local_addr());
    let banner = tributary::demo::banner(&base, common::TOKEN);
    assert!(
        banner.contains(&format!("{base}/admin/catalog")),
        "{banner}"
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    let response = reqwest::Client::new()
        .get(format!("{base}/admin/relations"))
        .bearer_auth(common::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let relations: serde_json::Value = response.json().await.unwrap();
    assert!(
        relations
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == json!("order_customer"))
    );
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}
