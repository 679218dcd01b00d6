//! The authorisation matrix of docs/authorization-matrix.md, checked against the running suite:
//! every public RPC of every service (enumerated from the compiled descriptors, so a new RPC
//! fails this test until the table lists it) is called through the gateway by each default
//! role, from the unit the request names, from a branch below it and from another institution,
//! and must end PERMISSION_DENIED exactly where the table says so. The requests are minimal
//! (every field empty but the units they name): INVALID_ARGUMENT, NOT_FOUND and the like mean
//! the call was authorised and then refused for its content.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use prost::bytes::{Buf, BufMut};
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MethodDescriptor, Value};
use redress_integration_tests::{HEAD_OFFICE, Sandbox};
use redress_platform::Principal;
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

const MATRIX: &str = include_str!("../../docs/authorization-matrix.md");

/// The default roles, in the table's column order.
const ROLES: [&str; 8] =
    ["handler", "supervisor", "department_head", "senior_manager", "compliance", "auditor", "integration", "admin"];

/// Where the caller stands, seen from the unit its requests name ([`HEAD_OFFICE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    /// The caller's own unit.
    Own,
    /// The caller's parent unit: the caller works at a branch below it.
    Parent,
    /// Another institution.
    Other,
}

const SCOPES: [Scope; 3] = [Scope::Own, Scope::Parent, Scope::Other];

impl Scope {
    fn caller_unit(self) -> &'static str {
        match self {
            Scope::Own => HEAD_OFFICE,
            Scope::Parent => "institutions/demo-bank/branches/matrix",
            Scope::Other => "institutions/other-bank",
        }
    }
}

/// Request fields that name the unit a call acts in or reads; set to [`HEAD_OFFICE`].
const UNIT_FIELDS: [&str; 4] = ["org_unit", "institution", "parent", "unit"];

/// A member of staff of the unit the requests name holding no role (so no permission): refused
/// every RPC whose table row needs one, whatever its request holds, so that no service looks
/// at the request before it checks the caller's permission.
const NO_ROLE_TOKEN: &str = "authorization-matrix-no-role";

fn no_role() -> Principal {
    Principal { roles: Vec::new(), permissions: Vec::new(), ..principal("handler", Scope::Own) }
}

fn token(role: &str, scope: Scope) -> String {
    format!("authorization-matrix-{role}-{scope:?}")
}

/// A member of staff holding one default role, with the permissions the gateway gives it.
fn principal(role: &str, scope: Scope) -> Principal {
    let roles = redress_gateway::default_roles();
    Principal {
        subject: format!("user:matrix-{role}-{scope:?}").to_lowercase(),
        roles: vec![role.to_owned()],
        org_unit: scope.caller_unit().to_owned(),
        department: "cards".to_owned(),
        permissions: roles[role].clone(),
        staff_id: String::new(),
    }
}

/// What the table says of one RPC.
#[derive(Debug)]
struct Row {
    permission: String,
    /// Whether each role (in [`ROLES`] order) is allowed from its own unit.
    allowed: [bool; 8],
    /// From the parent unit and another institution: `None` as from its own unit, `Some(false)`
    /// PERMISSION_DENIED for every role.
    parent: Option<bool>,
    other: Option<bool>,
}

fn cell(text: &str, rpc: &str, column: &str) -> bool {
    match text {
        "✓" => true,
        "✗" => false,
        _ => panic!("{rpc}: column {column} must be ✓ or ✗, not {text:?}"),
    }
}

fn scope_cell(text: &str, rpc: &str, column: &str) -> Option<bool> {
    match text {
        "as own" => None,
        "✗" => Some(false),
        _ => panic!("{rpc}: column {column} must be `as own` or ✗, not {text:?}"),
    }
}

