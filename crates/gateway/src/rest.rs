//! REST/JSON in front of the gRPC API, transcoded from each RPC's `google.api.http` rule.
//!
//! A request that is not gRPC is matched against the rules of every public RPC (method and
//! path template: `{field}`, `{field=segments/*}`, `*`, `**`, custom verbs), its message built
//! from the JSON body, the path variables and the query parameters (proto3 JSON mapping over
//! the descriptor set that reflection serves), and sent through the gateway's own router as a
//! gRPC call: authentication with the caller's `Authorization` header, rate limits, the
//! message size limit and trace propagation apply as to any gRPC caller. The reply is
//! rendered as proto3 JSON; a failed call as `{"code", "message", "details"}` from its
//! `google.rpc.Status`, with the HTTP status of Google's mapping. Server-streaming RPCs (the
//! event feeds) are answered 501: they are served over gRPC and grpc-web only.

use std::collections::HashMap;
use std::convert::Infallible;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;
use prost::Message;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor,
    SerializeOptions, Value,
};
use serde_json::{Map, Value as Json, json};
use tonic::Code;
use tonic::body::Body;
use tower::ServiceExt;

/// A JSON body may be this many times the largest request message (JSON is wordier than the
/// binary encoding, whose own limit the router enforces after transcoding).
const JSON_SIZE_FACTOR: usize = 4;

/// The HTTP rules of the public RPCs, and the descriptors to transcode their messages.
pub struct Transcoder {
    routes: Vec<HttpRoute>,
    status: MessageDescriptor,
    openapi: Bytes,
}

/// One RPC's HTTP binding.
#[derive(Debug, Clone)]
pub struct HttpRoute {
    pub method: Method,
    pub template: PathTemplate,
    /// `*` (the whole request), a field name, or empty (no body: query parameters).
    pub body: String,
    pub rpc: MethodDescriptor,
    /// `/package.Service/Method`.
    pub grpc_path: String,
}

/// A parsed path template of an HTTP rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    pub segments: Vec<Segment>,
    /// Variables: the field path and the range of `segments` it captures.
    pub variables: Vec<Variable>,
    pub verb: Option<String>,
    /// The template as written in the rule.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    /// `*`: one segment.
    Single,
    /// `**`: the rest of the path (last only).
    Rest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// The field path, e.g. `["watchlist", "name"]`.
    pub field: Vec<String>,
    pub start: usize,
    pub end: usize,
}

