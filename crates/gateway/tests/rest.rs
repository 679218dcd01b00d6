//! The REST surface as the contracts define it: every public RPC has an HTTP rule, the path
//! templates match as `google.api.http` says, request messages are built from path, query
//! and body, and the OpenAPI document is valid with every reference resolved.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use http::Method;
use prost_reflect::{DescriptorPool, DynamicMessage, Value};
use redress_gateway::public_services;
use redress_gateway::rest::{PathTemplate, Transcoder, build_request, rpcs_without_rule};
use redress_proto::FILE_DESCRIPTOR_SET;

fn transcoder() -> Transcoder {
    Transcoder::new(FILE_DESCRIPTOR_SET, &public_services()).unwrap()
}

#[test]
fn every_public_rpc_has_an_http_rule_in_the_served_descriptors() {
    let missing = rpcs_without_rule(FILE_DESCRIPTOR_SET, &public_services()).unwrap();
    assert!(missing.is_empty(), "public RPCs without a google.api.http rule: {missing:?}");
    let pool = DescriptorPool::decode(FILE_DESCRIPTOR_SET).unwrap();
    let rpcs: usize = public_services().iter().map(|s| pool.get_service_by_name(s).unwrap().methods().len()).sum();
    assert_eq!(transcoder().routes().len(), rpcs);
    // No two rules of the same method share a template.
    let mut seen = BTreeSet::new();
    for route in transcoder().routes() {
        assert!(seen.insert((route.method.to_string(), route.template.text.clone())), "{} twice", route.template.text);
    }
}

#[test]
fn path_templates_match_variables_wildcards_and_verbs() {
    let assign = PathTemplate::parse("/v1/{name=cases/*}:assign").unwrap();
    let name = vec!["name".to_owned()];
    assert_eq!(assign.matches("/v1/cases/c1:assign"), Some(vec![(name.clone(), "cases/c1".to_owned())]));
    assert_eq!(assign.matches("/v1/cases/c1"), None);
    assert_eq!(assign.matches("/v1/cases/c1:close"), None);
    assert_eq!(assign.matches("/v1/cases/a/b:assign"), None);
    assert_eq!(assign.matches("/v1/incidents/c1:assign"), None);

    let nested = PathTemplate::parse("/v1/{watchlist.name=watchlists/*}").unwrap();
    let field = vec!["watchlist".to_owned(), "name".to_owned()];
    assert_eq!(nested.matches("/v1/watchlists/w%201"), Some(vec![(field, "watchlists/w 1".to_owned())]));

    let plain = PathTemplate::parse("/v1/things/{id}/parts/*").unwrap();
    assert_eq!(plain.matches("/v1/things/t1/parts/p"), Some(vec![(vec!["id".to_owned()], "t1".to_owned())]));
    assert_eq!(plain.matches("/v1/things//parts/p"), None);

    let rest = PathTemplate::parse("/v1/{path=files/**}:get").unwrap();
    assert_eq!(rest.matches("/v1/files/a/b/c:get"), Some(vec![(vec!["path".to_owned()], "files/a/b/c".to_owned())]));

    assert!(PathTemplate::parse("v1/x").is_err());
    assert!(PathTemplate::parse("/v1/**/x").is_err());
    assert!(PathTemplate::parse("/v1//x").is_err());
}

fn route(rpc: &str) -> redress_gateway::rest::HttpRoute {
    transcoder().routes().iter().find(|r| r.rpc.full_name() == rpc).unwrap().clone()
}

fn field(message: &DynamicMessage, path: &str) -> Value {
    let mut current = message.clone();
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let value = current.get_field_by_name(part).unwrap().into_owned();
        if parts.peek().is_none() {
            return value;
        }
        current = value.as_message().unwrap().clone();
    }
    unreachable!()
}