/// The rows of the table between the markers, by `package.Service/Method`.
fn parse_matrix() -> BTreeMap<String, Row> {
    let start = MATRIX.find("<!-- matrix:begin -->").expect("matrix begin marker");
    let end = MATRIX.find("<!-- matrix:end -->").expect("matrix end marker");
    let mut rows = BTreeMap::new();
    let header: Vec<&str> =
        ["RPC", "permission"].into_iter().chain(ROLES).chain(["parent unit", "other institution"]).collect();
    for line in MATRIX[start..end].lines().map(str::trim).filter(|l| l.starts_with('|')) {
        // `\|` is a `|` inside a cell (alternatives of the permission column).
        let line = line.replace("\\|", "\u{1}");
        let owned: Vec<String> = line.trim_matches('|').split('|').map(|c| c.trim().replace('\u{1}', "|")).collect();
        let cells: Vec<&str> = owned.iter().map(String::as_str).collect();
        // Each service's table starts with the same header.
        if cells.first() == Some(&"RPC") {
            assert_eq!(cells, header, "a table's header");
            continue;
        }
        if cells.iter().all(|c| c.chars().all(|ch| ch == '-' || ch == ':')) {
            continue;
        }
        assert_eq!(cells.len(), 12, "a row of 12 cells: {line}");
        let rpc = cells[0].trim_matches('`').to_owned();
        let mut allowed = [false; 8];
        for (i, role) in ROLES.iter().enumerate() {
            allowed[i] = cell(cells[2 + i], &rpc, role);
        }
        let row = Row {
            permission: cells[1].replace('`', ""),
            allowed,
            parent: scope_cell(cells[10], &rpc, "parent unit"),
            other: scope_cell(cells[11], &rpc, "other institution"),
        };
        assert!(rows.insert(rpc.clone(), row).is_none(), "{rpc} is listed twice");
    }
    rows
}

/// Whether `permissions` satisfy a permission column: `any` (any authenticated caller), or
/// alternatives separated by `|`, each permissions joined by `+`; `… @ /` needs a caller of
/// the whole platform besides, which none of the callers here is (they work at an institution
/// or below).
fn satisfies(expression: &str, permissions: &[String]) -> bool {
    if expression == "any" {
        return true;
    }
    // Only for a caller of the whole platform (`/`), which no caller here is.
    if expression.ends_with("@ /") {
        return false;
    }
    expression
        .split('|')
        .any(|alternative| alternative.split('+').map(str::trim).all(|needed| permissions.iter().any(|p| p == needed)))
}

/// Every RPC of every Redress service in the compiled descriptors.
fn public_rpcs() -> Vec<MethodDescriptor> {
    let pool = DescriptorPool::decode(redress_proto::FILE_DESCRIPTOR_SET).unwrap();
    pool.services()
        .filter(|s| s.package_name().starts_with("redress."))
        .flat_map(|s| s.methods().collect::<Vec<_>>())
        .collect()
}

fn rpc_name(method: &MethodDescriptor) -> String {
    format!("{}/{}", method.parent_service().full_name(), method.name())
}

/// A request with every field empty but the units it names.
fn minimal_request(method: &MethodDescriptor) -> Vec<u8> {
    let input = method.input();
    let mut message = DynamicMessage::new(input.clone());
    for field in input.fields() {
        if UNIT_FIELDS.contains(&field.name()) && matches!(field.kind(), Kind::String) && !field.is_list() {
            message.set_field(&field, Value::String(HEAD_OFFICE.to_owned()));
        }
    }
    prost::Message::encode_to_vec(&message)
}

/// Messages passed through as their encoded bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        Ok(Some(bytes.to_vec()))
    }
}

/// The status one call through the gateway ends with (OK for a stream that opened).
async fn call(channel: &Channel, method: &MethodDescriptor, body: Vec<u8>, token: &str) -> Code {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let path = PathAndQuery::try_from(format!("/{}", rpc_name(method))).unwrap();
    let mut request = tonic::Request::new(body);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request.set_timeout(Duration::from_secs(30));
    let outcome = if method.is_server_streaming() {
        grpc.server_streaming(request, path, Raw).await.map(|_| ())
    } else {
        grpc.unary(request, path, Raw).await.map(|_| ())
    };
    outcome.err().map_or(Code::Ok, |status| status.code())
}

