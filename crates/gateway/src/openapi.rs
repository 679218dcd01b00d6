//! The OpenAPI 3.0 document of the REST surface, generated at startup from the same
//! descriptors and HTTP rules the gateway transcodes with: one operation per rule, a schema per
//! message and enum in its proto3 JSON form, a bearer security scheme and the error body.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value as Json, json};

use crate::rest::{HttpRoute, Segment};

const ERROR: &str = "Error";

/// The document for `routes`.
pub fn document(routes: &[HttpRoute]) -> anyhow::Result<Json> {
    let mut paths: BTreeMap<String, Map<String, Json>> = BTreeMap::new();
    let mut wanted: VecDeque<MessageDescriptor> = VecDeque::new();
    for route in routes {
        let (path, mut parameters) = openapi_path(route);
        let input = route.rpc.input();
        let output = route.rpc.output();
        // Always described: the query parameters may refer to its enums.
        wanted.push_back(input.clone());
        let in_path: BTreeSet<String> = route.template.variables.iter().map(|v| v.field.join(".")).collect();
        let mut operation = Map::new();
        let service = route.rpc.parent_service();
        operation.insert("operationId".into(), json!(format!("{}_{}", service.name(), route.rpc.name())));
        operation.insert("tags".into(), json!([service.name()]));
        let description = comments(route.rpc.parent_file().file_descriptor_proto(), route.rpc.path());
        if !description.is_empty() {
            operation.insert("description".into(), json!(description));
        }
        if route.body != "*" {
            query_parameters(&input, "", &in_path, &mut parameters, 0);
        }
        if !parameters.is_empty() {
            operation.insert("parameters".into(), Json::Array(parameters));
        }
        match route.body.as_str() {
            "" => {}
            "*" => {
                operation.insert("requestBody".into(), request_body(schema_ref(&input)));
            }
            field => {
                if let Some(field) = input.get_field_by_name(field) {
                    operation.insert("requestBody".into(), request_body(field_schema(&field, &mut wanted)));
                }
            }
        }
        let mut responses = Map::new();
        if route.rpc.is_server_streaming() {
            responses.insert(
                "501".into(),
                json!({
                    "description": "An event feed: served over gRPC and grpc-web only",
                    "content": {"application/json": {"schema": schema_ref_named(ERROR)}},
                }),
            );
        } else {
            responses.insert(
                "200".into(),
                json!({"description": "OK", "content": {"application/json": {"schema": schema_ref(&output)}}}),
            );
            wanted.push_back(output.clone());
        }
        responses.insert(
            "default".into(),
            json!({
                "description": "A google.rpc.Status: the gRPC code, its message and details (ErrorInfo, BadRequest, ...)",
                "content": {"application/json": {"schema": schema_ref_named(ERROR)}},
            }),
        );
        operation.insert("responses".into(), Json::Object(responses));
        paths.entry(path).or_default().insert(route.method.as_str().to_ascii_lowercase(), Json::Object(operation));
    }
    let mut schemas = Map::new();
    let mut enums = BTreeMap::new();
    while let Some(message) = wanted.pop_front() {
        if schemas.contains_key(message.full_name()) {
            continue;
        }
        let mut properties = Map::new();
        for field in message.fields() {
            properties.insert(field.json_name().to_owned(), field_schema(&field, &mut wanted));
            collect_enum(&field, &mut enums);
        }
        let mut schema = json!({"type": "object", "properties": properties});
        let description = comments(message.parent_file().file_descriptor_proto(), message.path());
        if !description.is_empty() {
            schema["description"] = json!(description);
        }
        schemas.insert(message.full_name().to_owned(), schema);
    }
    for (name, values) in enums {
        schemas.insert(name, json!({"type": "string", "enum": values}));
    }
    schemas.insert(
        ERROR.into(),
        json!({
            "type": "object",
            "description": "google.rpc.Status in its JSON form",
            "properties": {
                "code": {"type": "integer", "format": "int32", "description": "The gRPC status code"},
                "message": {"type": "string"},
                "details": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"@type": {"type": "string"}},
                        "additionalProperties": true,
                    },
                },
            },
        }),
    );
    Ok(json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Redress",
            "version": "v1",
            "description": "REST/JSON transcoding of the Redress gRPC API (google.api.http rules). Every \
                            operation is the gRPC method of its operationId; event feeds stream over gRPC \
                            and grpc-web only.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "security": [{"bearer": []}],
    }))
}

/// The OpenAPI path of a rule and its path parameters: each `*` of a variable becomes a
/// parameter named after the literal before it (`{name=cases/*}` is `/cases/{case}`).
fn openapi_path(route: &HttpRoute) -> (String, Vec<Json>) {
    let template = &route.template;
    let mut path = String::new();
    let mut parameters = Vec::new();
    for (i, segment) in template.segments.iter().enumerate() {
        let variable = template.variables.iter().find(|v| (v.start..v.end).contains(&i));
        path.push('/');
        match (segment, variable) {
            (Segment::Literal(literal), _) => path.push_str(literal),
            (_, Some(variable)) => {
                let field = variable.field.join(".");
                let name = match i.checked_sub(1).and_then(|p| template.segments.get(p)) {
                    Some(Segment::Literal(before)) if i > variable.start => singular(before),
                    _ => variable.field.join("_"),
                };
                let rest = matches!(segment, Segment::Rest);
                path.push_str(&format!("{{{name}}}"));
                parameters.push(json!({
                    "name": name,
                    "in": "path",
                    "required": true,
                    "schema": {"type": "string"},
                    "description": format!("Part of `{field}` ({}){}", variable_pattern(route, variable),
                        if rest { "; may contain /" } else { "" }),
                }));
            }
            (Segment::Single, None) => path.push_str("{segment}"),
            (Segment::Rest, None) => path.push_str("{rest}"),
        }
    }
    if let Some(verb) = &template.verb {
        path.push(':');
        path.push_str(verb);
    }
    (path, parameters)
}

