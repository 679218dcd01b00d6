//! The verified caller. The gateway authenticates a caller and forwards a short-lived principal
//! token (a JWT signed with the suite's internal key) in the `x-redress-principal` metadata
//! entry; every service verifies that signature before it serves a call. Services calling each
//! other sign their own service principal with the same key.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::{Request, Status};

use crate::ServiceError;

/// Metadata key carrying the signed principal between the gateway and services.
pub const PRINCIPAL_METADATA_KEY: &str = "x-redress-principal";
const ISSUER: &str = "redress-gateway";
const AUDIENCE: &str = "redress-services";
/// Lifetime of a principal token; the gateway re-signs well before expiry.
pub const PRINCIPAL_TOKEN_TTL: Duration = Duration::from_secs(300);

/// A permission a principal may hold. Strings are stable and appear in tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    ComplaintsCreate,
    ComplaintsRead,
    /// Override a complaint's automatic classification and grade.
    ComplaintsClassify,
    CasesRead,
    /// Change cases: assign, transfer, transition, propose, decide, ...
    CasesWrite,
    /// Approve resolutions whose compensation exceeds the proposer's authority limit.
    CasesApprove,
    /// Extend the regulatory decision clock to 30 days (complex cases, D-SLA-2).
    CasesExtend,
    /// Extend it to 60 days (higher-level branch or head-office senior manager, D-SLA-2).
    CasesExtendSpecial,
    EventsRead,
    /// List and replay the events a consumer passed over (dead letters).
    EventsAdmin,
    /// Read personal information in clear (D-PII-4).
    PiiRead,
    /// Export, correct and erase a person's information (data-subject rights).
    PiiManage,
    /// Reload the working-day calendars and recompute provisional deadlines (D-SLA-6).
    CalendarsAdmin,
    /// Read incidents, statements, escalations, alerts and watchlists (D-ESC).
    IncidentsRead,
    /// Work incidents: working groups, timelines, drafts, escalations, watchlists, flags.
    IncidentsWrite,
    /// Decide on incidents: declare them, approve statements and malicious-complaint flags.
    IncidentsApprove,
    /// Report mentions from a public-opinion monitoring system (D-ESC-3).
    MentionsReport,
    /// Maintain the VIP register from an institution's CRM (D-ESC-4).
    VipsManage,
    /// Read published knowledge-base articles, search them, lint replies (D-KB).
    KnowledgeRead,
    /// Write knowledge-base articles: drafts, new versions, imports, retirement.
    KnowledgeWrite,
    /// Review knowledge-base versions: publish them or return them to their authors.
    KnowledgeReview,
}

impl Permission {
    pub const ALL: [Permission; 21] = [
        Self::ComplaintsCreate,
        Self::ComplaintsRead,
        Self::ComplaintsClassify,
        Self::CasesRead,
        Self::CasesWrite,
        Self::CasesApprove,
        Self::CasesExtend,
        Self::CasesExtendSpecial,
        Self::EventsRead,
        Self::EventsAdmin,
        Self::PiiRead,
        Self::PiiManage,
        Self::CalendarsAdmin,
        Self::IncidentsRead,
        Self::IncidentsWrite,
        Self::IncidentsApprove,
        Self::MentionsReport,
        Self::VipsManage,
        Self::KnowledgeRead,
        Self::KnowledgeWrite,
        Self::KnowledgeReview,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ComplaintsCreate => "complaints.create",
            Self::ComplaintsRead => "complaints.read",
            Self::ComplaintsClassify => "complaints.classify",
            Self::CasesRead => "cases.read",
            Self::CasesWrite => "cases.write",
            Self::CasesApprove => "cases.approve",
            Self::CasesExtend => "cases.extend",
            Self::CasesExtendSpecial => "cases.extend.special",
            Self::EventsRead => "events.read",
            Self::EventsAdmin => "events.admin",
            Self::PiiRead => "pii.read",
            Self::PiiManage => "pii.manage",
            Self::CalendarsAdmin => "calendars.admin",
            Self::IncidentsRead => "incidents.read",
            Self::IncidentsWrite => "incidents.write",
            Self::IncidentsApprove => "incidents.approve",
            Self::MentionsReport => "mentions.report",
            Self::VipsManage => "vips.manage",
            Self::KnowledgeRead => "knowledge.read",
            Self::KnowledgeWrite => "knowledge.write",
            Self::KnowledgeReview => "knowledge.review",
        }
    }
}

/// Who is calling, as verified: subject, roles, organisation unit, permissions and, for a
/// member of staff, their employee id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub subject: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub org_unit: String,
    #[serde(default)]
    pub permissions: Vec<String>,
    /// The employee id (工号) of the person behind the subject, when the caller is a member of
    /// staff: the namespace complaints name staff in, so conflict-of-interest checks (回避)
    /// compare like with like. Empty for systems and services.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub staff_id: String,
}