/// Codes that say the caller was let in and the request itself was answered or refused.
fn authorised(code: Code) -> bool {
    matches!(
        code,
        Code::Ok
            | Code::InvalidArgument
            | Code::NotFound
            | Code::FailedPrecondition
            | Code::AlreadyExists
            | Code::Aborted
            | Code::OutOfRange
    )
}

fn mark(allowed: bool) -> &'static str {
    if allowed { "✓" } else { "✗" }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_allows_exactly_the_roles_and_units_the_matrix_documents() {
    let matrix = parse_matrix();
    let rpcs = public_rpcs();
    assert!(rpcs.len() > 100, "the descriptors hold every service ({} RPCs found)", rpcs.len());

    // The table agrees with the gateway's roles: each role's cell is what its permissions give.
    let roles = redress_gateway::default_roles();
    let mut problems = Vec::new();
    for (rpc, row) in &matrix {
        for (i, role) in ROLES.iter().enumerate() {
            let by_permission = satisfies(&row.permission, &roles[*role]);
            if by_permission != row.allowed[i] {
                problems.push(format!(
                    "{rpc}: the table says {} for {role}, its permission `{}` gives {}",
                    mark(row.allowed[i]),
                    row.permission,
                    mark(by_permission)
                ));
            }
        }
    }
    let names: BTreeSet<String> = rpcs.iter().map(rpc_name).collect();
    for listed in matrix.keys().filter(|r| !names.contains(*r)) {
        problems.push(format!("{listed} is in the table but is no RPC of the descriptors"));
    }

    let tokens: Vec<(String, Principal)> = ROLES
        .iter()
        .flat_map(|role| SCOPES.iter().map(move |scope| (token(role, *scope), principal(role, *scope))))
        .chain(std::iter::once((NO_ROLE_TOKEN.to_owned(), no_role())))
        .collect();
    let data_dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start_configured(data_dir, |o| o.extra_dev_tokens.extend(tokens)).await.unwrap();

    for method in &rpcs {
        let rpc = rpc_name(method);
        let body = minimal_request(method);
        let mut observed: BTreeMap<(Scope, &str), Code> = BTreeMap::new();
        for role in ROLES {
            for scope in SCOPES {
                let code = call(&sandbox.channel, method, body.clone(), &token(role, scope)).await;
                observed.insert((scope, role), code);
            }
        }
        let without_role = call(&sandbox.channel, method, body.clone(), NO_ROLE_TOKEN).await;
        let Some(row) = matrix.get(&rpc) else {
            let own: Vec<String> = ROLES.iter().map(|r| format!("{:?}", observed[&(Scope::Own, *r)])).collect();
            problems
                .push(format!("{rpc} is not in docs/authorization-matrix.md (observed from its own unit: {own:?})"));
            continue;
        };
        let needs_none = satisfies(&row.permission, &[]);
        if needs_none != authorised(without_role) || (!needs_none && without_role != Code::PermissionDenied) {
            problems.push(format!(
                "{rpc}: a caller without any role expected {}, got {without_role:?}",
                if needs_none { "authorised" } else { "PERMISSION_DENIED" }
            ));
        }
        for (i, role) in ROLES.iter().enumerate() {
            for scope in SCOPES {
                let expected = match scope {
                    Scope::Own => row.allowed[i],
                    Scope::Parent => row.parent.unwrap_or(row.allowed[i]),
                    Scope::Other => row.other.unwrap_or(row.allowed[i]),
                };
                let code = observed[&(scope, *role)];
                let fine = if expected { authorised(code) } else { code == Code::PermissionDenied };
                if !fine {
                    problems.push(format!(
                        "{rpc}: {role} from {scope:?} unit expected {}, got {code:?}",
                        if expected { "authorised" } else { "PERMISSION_DENIED" }
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}
