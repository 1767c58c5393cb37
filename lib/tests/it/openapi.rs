//! openapi.yaml describes exactly the routes the project serves: every (method, path) of the
//! router table in Cargo.toml (`[workspace.metadata.lambda.watch.router]`) and no other, each
//! operation named after its function, answering a documented 500, and a documented 401 unless
//! it is public. Which routes are public comes from template.yaml (`Auth: {Authorizer: NONE}`),
//! so the document cannot call a route public that the deployed API guards, or the reverse.
//!
//! Pure file checks: no emulator. The document itself is validated by `openapi-spec-validator`
//! in tools/test.sh.

use saphyr::{LoadableYamlNode, Scalar, Yaml};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// A route: upper-case HTTP method and API Gateway path (`/api/media/{id}/share`).
type Route = (String, String);

const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn repo_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The router table: route -> function. A small reader for the one shape the table has
/// (`"/path" = [{ method = "GET", function = "name" }, ...]`, an entry possibly spanning lines);
/// anything else fails loudly rather than reading as fewer routes.
fn router_table() -> BTreeMap<Route, String> {
    read_router(&repo_file("Cargo.toml"))
}

fn read_router(cargo: &str) -> BTreeMap<Route, String> {
    const HEADER: &str = "[workspace.metadata.lambda.watch.router]";
    let mut lines = cargo.lines().skip_while(|l| l.trim() != HEADER);
    assert!(lines.next().is_some(), "Cargo.toml has no {HEADER}");
    let is_header = |l: &str| {
        let l = l.trim();
        l.starts_with('[') && l.ends_with(']') && !l.contains('=') && !l.contains('{')
    };
    let section: String = lines
        .take_while(|l| !is_header(l))
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");

    let mut routes = BTreeMap::new();
    let mut rest = section.trim();
    while !rest.is_empty() {
        let (path, after) = quoted(rest).unwrap_or_else(|| panic!("router key expected: {rest}"));
        let after = after.trim_start();
        let after = after
            .strip_prefix('=')
            .unwrap_or_else(|| panic!("`=` expected after {path:?}"))
            .trim_start();
        let inner = after
            .strip_prefix('[')
            .unwrap_or_else(|| panic!("`[` expected for {path:?}"));
        let end = inner
            .find(']')
            .unwrap_or_else(|| panic!("unclosed `[` for {path:?}"));
        let entries: Vec<&str> = inner[..end]
            .split('}')
            .filter(|e| e.contains('='))
            .collect();
        assert!(!entries.is_empty(), "{path:?} routes to no function");
        for entry in entries {
            let method = field(entry, "method").to_ascii_uppercase();
            let function = field(entry, "function");
            let previous = routes.insert((method.clone(), path.to_string()), function);
            assert!(previous.is_none(), "{method} {path} is routed twice");
        }
        rest = inner[end + 1..].trim_start();
    }
    assert!(!routes.is_empty(), "the router table is empty");
    routes
}

/// The leading `"..."` of `text` and what follows it.
fn quoted(text: &str) -> Option<(&str, &str)> {
    let body = text.strip_prefix('"')?;
    let end = body.find('"')?;
    Some((&body[..end], &body[end + 1..]))
}

/// The string value of `name = "..."` in an inline table.
fn field(entry: &str, name: &str) -> String {
    entry
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| k.trim().trim_start_matches('{').trim() == name)
        .and_then(|(_, v)| quoted(v.trim()))
        .map(|(v, _)| v.to_string())
        .unwrap_or_else(|| panic!("no `{name}` in router entry {entry:?}"))
}

fn parse_yaml(name: &str) -> Value {
    let text = repo_file(name);
    let docs = Yaml::load_from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    to_json(
        docs.first()
            .unwrap_or_else(|| panic!("{name}: no document")),
    )
}