/// The organisation unit that stands for the whole platform (every institution).
pub use crate::names::ROOT_ORG_UNIT;
/// Subjects of service principals start with this.
pub const SERVICE_SUBJECT_PREFIX: &str = "service:";
/// The role of service principals.
pub const SERVICE_ROLE: &str = "service";

impl Principal {
    /// Whether a resource owned by `org_unit` lies within this principal's organisation unit
    /// (属地管理): the same unit or one below it (`institutions/acme` covers
    /// `institutions/acme/branches/sh`, not `institutions/acme-2`). A principal without an
    /// organisation unit covers nothing.
    pub fn covers(&self, org_unit: &str) -> bool {
        let own = self.org_unit.as_str();
        own == ROOT_ORG_UNIT
            || (!own.is_empty()
                && (org_unit == own || org_unit.strip_prefix(own).is_some_and(|rest| rest.starts_with('/'))))
    }

    /// A service of the suite acting on its own behalf (signed with the internal key; the
    /// gateway never lets a caller claim it).
    pub fn is_service(&self) -> bool {
        self.subject.starts_with(SERVICE_SUBJECT_PREFIX) && self.roles.iter().any(|r| r == SERVICE_ROLE)
    }

    /// The organisation unit lists are restricted to, or `None` for the whole platform.
    pub fn scope(&self) -> Option<String> {
        (self.org_unit != ROOT_ORG_UNIT).then(|| self.org_unit.clone())
    }

    pub fn has(&self, permission: Permission) -> bool {
        self.permissions.iter().any(|p| p == permission.as_str())
    }

    pub fn require(&self, permission: Permission) -> Result<(), ServiceError> {
        if self.has(permission) {
            Ok(())
        } else {
            Err(ServiceError::PermissionDenied(format!("the {} permission is required", permission.as_str())))
        }
    }

    /// The identity a service uses for its own calls to other services.
    pub fn service(name: &str, permissions: &[Permission]) -> Self {
        Self {
            subject: format!("{SERVICE_SUBJECT_PREFIX}{name}"),
            roles: vec![SERVICE_ROLE.to_owned()],
            org_unit: String::new(),
            permissions: permissions.iter().map(|p| p.as_str().to_owned()).collect(),
            staff_id: String::new(),
        }
    }

    /// The principal a handler was called with, as placed by [`InternalKey::interceptor`].
    pub fn of<T>(request: &Request<T>) -> Result<Arc<Principal>, ServiceError> {
        request
            .extensions()
            .get::<Arc<Principal>>()
            .cloned()
            .ok_or_else(|| ServiceError::Unauthenticated("no verified principal".to_owned()))
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    exp: u64,
    iat: u64,
    #[serde(flatten)]
    principal: Principal,
}

/// The suite's internal signing key (HMAC-SHA256), shared by the gateway and services.
#[derive(Clone)]
pub struct InternalKey(Arc<KeyPair>);

struct KeyPair {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Tokens already verified, with their principal and expiry: the gateway re-signs a
    /// caller's principal only every few minutes, so most calls carry a token seen before.
    verified: std::sync::RwLock<std::collections::HashMap<Box<str>, Verified>>,
}

/// A verified principal and its token's expiry (unix seconds).
type Verified = (Arc<Principal>, u64);

/// Verified tokens kept at most; past it the cache starts afresh.
const VERIFIED_CACHE_LIMIT: usize = 10_000;

impl std::fmt::Debug for InternalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InternalKey(<redacted>)")
    }
}

impl InternalKey {
    /// A key from secret bytes; at least 32 bytes are required.
    pub fn new(secret: &[u8]) -> anyhow::Result<Self> {
        anyhow::ensure!(secret.len() >= 32, "internal key must be at least 32 bytes");
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = 5;
        Ok(Self(Arc::new(KeyPair {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            verified: std::sync::RwLock::default(),
        })))
    }

    /// A fresh random key, for the embedded suite where every service shares the process.
    pub fn generate() -> Self {
        let bytes: [u8; 32] = rand::random();
        // 32 random bytes always satisfy `new`.
        Self::new(&bytes).unwrap_or_else(|_| unreachable!("32-byte key"))
    }

