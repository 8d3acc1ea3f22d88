//! One route table: the routes template.yaml declares, the local server serves,
//! cargo-lambda's watch router knows, the OpenAPI spec documents and events/
//! exercises are all `shared::http::routes::ROUTES`.

use std::collections::BTreeSet;
use std::path::Path;

use serde_norway::Value;
use shared::app::App;
use shared::foundation::error::CODES;
use shared::http::cors;
use shared::http::events::route_of;
use shared::http::routes::{Function, ROUTES, UNMATCHED};
use shared::registry::Registry;

type Route = (String, String, String); // (METHOD, path, function binary)

fn repo(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)).unwrap()
}

fn the_table() -> BTreeSet<Route> {
    ROUTES
        .iter()
        .map(|r| {
            (
                r.method.to_string(),
                r.path.to_owned(),
                r.function.binary().to_owned(),
            )
        })
        .collect()
}

fn template() -> Value {
    serde_norway::from_str(&repo("template.yaml")).unwrap()
}

fn str_of<'a>(value: &'a Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter().try_fold(value, |v, k| v.get(*k))?.as_str()
}

#[test]
fn the_sam_template_declares_exactly_the_route_table() {
    let template = template();
    let mut declared = BTreeSet::new();
    let mut unmatched = Vec::new();
    let resources = template["Resources"].as_mapping().unwrap();
    for (_, resource) in resources {
        if str_of(resource, &["Type"]) != Some("AWS::Serverless::Function") {
            continue;
        }
        let binary = str_of(resource, &["Metadata", "BuildProperties", "Binary"])
            .expect("each function names its binary");
        assert_eq!(
            str_of(resource, &["Metadata", "BuildMethod"]),
            Some("rust-cargolambda")
        );
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../functions")
                .join(binary)
                .is_dir(),
            "{binary}"
        );
        // A streaming function is reached through its URL, every route of it.
        let function = Function::ALL.into_iter().find(|f| f.binary() == binary);
        if let Some(url) = resource["Properties"].get("FunctionUrlConfig") {
            let function = function.expect("a function with a URL serves routes");
            assert!(function.streams(), "{binary} has a URL but does not stream");
            assert_eq!(str_of(url, &["InvokeMode"]), Some("RESPONSE_STREAM"));
            assert!(resource["Properties"].get("Events").is_none(), "{binary}");
            for route in ROUTES.iter().filter(|r| r.function == function) {
                declared.insert((
                    route.method.to_string(),
                    route.path.to_owned(),
                    binary.to_owned(),
                ));
            }
            continue;
        }
        assert!(
            function.is_none_or(|f| !f.streams()),
            "{binary} streams without a URL"
        );
        let Some(events) = resource["Properties"]
            .get("Events")
            .and_then(Value::as_mapping)
        else {
            continue;
        };
        for (_, event) in events {
            if str_of(event, &["Type"]) == Some("HttpApi") {
                let method = str_of(event, &["Properties", "Method"])
                    .unwrap()
                    .to_uppercase();
                let path = str_of(event, &["Properties", "Path"]).unwrap().to_owned();
                if path == "/$default" {
                    assert_eq!(method, "ANY");
                    unmatched.push(binary.to_owned());
                } else {
                    declared.insert((method, path, binary.to_owned()));
                }
            }
        }
    }
    assert_eq!(declared, the_table());
    // The gateway's catch-all goes to the one function meant to answer it.
    assert_eq!(unmatched, [UNMATCHED.binary()]);
}