/// YAML as JSON; CloudFormation tags (`!Ref`, `!Sub`) keep only their operand, which is all
/// these checks read.
fn to_json(node: &Yaml) -> Value {
    match node {
        Yaml::Value(Scalar::Null) => Value::Null,
        Yaml::Value(Scalar::Boolean(b)) => Value::Bool(*b),
        Yaml::Value(Scalar::Integer(i)) => Value::from(*i),
        Yaml::Value(Scalar::FloatingPoint(f)) => Value::from(f.into_inner()),
        Yaml::Value(Scalar::String(s)) | Yaml::Representation(s, _, _) => {
            Value::String(s.to_string())
        }
        Yaml::Sequence(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::Mapping(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match to_json(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Yaml::Tagged(_, inner) => to_json(inner),
        Yaml::Alias(_) | Yaml::BadValue => panic!("unsupported YAML node {node:?}"),
    }
}

/// One operation of the document.
struct Operation {
    operation_id: Option<String>,
    responses: BTreeSet<String>,
    /// The security requirements in force (the operation's own, else the document's).
    security: Vec<Value>,
}

fn operations(doc: &Value) -> BTreeMap<Route, Operation> {
    let paths = doc["paths"]
        .as_object()
        .expect("openapi.yaml has a `paths` object");
    let mut ops = BTreeMap::new();
    for (path, item) in paths {
        let item = item
            .as_object()
            .unwrap_or_else(|| panic!("path item {path}"));
        for (method, op) in item
            .iter()
            .filter(|(k, _)| HTTP_METHODS.contains(&k.as_str()))
        {
            let responses = op["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path} has no responses"))
                .keys()
                .cloned()
                .collect();
            let security = op
                .get("security")
                .or_else(|| doc.get("security"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let operation = Operation {
                operation_id: op["operationId"].as_str().map(str::to_string),
                responses,
                security,
            };
            ops.insert((method.to_ascii_uppercase(), path.clone()), operation);
        }
    }
    ops
}

/// The routes the deployed API serves without its JWT authorizer.
fn public_in_template() -> BTreeSet<Route> {
    let template = parse_yaml("template.yaml");
    let resources = template["Resources"]
        .as_object()
        .expect("template.yaml has Resources");
    let mut public = BTreeSet::new();
    let mut api_routes = 0;
    for resource in resources.values() {
        let Some(events) = resource["Properties"]["Events"].as_object() else {
            continue;
        };
        for event in events
            .values()
            .filter(|e| e["Type"].as_str() == Some("HttpApi"))
        {
            api_routes += 1;
            let props = &event["Properties"];
            if props["Auth"]["Authorizer"].as_str() == Some("NONE") {
                let method = props["Method"].as_str().expect("HttpApi Method");
                let path = props["Path"].as_str().expect("HttpApi Path");
                public.insert((method.to_ascii_uppercase(), path.to_string()));
            }
        }
    }
    assert!(api_routes > 0, "template.yaml has no HttpApi events");
    public
}

/// `save-community-session` -> `saveCommunitySession`.
fn camel_case(function: &str) -> String {
    let mut words = function.split('-');
    let first = words.next().unwrap_or_default().to_string();
    words.fold(first, |mut out, w| {
        let mut chars = w.chars();
        if let Some(c) = chars.next() {
            out.push(c.to_ascii_uppercase());
            out.push_str(chars.as_str());
        }
        out
    })
}

fn list(routes: &BTreeSet<&Route>) -> String {
    routes
        .iter()
        .map(|(m, p)| format!("{m} {p}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn the_document_describes_exactly_the_routed_operations() {
    let router = router_table();
    let doc = parse_yaml("openapi.yaml");
    let ops = operations(&doc);
    let routed: BTreeSet<&Route> = router.keys().collect();
    let documented: BTreeSet<&Route> = ops.keys().collect();
    let undocumented: BTreeSet<&Route> = routed.difference(&documented).copied().collect();
    let unrouted: BTreeSet<&Route> = documented.difference(&routed).copied().collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routed but not in openapi.yaml: [{}]; in openapi.yaml but not routed: [{}]",
        list(&undocumented),
        list(&unrouted)
    );
    for (route, function) in &router {
        let expected = camel_case(function);
        assert_eq!(
            ops[route].operation_id.as_deref(),
            Some(expected.as_str()),
            "{} {}: operationId should name its function {function}",
            route.0,
            route.1
        );
    }
}

#[test]
fn every_operation_documents_its_500_and_guarded_ones_their_401() {
    let doc = parse_yaml("openapi.yaml");
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("openapi.yaml declares components.securitySchemes");
    let bearer_jwt = |name: &str| {
        schemes.get(name).is_some_and(|s| {
            s["type"] == "http"
                && s["scheme"].as_str().map(str::to_ascii_lowercase).as_deref() == Some("bearer")
                && s["bearerFormat"] == "JWT"
        })
    };
    let public = public_in_template();
    for ((method, path), op) in operations(&doc) {
        let route = format!("{method} {path}");
        assert!(
            op.responses.contains("500"),
            "{route} documents no 500 response"
        );
        // `security: []` (or an empty requirement) means no identity is needed.
        let open = op.security.is_empty()
            || op
                .security
                .iter()
                .any(|r| r.as_object().is_some_and(|o| o.is_empty()));
        let guarded_by_template = !public.contains(&(method.clone(), path.clone()));
        assert_eq!(
            !open,
            guarded_by_template,
            "{route}: openapi.yaml says {}, template.yaml's authorizer says {}",
            if open { "public" } else { "authenticated" },
            if guarded_by_template {
                "authenticated"
            } else {
                "public"
            }
        );
        if open {
            continue;
        }
        for requirement in &op.security {
            let names: Vec<&String> = requirement
                .as_object()
                .map(|o| o.keys().collect())
                .unwrap_or_default();
            assert!(
                !names.is_empty() && names.iter().all(|n| bearer_jwt(n)),
                "{route}: security {requirement} is not the bearer JWT scheme"
            );
        }
        assert!(
            op.responses.contains("401"),
            "{route} needs identity but documents no 401 response"
        );
    }
}

#[test]
fn the_router_reader_reads_every_entry() {
    let cargo = r#"
[workspace.metadata.lambda.watch]
"/not/a/route" = 1

[workspace.metadata.lambda.watch.router]
# a comment
"/a" = [{ method = "GET", function = "get-a" }]
"/b/{id}" = [
  { method = "POST", function = "post-b" },
  { function = "delete-b", method = "delete" },
]

[profile.other]
"/c" = [{ method = "GET", function = "get-c" }]
"#;
    let routes: Vec<(String, String, String)> = read_router(cargo)
        .into_iter()
        .map(|((m, p), f)| (m, p, f))
        .collect();
    let expected = [
        ("DELETE", "/b/{id}", "delete-b"),
        ("GET", "/a", "get-a"),
        ("POST", "/b/{id}", "post-b"),
    ]
    .map(|(m, p, f)| (m.to_string(), p.to_string(), f.to_string()));
    assert_eq!(routes, expected);
}