    /// Signs `principal` for [`PRINCIPAL_TOKEN_TTL`]; returns the token and its expiry (unix s).
    pub fn sign(&self, principal: &Principal) -> anyhow::Result<(String, u64)> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let exp = now + PRINCIPAL_TOKEN_TTL.as_secs();
        let claims =
            Claims { iss: ISSUER.to_owned(), aud: AUDIENCE.to_owned(), exp, iat: now, principal: principal.clone() };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.0.encoding)?;
        Ok((token, exp))
    }

    pub fn verify(&self, token: &str) -> Result<Arc<Principal>, ServiceError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(anyhow::Error::from)?.as_secs();
        if let Some((principal, exp)) = self.0.verified.read().unwrap_or_else(|p| p.into_inner()).get(token)
            && *exp > now
        {
            return Ok(principal.clone());
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.0.decoding, &self.0.validation)
            .map_err(|e| ServiceError::Unauthenticated(format!("invalid principal token: {e}")))?
            .claims;
        let principal = Arc::new(claims.principal);
        let mut verified = self.0.verified.write().unwrap_or_else(|p| p.into_inner());
        if verified.len() >= VERIFIED_CACHE_LIMIT {
            verified.clear();
        }
        verified.insert(token.into(), (principal.clone(), claims.exp));
        Ok(principal)
    }

    /// Verifies the forwarded principal of a request and places it in the request extensions.
    pub fn authenticate<T>(&self, mut request: Request<T>) -> Result<Request<T>, Status> {
        let token = request
            .metadata()
            .get(PRINCIPAL_METADATA_KEY)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Status::from(ServiceError::Unauthenticated("missing principal".to_owned())))?;
        let principal = self.verify(token)?;
        request.extensions_mut().insert(principal);
        Ok(request)
    }

    /// A tonic interceptor running [`InternalKey::authenticate`].
    pub fn interceptor(&self) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone + use<> {
        let key = self.clone();
        move |request| key.authenticate(request)
    }
}

/// A signed principal as metadata value, with its expiry (unix seconds).
type SignedToken = (tonic::metadata::MetadataValue<tonic::metadata::Ascii>, u64);

/// Adds a service's own signed principal to its outgoing calls, re-signing before expiry.
#[derive(Clone)]
pub struct ServiceCredentials {
    key: InternalKey,
    principal: Principal,
    cached: Arc<std::sync::Mutex<Option<SignedToken>>>,
}

impl ServiceCredentials {
    pub fn new(key: InternalKey, principal: Principal) -> Self {
        Self { key, principal, cached: Arc::default() }
    }

    pub fn apply<T>(&self, request: &mut Request<T>) -> Result<(), ServiceError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(anyhow::Error::from)?.as_secs();
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        let value = match cached.as_ref() {
            Some((value, exp)) if *exp > now + 60 => value.clone(),
            _ => {
                let (token, exp) = self.key.sign(&self.principal)?;
                let value = token.parse().map_err(anyhow::Error::from)?;
                *cached = Some((Clone::clone(&value), exp));
                value
            }
        };
        request.metadata_mut().insert(PRINCIPAL_METADATA_KEY, value);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn principal() -> Principal {
        Principal {
            subject: "user:li".to_owned(),
            roles: vec!["handler".to_owned()],
            org_unit: "institutions/acme".to_owned(),
            permissions: vec!["complaints.read".to_owned()],
            staff_id: String::new(),
        }
    }

    #[test]
    fn signed_principal_round_trips_and_other_keys_are_refused() {
        let key = InternalKey::generate();
        let (token, _) = key.sign(&principal()).unwrap();
        assert_eq!(*key.verify(&token).unwrap(), principal());
        // A second verification is answered from the cache, and still equal.
        assert_eq!(*key.verify(&token).unwrap(), principal());
        assert!(InternalKey::generate().verify(&token).is_err());
        assert!(key.verify("not-a-token").is_err());
    }

    #[test]
    fn requests_without_a_principal_are_unauthenticated() {
        let key = InternalKey::generate();
        let err = key.authenticate(Request::new(())).unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn organisation_units_cover_themselves_and_what_lies_below() {
        let p = Principal { org_unit: "institutions/acme".to_owned(), ..principal() };
        assert!(p.covers("institutions/acme"));
        assert!(p.covers("institutions/acme/branches/sh"));
        assert!(!p.covers("institutions/acme-2"));
        assert!(!p.covers("institutions"));
        assert!(!p.covers(""));
        assert_eq!(p.scope().as_deref(), Some("institutions/acme"));
        let root = Principal { org_unit: ROOT_ORG_UNIT.to_owned(), ..principal() };
        assert!(root.covers("institutions/anything"));
        assert_eq!(root.scope(), None);
        let nobody = Principal { org_unit: String::new(), ..principal() };
        assert!(!nobody.covers("institutions/acme"));
    }

    #[test]
    fn permissions_are_checked() {
        let p = principal();
        assert!(p.require(Permission::ComplaintsRead).is_ok());
        assert!(matches!(p.require(Permission::PiiRead), Err(ServiceError::PermissionDenied(_))));
    }
}