impl PathTemplate {
    /// Parses `/v1/{name=cases/*}:assign` and the like.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("path template {text:?}: {why}");
        let rest = text.strip_prefix('/').ok_or_else(|| bad("does not start with /"))?;
        // The verb is a `:name` after the last segment, outside any variable.
        let (path, verb) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains(['/', '}']) => (&rest[..i], Some(rest[i + 1..].to_owned())),
            _ => (rest, None),
        };
        let mut segments = Vec::new();
        let mut variables = Vec::new();
        let mut chars = path.chars();
        let mut current = String::new();
        let mut after_variable = false;
        let push = |segments: &mut Vec<Segment>, s: &str| -> Result<(), String> {
            segments.push(match s {
                "*" => Segment::Single,
                "**" => Segment::Rest,
                "" => return Err(bad("has an empty segment")),
                literal => Segment::Literal(literal.to_owned()),
            });
            Ok(())
        };
        while let Some(c) = chars.next() {
            match c {
                '{' => {
                    let mut inner = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => inner.push(c),
                            None => return Err(bad("has an unclosed variable")),
                        }
                    }
                    let (field, sub) = inner.split_once('=').unwrap_or((&inner, "*"));
                    let start = segments.len();
                    for s in sub.split('/') {
                        push(&mut segments, s)?;
                    }
                    let field = field.split('.').map(str::to_owned).collect();
                    variables.push(Variable { field, start, end: segments.len() });
                    after_variable = true;
                }
                '/' => {
                    if !current.is_empty() {
                        push(&mut segments, &current)?;
                        current.clear();
                    } else if !after_variable {
                        return Err(bad("has an empty segment"));
                    }
                    after_variable = false;
                }
                c => current.push(c),
            }
        }
        if !current.is_empty() {
            push(&mut segments, &current)?;
        }
        if segments.iter().rev().skip(1).any(|s| *s == Segment::Rest) {
            return Err(bad("has ** before its last segment"));
        }
        Ok(Self { segments, variables, verb, text: text.to_owned() })
    }

    /// The captured variables when `path` (already split off its query) matches.
    pub fn matches(&self, path: &str) -> Option<Vec<(Vec<String>, String)>> {
        let rest = path.strip_prefix('/')?;
        let rest = match &self.verb {
            Some(verb) => rest.strip_suffix(verb.as_str())?.strip_suffix(':')?,
            None => rest,
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let mut matched: Vec<usize> = Vec::with_capacity(self.segments.len() + 1);
        let mut i = 0;
        for segment in &self.segments {
            matched.push(i);
            match segment {
                Segment::Literal(literal) => {
                    if parts.get(i).is_none_or(|p| p != literal) {
                        return None;
                    }
                    i += 1;
                }
                Segment::Single => {
                    if parts.get(i).is_none_or(|p| p.is_empty()) {
                        return None;
                    }
                    i += 1;
                }
                Segment::Rest => i = parts.len(),
            }
        }
        if i != parts.len() {
            return None;
        }
        matched.push(i);
        let variables = self
            .variables
            .iter()
            .map(|v| {
                let (from, to) = (matched[v.start], matched[v.end]);
                let decoded: Vec<String> = parts[from..to].iter().map(|p| decode(p)).collect();
                (v.field.clone(), decoded.join("/"))
            })
            .collect();
        Some(variables)
    }

    /// Literal segments first: a more specific template is tried before a looser one.
    fn specificity(&self) -> (bool, usize, usize) {
        let literals = self.segments.iter().filter(|s| matches!(s, Segment::Literal(_))).count();
        (self.verb.is_some(), literals, self.segments.len())
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// The `google.api.http` rule of `method`, if it has one: (HTTP method, path, body).
pub fn http_rule(pool: &DescriptorPool, method: &MethodDescriptor) -> Option<(Method, String, String)> {
    let extension = pool.get_extension_by_name("google.api.http")?;
    let options = method.options();
    if !options.has_extension(&extension) {
        return None;
    }
    let rule = options.get_extension(&extension);
    let Value::Message(rule) = rule.as_ref() else { return None };
    let text = |name: &str| rule.get_field_by_name(name).and_then(|v| v.as_str().map(str::to_owned));
    let body = text("body").unwrap_or_default();
    for (name, verb) in [
        ("get", Method::GET),
        ("put", Method::PUT),
        ("post", Method::POST),
        ("delete", Method::DELETE),
        ("patch", Method::PATCH),
    ] {
        if rule.has_field_by_name(name) {
            return Some((verb, text(name)?, body));
        }
    }
    if rule.has_field_by_name("custom") {
        let custom = rule.get_field_by_name("custom")?;
        let custom = custom.as_message()?;
        let kind = custom.get_field_by_name("kind")?.as_str()?.to_owned();
        let path = custom.get_field_by_name("path")?.as_str()?.to_owned();
        return Some((Method::from_bytes(kind.as_bytes()).ok()?, path, body));
    }
    None
}

impl Transcoder {
    /// The rules of every method of `services` in the encoded descriptor set.
    pub fn new(descriptors: &[u8], services: &[&str]) -> anyhow::Result<Self> {
        let pool = DescriptorPool::decode(descriptors)?;
        let mut routes = Vec::new();
        for name in services {
            let service =
                pool.get_service_by_name(name).ok_or_else(|| anyhow::anyhow!("{name} is not in the descriptors"))?;
            for rpc in service.methods() {
                let Some((method, path, body)) = http_rule(&pool, &rpc) else { continue };
                let template = PathTemplate::parse(&path).map_err(anyhow::Error::msg)?;
                let grpc_path = format!("/{}/{}", service.full_name(), rpc.name());
                routes.push(HttpRoute { method, template, body, rpc, grpc_path });
            }
        }
        routes.sort_by_key(|r| std::cmp::Reverse(r.template.specificity()));
        let status = pool
            .get_message_by_name("google.rpc.Status")
            .ok_or_else(|| anyhow::anyhow!("google.rpc.Status is not in the descriptors"))?;
        let openapi = crate::openapi::document(&routes)?;
        Ok(Self { routes, status, openapi: Bytes::from(serde_json::to_vec(&openapi)?) })
    }

    pub fn routes(&self) -> &[HttpRoute] {
        &self.routes
    }

    /// The OpenAPI document (JSON) served at `GET /openapi.json`.
    pub fn openapi(&self) -> &[u8] {
        &self.openapi
    }

    /// Serves one REST request through `router` (the gateway's gRPC router).
    pub async fn serve<R>(&self, request: http::Request<Body>, router: R, max_message: usize) -> http::Response<Body>
    where
        R: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    {
        let path = request.uri().path();
        if request.method() == Method::GET && path == "/openapi.json" {
            return respond(StatusCode::OK, self.openapi.clone());
        }
        let mut path_matched = false;
        let mut found = None;
        for route in &self.routes {
            if let Some(variables) = route.template.matches(path) {
                path_matched = true;
                if route.method == request.method() {
                    found = Some((route, variables));
                    break;
                }
            }
        }
        let Some((route, variables)) = found else {
            let (status, code) = if path_matched {
                (StatusCode::METHOD_NOT_ALLOWED, Code::Unimplemented)
            } else {
                (StatusCode::NOT_FOUND, Code::NotFound)
            };
            let message = format!("no REST route for {} {path}", request.method());
            return error_response(status, code, &message, Vec::new());
        };
        if route.rpc.is_server_streaming() {
            let message = format!(
                "{} streams its events: call it over gRPC or grpc-web ({})",
                route.rpc.full_name(),
                route.grpc_path
            );
            return error_response(StatusCode::NOT_IMPLEMENTED, Code::Unimplemented, &message, Vec::new());
        }
        let (parts, body) = request.into_parts();
        let body = match http_body_util::Limited::new(body, max_message.saturating_mul(JSON_SIZE_FACTOR))
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                let message = format!("the request body is larger than {} bytes", max_message * JSON_SIZE_FACTOR);
                let info = error_info("MESSAGE_TOO_LARGE");
                return error_response(StatusCode::PAYLOAD_TOO_LARGE, Code::ResourceExhausted, &message, vec![info]);
            }
            Err(e) => {
                return error_response(StatusCode::BAD_REQUEST, Code::InvalidArgument, &e.to_string(), Vec::new());
            }
        };
        let message = match build_request(route, &variables, parts.uri.query().unwrap_or(""), &body) {
            Ok(message) => message,
            Err(BadField { field, description }) => {
                let message = if field.is_empty() { description.clone() } else { format!("{field}: {description}") };
                let details = vec![
                    error_info("INVALID_ARGUMENT"),
                    json!({
                        "@type": "type.googleapis.com/google.rpc.BadRequest",
                        "fieldViolations": [{"field": field, "description": description}],
                    }),
                ];
                return error_response(StatusCode::BAD_REQUEST, Code::InvalidArgument, &message, details);
            }
        };
        let call = grpc_request(route, &parts.headers, message);
        let Ok(response) = router.oneshot(call).await;
        self.reply(route, response).await
    }

    async fn reply(&self, route: &HttpRoute, response: http::Response<Body>) -> http::Response<Body> {
        let (parts, body) = response.into_parts();
        if let Some(status) = tonic::Status::from_header_map(&parts.headers)
            && status.code() != Code::Ok
        {
            return self.status_response(&status);
        }
        let collected = match body.collect().await {
            Ok(collected) => collected,
            Err(status) => return self.status_response(&status),
        };
        let trailers = collected.trailers().cloned();
        let mut data = collected.to_bytes();
        if let Some(status) = trailers.as_ref().and_then(tonic::Status::from_header_map)
            && status.code() != Code::Ok
        {
            return self.status_response(&status);
        }
        if data.len() < 5 || data[0] != 0 {
            return self.status_response(&tonic::Status::internal("the reply is not one uncompressed gRPC message"));
        }
        data.advance(1);
        let len = data.get_u32() as usize;
        if data.len() < len {
            return self.status_response(&tonic::Status::internal("the reply is cut short"));
        }
        let reply = match DynamicMessage::decode(route.rpc.output(), data.slice(..len)) {
            Ok(reply) => reply,
            Err(e) => return self.status_response(&tonic::Status::internal(format!("undecodable reply: {e}"))),
        };
        match to_json(&reply) {
            Ok(json) => respond(StatusCode::OK, json),
            Err(e) => self.status_response(&tonic::Status::internal(format!("unrenderable reply: {e}"))),
        }
    }

    /// `{"code", "message", "details"}` from a status and its `grpc-status-details-bin`.
    fn status_response(&self, status: &tonic::Status) -> http::Response<Body> {
        let http_status = http_status(status.code());
        let from_details = (!status.details().is_empty())
            .then(|| DynamicMessage::decode(self.status.clone(), status.details()).ok())
            .flatten()
            .and_then(|s| to_json(&s).ok())
            .and_then(|b| serde_json::from_slice::<Json>(&b).ok());
        let mut body = from_details.unwrap_or_else(|| json!({}));
        if let Some(object) = body.as_object_mut() {
            object.insert("code".to_owned(), json!(status.code() as i32));
            object.insert("message".to_owned(), json!(status.message()));
            object.entry("details").or_insert_with(|| json!([]));
        }
        respond(http_status, Bytes::from(serde_json::to_vec(&body).unwrap_or_default()))
    }
}

