//! The tools described as data (`GET /tools`, `GET /tools/{slug}`), and a
//! submit checked against the shapes they declare.

use http::Method;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::TestApp;

#[sqlx::test(migrations = false)]
async fn every_tool_is_described_with_its_outputs_inputs_and_shapes(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    let response = app.get("/tools", &ana.token).await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    let tools = response.body["tools"].as_array().unwrap();
    let registry = app.registry();
    let slugs: Vec<&str> = tools.iter().map(|t| t["slug"].as_str().unwrap()).collect();
    let expected: Vec<&str> = registry.tools().iter().map(|t| t.slug.as_str()).collect();
    assert_eq!(slugs, expected);
    for (tool, registered) in tools.iter().zip(registry.tools()) {
        assert_eq!(tool["sprint"], registered.sprint);
        assert!(!tool["module"]["name"].as_str().unwrap().is_empty());
        assert!(
            !tool["description"].as_str().unwrap().is_empty(),
            "{}",
            registered.slug
        );
        let outputs = tool["outputs"].as_array().unwrap();
        assert_eq!(outputs.len(), registered.outputs.len());
        for (output, registered) in outputs.iter().zip(&registered.outputs) {
            assert_eq!(output["field"], registered.field.as_str());
            assert_eq!(output["key"], registered.key.as_str());
            assert!(!output["label"].as_str().unwrap().is_empty());
            assert!(output["shape"]["type"].is_string());
            assert_eq!(output["required"], true);
        }
        assert_eq!(
            tool["inputs"].as_array().unwrap().len(),
            registered.dependencies.len()
        );
    }

    // Values reads the one-sentence dream from Dream, labelled as it shows it.
    let values = app.get("/tools/values", &ana.token).await;
    assert_eq!(values.status, 200);
    let dream = values.body["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["field"] == "identity.dream.one_sentence")
        .expect("values reads the dream");
    assert_eq!(
        dream["from_tool"],
        json!({"slug": "dream", "name": "Dream"})
    );
    assert_eq!(dream["from_key"], "one_sentence");
    assert_eq!(dream["label"], "One-Sentence Dream");
    assert_eq!(dream["required"], true);
    // An alias names the same tool; an unknown slug is a 404.
    let alias = app.get("/tools/identity", &ana.token).await;
    assert_eq!(alias.body["slug"], "know-thyself");
    let unknown = app.get("/tools/no-such-tool", &ana.token).await;
    assert_eq!((unknown.status, unknown.code()), (404, "tool_not_found"));
    assert_eq!(app.get("/tools", "").await.status, 401);
}

#[sqlx::test(migrations = false)]
async fn a_client_that_has_the_current_description_gets_a_304(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    for path in ["/tools", "/tools/woop"] {
        let first = app.get(path, &ana.token).await;
        let etag = first.header("etag").unwrap().to_owned();
        assert_eq!(first.header("cache-control"), Some("private, no-cache"));
        let auth = format!("Bearer {}", ana.token);
        let again = app
            .request(
                Method::GET,
                path,
                &[("authorization", &auth), ("if-none-match", &etag)],
                None,
            )
            .await;
        assert_eq!(again.status, 304, "{path}");
        assert_eq!(again.body, Value::Null, "{path}: no body");
        assert_eq!(again.header("etag"), Some(etag.as_str()));
        let stale = app
            .request(
                Method::GET,
                path,
                &[("authorization", &auth), ("if-none-match", "\"tools-0\"")],
                None,
            )
            .await;
        assert_eq!(stale.status, 200, "{path}");
    }
    let woop = app.get("/tools/woop", &ana.token).await;
    let all = app.get("/tools", &ana.token).await;
    assert_ne!(woop.header("etag"), all.header("etag"));
}

#[sqlx::test(migrations = false)]
async fn a_submit_whose_values_do_not_have_their_shapes_is_refused_naming_each(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    app.submit_complete(&ana, "woop").await;
    let before = app.snapshot().await;
    let refused = app
        .save(
            &ana,
            "know-thyself",
            json!({"dream": 12345, "strengths": true, "values": "not a list"}),
            "submitted",
        )
        .await;
    assert_eq!((refused.status, refused.code()), (422, "invalid_shape"));
    let invalid = refused.body["error"]["details"]["invalid"]
        .as_array()
        .unwrap();
    let keys: Vec<&str> = invalid.iter().map(|i| i["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["dream", "strengths", "values"]);
    assert_eq!(invalid[0]["expected"], "text");
    assert!(
        invalid[1]["expected"]
            .as_str()
            .unwrap()
            .starts_with("a list of rows")
    );
    assert_eq!(app.snapshot().await, before, "nothing written");

    // A draft is the form's own state: any shape, bounded by the body limit.
    let draft = app
        .save(
            &ana,
            "know-thyself",
            json!({"dream": 12345, "strengths": true, "values": "not a list"}),
            "draft",
        )
        .await;
    assert_eq!(draft.status, 201, "{:?}", draft.body);
    // The form's shapes submit.
    let shaped = app
        .save(
            &ana,
            "know-thyself",
            json!({
                "dream": "A bakery on every corner",
                "strengths": [{"strength": "Baking", "fitPercent": 90}],
                "values": [{"value": "Care", "howLive": "Every loaf by hand", "alignment": 80}],
            }),
            "submitted",
        )
        .await;
    assert_eq!(shaped.status, 200, "{:?}", shaped.body);
}