#[test]
fn every_function_binary_has_a_template_function_and_every_route_function_a_binary() {
    let template = template();
    let binaries: BTreeSet<&str> = template["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .filter_map(|r| str_of(r, &["Metadata", "BuildProperties", "Binary"]))
        .collect();
    // The folders: one per function binary.
    let folders: BTreeSet<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions"))
            .unwrap()
            .map(Result::unwrap)
            .filter(|e| e.file_type().unwrap().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
    assert_eq!(
        binaries
            .iter()
            .map(|b| b.to_string())
            .collect::<BTreeSet<_>>(),
        folders
    );
    for function in Function::ALL {
        assert!(binaries.contains(function.binary()));
    }
}

/// The key that signs tokens: its secret, and the right to read it, go to the
/// function that creates sessions alone. Every function gets the public keys
/// and its stage (`DEPLOYMENT_STAGE`, which turns on the deployed checks).
#[test]
fn only_the_function_that_creates_sessions_can_read_the_token_signing_key() {
    let template = template();
    let mentions =
        |value: &Value, name: &str| serde_norway::to_string(value).unwrap().contains(name);
    assert!(!mentions(&template["Globals"], "JwtSigningKeySecretArn"));
    let mut readers = Vec::new();
    for (_, resource) in template["Resources"].as_mapping().unwrap() {
        if mentions(resource, "JwtSigningKeySecretArn") {
            let binary = str_of(resource, &["Metadata", "BuildProperties", "Binary"]);
            readers.push(binary.unwrap_or("a resource that is no function"));
            let variables = &resource["Properties"]["Environment"]["Variables"];
            assert!(variables.get("JWT_SIGNING_KEY_SECRET_ARN").is_some());
            assert!(mentions(
                &resource["Properties"]["Policies"],
                "JwtSigningKeySecretArn"
            ));
        }
    }
    let minting: Vec<&str> = Function::ALL
        .into_iter()
        .filter(|f| shared::http::routes::mints_tokens(Some(*f)))
        .map(Function::binary)
        .collect();
    assert_eq!(readers, minting);
    let globals = &template["Globals"]["Function"]["Environment"]["Variables"];
    for name in ["JWT_PUBLIC_KEYS", "DEPLOYMENT_STAGE"] {
        assert!(globals.get(name).is_some(), "{name}");
    }
}

#[test]
fn cargo_lambdas_watch_router_knows_exactly_the_route_table() {
    let manifest: toml::Table = repo("Cargo.toml").parse().unwrap();
    let router = manifest["workspace"]["metadata"]["lambda"]["watch"]["router"]
        .as_table()
        .unwrap();
    let mut known = BTreeSet::new();
    for (path, routes) in router {
        for route in routes.as_array().unwrap() {
            let method = route["method"].as_str().unwrap().to_owned();
            let function = route["function"].as_str().unwrap().to_owned();
            known.insert((method, path.clone(), function));
        }
    }
    assert_eq!(known, the_table());
}

#[test]
fn the_openapi_spec_documents_exactly_the_route_table() {
    let spec: Value = serde_norway::from_str(&repo("openapi.yaml")).unwrap();
    assert_eq!(str_of(&spec, &["openapi"]), Some("3.1.0"));
    let mut documented = BTreeSet::new();
    for (path, item) in spec["paths"].as_mapping().unwrap() {
        for (method, operation) in item.as_mapping().unwrap() {
            let method = method.as_str().unwrap();
            // A path item's own fields, beside its operations.
            if ["parameters", "servers"].contains(&method) {
                continue;
            }
            let function = str_of(operation, &["x-fasttrack-function"])
                .expect("every operation names its function");
            documented.insert((
                method.to_uppercase(),
                path.as_str().unwrap().to_owned(),
                function.to_owned(),
            ));
        }
    }
    assert_eq!(documented, the_table());
    let schemes = spec["components"]["securitySchemes"].as_mapping().unwrap();
    assert_eq!(
        str_of(
            &spec,
            &["components", "securitySchemes", "bearerAuth", "scheme"]
        ),
        Some("bearer")
    );
    assert_eq!(
        str_of(
            &spec,
            &[
                "components",
                "securitySchemes",
                "learnworldsSignature",
                "name"
            ]
        ),
        Some("Learnworlds-Webhook-Signature")
    );
    assert_eq!(schemes.len(), 2);
}

#[test]
fn events_hold_one_api_gateway_event_per_route_and_a_schedule_event() {
    let mut covered = BTreeSet::new();
    let mut schedules = 0;
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")).unwrap()
    {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let event: serde_json::Value = serde_json::from_str(&text).unwrap();
        if event["source"] == "aws.scheduler" {
            schedules += 1;
            continue;
        }
        assert_eq!(event["version"], "2.0");
        let route = route_of(&event).expect("an event for a known route");
        // Only the streaming function is reached through a function URL.
        assert_eq!(event["routeKey"] == "$default", route.function.streams());
        let (method, path) = (route.method.as_str(), route.path);
        covered.insert((
            method.to_owned(),
            path.to_owned(),
            route.function.binary().to_owned(),
        ));
    }
    assert_eq!(covered, the_table());
    assert_eq!(schedules, 1);
}

/// Without a token or signature every route answers 401 (or 415/422 for a bad
/// body), never 404/405: the app serving all functions knows every route.
#[tokio::test]
async fn the_local_server_serves_every_route() {
    let key = shared::foundation::keys::SigningKey::generate();
    let settings =
        shared::foundation::config::ApiSettings::from_source(&std::collections::HashMap::from([
            ("JWT_SIGNING_KEY", key.to_base64().as_str()),
            ("JWT_PUBLIC_KEYS", key.public_key().to_base64().as_str()),
            (
                "ERASURE_HASH_KEY",
                "route-table-test-erasure-key-0123456789",
            ),
        ]))
        .unwrap();
    let database = shared::foundation::config::DatabaseSettings::from_source(
        &std::collections::HashMap::from([("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")]),
    )
    .unwrap();
    let app = App::new(
        shared::foundation::db::Pool::new(&database).unwrap(),
        Registry::embedded(),
        settings,
        None,
    )
    .unwrap();
    for route in ROUTES {
        let path = route
            .path
            .replace("{user_id}", "6f1c5b1e-5a87-4f7e-9a57-2f7b2a8f1d10")
            .replace("{slug}", "woop");
        let request = http::Request::builder()
            .method(route.method.clone())
            .uri(&path)
            .header("content-type", "application/json")
            .body(lambda_http::Body::Text("{}".into()))
            .unwrap();
        let status = app.handle(request).await.status().as_u16();
        assert!(
            matches!(status, 401 | 422),
            "{} {path}: {status}",
            route.method
        );
    }
}

#[test]
fn the_templates_cors_matches_the_local_servers() {
    let template = template();
    let cors_config = &template["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"];
    let list = |key: &str| -> Vec<String> {
        cors_config[key]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(list("AllowMethods"), cors::ALLOW_METHODS);
    assert_eq!(list("AllowHeaders"), cors::ALLOW_HEADERS);
    assert_eq!(list("ExposeHeaders"), cors::EXPOSE_HEADERS);
    assert_eq!(
        cors_config["MaxAge"].as_u64(),
        Some(u64::from(cors::MAX_AGE_SECONDS))
    );
}

/// Every key of a mapping in `value` whose value is null, with its path.
fn null_entries(value: &Value, path: &str, found: &mut Vec<String>) {
    match value {
        Value::Mapping(map) => {
            for (key, inner) in map {
                let key = key.as_str().unwrap_or("?");
                let here = format!("{path}/{key}");
                if inner.is_null() && !matches!(key, "default" | "example" | "const") {
                    found.push(here.clone());
                }
                null_entries(inner, &here, found);
            }
        }
        Value::Sequence(items) => {
            for (i, inner) in items.iter().enumerate() {
                null_entries(inner, &format!("{path}/{i}"), found);
            }
        }
        _ => {}
    }
}

#[test]
fn no_description_in_the_spec_is_split_by_a_comma_in_a_flow_mapping() {
    // `{ description: A, or B. }` reads as description "A" and a key
    // "or B." with no value: such keys are what a stray comma leaves.
    let spec: Value = serde_norway::from_str(&repo("openapi.yaml")).unwrap();
    let mut found = Vec::new();
    null_entries(&spec, "", &mut found);
    assert!(found.is_empty(), "keys without a value: {found:#?}");
}

#[test]
fn the_specs_error_codes_are_exactly_the_ones_the_service_answers_with() {
    let spec: Value = serde_norway::from_str(&repo("openapi.yaml")).unwrap();
    let listed: Vec<&str> =
        spec["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
            .as_sequence()
            .expect("Error.code is an enum")
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
    assert_eq!(listed, CODES, "openapi.yaml's Error.code enum is not CODES");
}

#[test]
fn docs_api_md_explains_every_error_code() {
    let docs = repo("docs/api.md");
    let errors = &docs[docs
        .find("## Errors")
        .expect("docs/api.md has an Errors section")..];
    let missing: Vec<&&str> = CODES
        .iter()
        .filter(|code| !errors.contains(&format!("`{code}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/api.md's Errors section lacks {missing:?}"
    );
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The code each error construction in `text` is built with: the literal
/// after `ApiError::bad_request(`, `unprocessable(` or `NotFound(`, or after
/// `code:` in a `BadRequest`, `Conflict` or `Unprocessable` literal. `Err` for
/// one built with something other than a literal.
fn constructed_codes(text: &str) -> Vec<Result<String, String>> {
    let mut found = Vec::new();
    for prefix in ["ApiError::", "Self::"] {
        for call in ["bad_request(", "unprocessable(", "NotFound("] {
            let needle = format!("{prefix}{call}");
            for (at, _) in text.match_indices(&needle) {
                let rest = text[at + needle.len()..].trim_start();
                match rest.strip_prefix('"') {
                    Some(literal) => found.push(Ok(literal[..literal.find('"').unwrap()].into())),
                    // `Self::NotFound(what) => what`, `ApiError::NotFound(_)`:
                    // patterns, not constructions.
                    None if prefix == "Self::" || rest.starts_with('_') => {}
                    None => found.push(Err(rest.chars().take(60).collect())),
                }
            }
        }
        for variant in ["BadRequest {", "Conflict {", "Unprocessable {"] {
            let needle = format!("{prefix}{variant}");
            for (at, _) in text.match_indices(&needle) {
                let rest = &text[at + needle.len()..];
                let fields = &rest[..rest.find(['{', '}']).unwrap_or(rest.len())];
                if let Some(code) = fields.find("code:") {
                    let value = fields[code + 5..].trim_start();
                    match value.strip_prefix('"') {
                        Some(literal) => {
                            found.push(Ok(literal[..literal.find('"').unwrap()].into()));
                        }
                        None => found.push(Err(value.chars().take(60).collect())),
                    }
                }
            }
        }
    }
    found
}

#[test]
fn every_error_code_in_the_source_is_listed_and_every_listed_code_is_used() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["shared/src", "cli/src", "functions"] {
        sources(&root.join(dir), &mut files);
    }
    let mut used = BTreeSet::new();
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for code in constructed_codes(&text) {
            match code {
                Ok(code) if CODES.contains(&code.as_str()) => {
                    used.insert(code);
                }
                Ok(code) => problems.push(format!("{}: `{code}` is not in CODES", file.display())),
                Err(text) => problems.push(format!(
                    "{}: an error built with a code that is not a literal: {text}",
                    file.display()
                )),
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // The rest are ApiError::code()'s fixed codes (its unit test lists them).
    let error_rs = std::fs::read_to_string(root.join("shared/src/foundation/error.rs")).unwrap();
    let body = &error_rs[error_rs.find("pub fn code(&self)").unwrap()..];
    let body = &body[..body.find("\n    }\n").unwrap()];
    for code in CODES {
        assert!(
            used.contains(*code) || body.contains(&format!("\"{code}\"")),
            "`{code}` is listed in CODES but nothing answers with it"
        );
    }
}