/// Google's mapping of gRPC codes to HTTP statuses (`google/rpc/code.proto`).
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Internal | Code::Unknown | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn error_info(reason: &str) -> Json {
    json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "redress"})
}

fn error_response(status: StatusCode, code: Code, message: &str, details: Vec<Json>) -> http::Response<Body> {
    let body = json!({"code": code as i32, "message": message, "details": details});
    respond(status, Bytes::from(serde_json::to_vec(&body).unwrap_or_default()))
}

fn respond(status: StatusCode, body: Bytes) -> http::Response<Body> {
    let mut response = http::Response::new(Body::new(http_body_util::Full::new(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn to_json(message: &DynamicMessage) -> Result<Bytes, serde_json::Error> {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::new(&mut out);
    message.serialize_with_options(&mut serializer, &SerializeOptions::new())?;
    Ok(Bytes::from(out))
}

/// A request field that could not be read, and why.
#[derive(Debug)]
pub struct BadField {
    pub field: String,
    pub description: String,
}

impl BadField {
    fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self { field: field.into(), description: description.into() }
    }
}

/// The request message of `route` from the JSON body, the path variables and the query.
pub fn build_request(
    route: &HttpRoute,
    variables: &[(Vec<String>, String)],
    query: &str,
    body: &[u8],
) -> Result<DynamicMessage, BadField> {
    let input = route.rpc.input();
    let parsed: Option<Json> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let json = serde_json::from_slice(body).map_err(|e| BadField::new("", format!("malformed JSON body: {e}")))?;
        Some(json)
    };
    let mut root = Map::new();
    match (route.body.as_str(), parsed) {
        (_, None) => {}
        ("*", Some(Json::Object(object))) => root = object,
        ("*", Some(_)) => return Err(BadField::new("", "the request body must be a JSON object")),
        ("", Some(_)) => {
            return Err(BadField::new("", format!("{} {} takes no body", route.method, route.template.text)));
        }
        (field, Some(value)) => {
            root.insert(field.to_owned(), value);
        }
    }
    for (field, value) in variables {
        let (leaf, names) = resolve(&input, field)?;
        insert(&mut root, &names, scalar(&leaf, value), false);
    }
    if route.body != "*" {
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let path: Vec<String> = key.split('.').map(str::to_owned).collect();
            let (leaf, names) = resolve(&input, &path)?;
            if leaf.is_map() || (matches!(leaf.kind(), Kind::Message(_)) && !is_string_like(&leaf)) {
                return Err(BadField::new(key, "is not a scalar field and cannot be given as a query parameter"));
            }
            insert(&mut root, &names, scalar(&leaf, &value), leaf.is_list());
        }
    }
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    let mut track = serde_path_to_error::Track::new();
    let deserializer = serde_path_to_error::Deserializer::new(Json::Object(root), &mut track);
    DynamicMessage::deserialize_with_options(input, deserializer, &options).map_err(|e| {
        let path = track.path().to_string();
        let description = e.to_string();
        // An unknown field is reported at the message holding it: name the field itself.
        let unknown = description.strip_prefix("unrecognized field name '").and_then(|r| r.split_once('\''));
        let field = match (path.as_str(), unknown) {
            (".", Some((name, _))) => name.to_owned(),
            (".", None) => String::new(),
            (path, Some((name, _))) => format!("{path}.{name}"),
            (path, None) => path.to_owned(),
        };
        BadField::new(field, description)
    })
}

/// The field a dotted path names (by proto or JSON name), and the path in JSON names (as a
/// body spells it, so that a path variable and the body fill the same object).
fn resolve(message: &MessageDescriptor, path: &[String]) -> Result<(FieldDescriptor, Vec<String>), BadField> {
    let mut current = message.clone();
    let mut names = Vec::with_capacity(path.len());
    for (i, part) in path.iter().enumerate() {
        let shown = path.join(".");
        let field = current
            .get_field_by_name(part)
            .or_else(|| current.get_field_by_json_name(part))
            .ok_or_else(|| BadField::new(shown.clone(), format!("no such field in {}", current.full_name())))?;
        names.push(field.json_name().to_owned());
        if i + 1 == path.len() {
            return Ok((field, names));
        }
        match field.kind() {
            Kind::Message(next) if !field.is_list() && !field.is_map() => current = next,
            _ => return Err(BadField::new(shown, format!("{part} has no fields"))),
        }
    }
    Err(BadField::new("", "empty field path"))
}

/// Well-known types whose JSON form is a string (a timestamp, a duration, a field mask).
fn is_string_like(field: &FieldDescriptor) -> bool {
    matches!(field.kind(), Kind::Message(m) if matches!(
        m.full_name(),
        "google.protobuf.Timestamp" | "google.protobuf.Duration" | "google.protobuf.FieldMask"
    ))
}

/// A path or query value as the JSON its field takes.
fn scalar(field: &FieldDescriptor, value: &str) -> Json {
    match field.kind() {
        Kind::Bool => match value {
            "true" => Json::Bool(true),
            "false" => Json::Bool(false),
            other => Json::String(other.to_owned()),
        },
        Kind::Enum(_) => value.parse::<i64>().map_or_else(|_| Json::String(value.to_owned()), Json::from),
        Kind::Double | Kind::Float => value
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Json::String(value.to_owned()), Json::Number),
        _ => Json::String(value.to_owned()),
    }
}