fn variable_pattern(route: &HttpRoute, variable: &crate::rest::Variable) -> String {
    route.template.segments[variable.start..variable.end]
        .iter()
        .map(|s| match s {
            Segment::Literal(l) => l.as_str(),
            Segment::Single => "*",
            Segment::Rest => "**",
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn singular(plural: &str) -> String {
    let base = plural.strip_suffix('s').unwrap_or(plural);
    format!("{base}Id")
}

/// Query parameters for the scalar fields of `message` (nested ones with dots), except those
/// bound to the path.
fn query_parameters(
    message: &MessageDescriptor,
    prefix: &str,
    in_path: &BTreeSet<String>,
    out: &mut Vec<Json>,
    depth: usize,
) {
    for field in message.fields() {
        let name = format!("{prefix}{}", field.name());
        if in_path.contains(&name) || field.is_map() {
            continue;
        }
        match field.kind() {
            Kind::Message(nested) if !is_string_like(&nested) => {
                if depth < 3 && !field.is_list() {
                    query_parameters(&nested, &format!("{name}."), in_path, out, depth + 1);
                }
            }
            _ => {
                let mut unused = VecDeque::new();
                let mut schema = field_schema(&field, &mut unused);
                if field.is_list() {
                    schema = json!({"type": "array", "items": scalar_schema(&field, &mut unused)});
                }
                let mut parameter = json!({"name": name, "in": "query", "schema": schema});
                if field.is_list() {
                    parameter["explode"] = json!(true);
                }
                out.push(parameter);
            }
        }
    }
}

fn request_body(schema: Json) -> Json {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

fn schema_ref(message: &MessageDescriptor) -> Json {
    schema_ref_named(message.full_name())
}

fn schema_ref_named(name: &str) -> Json {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn is_string_like(message: &MessageDescriptor) -> bool {
    matches!(
        message.full_name(),
        "google.protobuf.Timestamp" | "google.protobuf.Duration" | "google.protobuf.FieldMask"
    )
}

/// The schema of a field's value in proto3 JSON (a list or map around its element).
fn field_schema(field: &FieldDescriptor, wanted: &mut VecDeque<MessageDescriptor>) -> Json {
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else { return json!({}) };
        let value = entry.map_entry_value_field();
        return json!({"type": "object", "additionalProperties": scalar_schema(&value, wanted)});
    }
    let element = scalar_schema(field, wanted);
    if field.is_list() { json!({"type": "array", "items": element}) } else { element }
}

fn scalar_schema(field: &FieldDescriptor, wanted: &mut VecDeque<MessageDescriptor>) -> Json {
    match field.kind() {
        Kind::Double => json!({"type": "number", "format": "double"}),
        Kind::Float => json!({"type": "number", "format": "float"}),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => json!({"type": "integer", "format": "int32"}),
        Kind::Uint32 | Kind::Fixed32 => json!({"type": "integer", "format": "int64", "minimum": 0}),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => {
            json!({"type": "string", "format": "int64"})
        }
        Kind::Bool => json!({"type": "boolean"}),
        Kind::String => json!({"type": "string"}),
        Kind::Bytes => json!({"type": "string", "format": "byte"}),
        Kind::Enum(e) => schema_ref_named(e.full_name()),
        Kind::Message(m) => match m.full_name() {
            "google.protobuf.Timestamp" => json!({"type": "string", "format": "date-time"}),
            "google.protobuf.Duration" => json!({"type": "string", "example": "3.5s"}),
            "google.protobuf.FieldMask" => json!({"type": "string", "example": "a.b,c"}),
            "google.protobuf.Any" => json!({
                "type": "object",
                "properties": {"@type": {"type": "string"}},
                "additionalProperties": true,
            }),
            "google.protobuf.Struct" => json!({"type": "object", "additionalProperties": true}),
            "google.protobuf.Value" => json!({}),
            "google.protobuf.Empty" => json!({"type": "object"}),
            "google.protobuf.StringValue" => json!({"type": "string"}),
            "google.protobuf.BoolValue" => json!({"type": "boolean"}),
            "google.protobuf.Int32Value" | "google.protobuf.UInt32Value" => json!({"type": "integer"}),
            "google.protobuf.Int64Value" | "google.protobuf.UInt64Value" => {
                json!({"type": "string", "format": "int64"})
            }
            "google.protobuf.DoubleValue" | "google.protobuf.FloatValue" => json!({"type": "number"}),
            _ => {
                wanted.push_back(m.clone());
                schema_ref(&m)
            }
        },
    }
}

fn collect_enum(field: &FieldDescriptor, enums: &mut BTreeMap<String, Vec<String>>) {
    let kind = if field.is_map() {
        match field.kind() {
            Kind::Message(entry) => entry.map_entry_value_field().kind(),
            other => other,
        }
    } else {
        field.kind()
    };
    if let Kind::Enum(e) = kind {
        enums.entry(e.full_name().to_owned()).or_insert_with(|| e.values().map(|v| v.name().to_owned()).collect());
    }
}

/// The leading comments of the element at `path` of a file, if its source info was kept.
fn comments(file: &prost_types::FileDescriptorProto, path: &[i32]) -> String {
    let Some(info) = &file.source_code_info else { return String::new() };
    info.location
        .iter()
        .find(|l| l.path == path)
        .and_then(|l| l.leading_comments.as_deref())
        .map(|c| c.lines().map(str::trim).collect::<Vec<_>>().join(" ").trim().to_owned())
        .unwrap_or_default()
}
