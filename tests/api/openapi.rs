//! The served OpenAPI document names every route the server has, and only those.

use appmixer_auth::startup::API_ROUTES;
use serde_json::Value;

use crate::helpers::spawn_with;

#[tokio::test]
async fn the_openapi_document_and_the_route_table_agree() {
    // Everything on, so the routes that exist only when asked for are served too.
    let app = spawn_with(|s| {
        s.fixtures.api = true;
        s.metrics.enabled = true;
    })
    .await;
    let res = app.get("/openapi.json").await;
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();

    let mut documented = Vec::new();
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            documented.push((method.to_ascii_uppercase(), path.clone()));
        }
    }
    for (method, path) in API_ROUTES {
        assert!(
            documented.contains(&(method.to_string(), path.to_string())),
            "{method} {path} is served but not documented"
        );
    }
    for (method, path) in &documented {
        assert!(
            API_ROUTES.contains(&(method.as_str(), path.as_str())),
            "{method} {path} is documented but not in API_ROUTES"
        );
    }

    // Each listed route is really served: never the unknown-route 404 nor a 405.
    for (method, path) in API_ROUTES {
        let concrete = path
            .replace("{id}", "5c88c7cc04a917256c726c3d")
            .replace("{ticket}", "00000000-0000-0000-0000-000000000000");
        let res = app
            .client
            .request(method.parse().unwrap(), format!("{}{concrete}", app.url))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        assert_ne!(status, 405, "{method} {path}");
        if status == 404 {
            let body: Value = res.json().await.unwrap();
            assert_ne!(
                body["message"], "Not Found",
                "{method} {path} is not routed"
            );
        }
    }

    // Every error status a response may have is documented with the Boom schema.
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            for (status, response) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/Boom",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
}