fn insert(root: &mut Map<String, Json>, path: &[String], value: Json, repeated: bool) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut current = root;
    for parent in parents {
        let entry = current.entry(parent.clone()).or_insert_with(|| Json::Object(Map::new()));
        if !entry.is_object() {
            *entry = Json::Object(Map::new());
        }
        let Json::Object(next) = entry else { return };
        current = next;
    }
    if repeated {
        match current.entry(last.clone()).or_insert_with(|| Json::Array(Vec::new())) {
            Json::Array(items) => items.push(value),
            other => *other = Json::Array(vec![value]),
        }
    } else {
        current.insert(last.clone(), value);
    }
}

/// Headers a REST caller's request passes on to the gRPC call.
const PASSED_ON: &[header::HeaderName] = &[header::AUTHORIZATION];
const PASSED_ON_BY_NAME: &[&str] = &["traceparent", "tracestate", "grpc-timeout", "x-request-id"];

fn grpc_request(route: &HttpRoute, headers: &http::HeaderMap, message: DynamicMessage) -> http::Request<Body> {
    let encoded = message.encode_to_vec();
    let mut frame = BytesMut::with_capacity(encoded.len() + 5);
    frame.put_u8(0);
    frame.put_u32(u32::try_from(encoded.len()).unwrap_or(u32::MAX));
    frame.put_slice(&encoded);
    let mut request = http::Request::new(Body::new(http_body_util::Full::new(frame.freeze())));
    *request.method_mut() = Method::POST;
    *request.version_mut() = http::Version::HTTP_2;
    *request.uri_mut() = http::Uri::try_from(route.grpc_path.as_str()).unwrap_or_default();
    let out = request.headers_mut();
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    out.insert(header::TE, HeaderValue::from_static("trailers"));
    for name in PASSED_ON {
        if let Some(value) = headers.get(name) {
            out.insert(name.clone(), value.clone());
        }
    }
    for name in PASSED_ON_BY_NAME {
        if let Some(value) = headers.get(*name) {
            out.insert(*name, value.clone());
        }
    }
    request
}

/// Every public RPC without an HTTP rule (none, when the contracts are complete).
pub fn rpcs_without_rule(descriptors: &[u8], services: &[&str]) -> anyhow::Result<Vec<String>> {
    let pool = DescriptorPool::decode(descriptors)?;
    let mut missing = Vec::new();
    for name in services {
        let service =
            pool.get_service_by_name(name).ok_or_else(|| anyhow::anyhow!("{name} is not in the descriptors"))?;
        missing.extend(service.methods().filter(|m| http_rule(&pool, m).is_none()).map(|m| m.full_name().to_owned()));
    }
    Ok(missing)
}

/// Lookup of a route by RPC full name (for tests and the OpenAPI document).
pub fn by_rpc(routes: &[HttpRoute]) -> HashMap<String, &HttpRoute> {
    routes.iter().map(|r| (r.rpc.full_name().to_owned(), r)).collect()
}