#[test]
fn a_request_is_built_from_path_query_and_body() {
    let search = route("redress.knowledge.v1.KnowledgeService.SearchArticles");
    assert_eq!(search.method, Method::GET);
    let variables = search.template.matches("/v1/articles:search").unwrap();
    let query = "query=%E5%B9%B4%E8%B4%B9&kinds=ARTICLE_KIND_FAQ&kinds=2&codes.businessTypes=B01&pageSize=5";
    let message = build_request(&search, &variables, query, b"").unwrap();
    assert_eq!(field(&message, "query"), Value::String("年费".to_owned()));
    assert_eq!(field(&message, "kinds"), Value::List(vec![Value::EnumNumber(1), Value::EnumNumber(2)]));
    assert_eq!(field(&message, "codes.business_types"), Value::List(vec![Value::String("B01".to_owned())]));
    assert_eq!(field(&message, "page_size"), Value::I32(5));

    let assign = route("redress.case.v1.CaseService.AssignCase");
    let variables = assign.template.matches("/v1/cases/c1:assign").unwrap();
    let body = br#"{"assignee": "user:li", "requestId": "r1"}"#;
    let message = build_request(&assign, &variables, "", body).unwrap();
    assert_eq!(field(&message, "name"), Value::String("cases/c1".to_owned()));
    assert_eq!(field(&message, "assignee"), Value::String("user:li".to_owned()));
    assert_eq!(field(&message, "request_id"), Value::String("r1".to_owned()));

    let update = route("redress.escalation.v1.EscalationService.UpdateWatchlist");
    let variables = update.template.matches("/v1/watchlists/w1").unwrap();
    let message = build_request(&update, &variables, "", br#"{"watchlist": {"keywords": ["x"]}}"#).unwrap();
    assert_eq!(field(&message, "watchlist.name"), Value::String("watchlists/w1".to_owned()));
}

#[test]
fn a_bad_field_is_named() {
    let submit = route("redress.intake.v1.IntakeService.SubmitComplaint");
    let variables = submit.template.matches("/v1/complaints").unwrap();
    let bad = build_request(&submit, &variables, "", br#"{"complaint": {"colour": "red"}}"#).unwrap_err();
    assert_eq!(bad.field, "complaint.colour", "{bad:?}");
    assert!(bad.description.contains("colour"), "{bad:?}");
    let bad = build_request(&submit, &variables, "", br#"{"complaint": {"channel": 1.5}}"#).unwrap_err();
    assert_eq!(bad.field, "complaint.channel", "{bad:?}");
    let bad = build_request(&submit, &variables, "", br#"{"complaint": "#).unwrap_err();
    assert!(bad.description.contains("malformed JSON"), "{bad:?}");

    let list = route("redress.case.v1.CaseService.ListCases");
    let variables = list.template.matches("/v1/cases").unwrap();
    let bad = build_request(&list, &variables, "colour=red", b"").unwrap_err();
    assert_eq!(bad.field, "colour");
    let bad = build_request(&list, &variables, "pageSize=many", b"").unwrap_err();
    assert_eq!(bad.field, "pageSize", "{bad:?}");
}

/// Every `$ref` string anywhere in `value`.
fn refs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", serde_json::Value::String(target)) => out.push(target.clone()),
                    _ => refs(value, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn the_openapi_document_is_valid_and_has_an_operation_per_rule() {
    let transcoder = transcoder();
    let json: serde_json::Value = serde_json::from_slice(transcoder.openapi()).unwrap();
    let document: openapiv3::OpenAPI = serde_json::from_value(json.clone()).unwrap();
    assert!(document.openapi.starts_with("3.0"));
    let schemas = &document.components.as_ref().unwrap().schemas;
    let mut all = Vec::new();
    refs(&json, &mut all);
    assert!(!all.is_empty());
    for target in &all {
        let name = target.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("{target}"));
        assert!(schemas.contains_key(name), "{target} does not resolve");
    }
    assert!(document.components.as_ref().unwrap().security_schemes.contains_key("bearer"));
    let mut operations = BTreeSet::new();
    for (_, item) in document.paths.iter() {
        let item = item.as_item().unwrap();
        for (_, operation) in item.iter() {
            operations.insert(operation.operation_id.clone().unwrap());
        }
    }
    for route in transcoder.routes() {
        let id = format!("{}_{}", route.rpc.parent_service().name(), route.rpc.name());
        assert!(operations.contains(&id), "no operation {id}");
    }
    // Path parameters are declared for every placeholder.
    let assign = document.paths.paths.get("/v1/cases/{caseId}:assign").unwrap().as_item().unwrap();
    assert_eq!(assign.post.as_ref().unwrap().parameters.len(), 1);
    // Proto3 JSON names and types.
    let complaint = json["components"]["schemas"]["redress.intake.v1.Complaint"]["properties"].clone();
    assert_eq!(complaint["orgUnit"]["type"], "string");
    assert_eq!(complaint["receiveTime"]["format"], "date-time");
}
