//! Caller authentication at the edge. Production verifies the identity provider's JWTs: by a
//! JWKS file whose keys are picked by `kid` and re-read periodically (key rotation), or by one
//! static key (RS256 public key or HS256 secret); issuer, audience and expiry are checked.
//! Roles map to permissions here, by configuration (RBAC), never by a permissions claim.
//! Static dev tokens are accepted only when the gateway runs in development mode.
//!
//! The caller becomes a [`Principal`] that the gateway signs with its own key, once per
//! forwarded call, for the one service the call goes to.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use redress_platform::ServiceError;
use redress_platform::config::Secret;
use redress_platform::names::canonical_principal_unit;
use redress_platform::principal::{Permission, Principal, SERVICE_ROLE, SERVICE_SUBJECT_PREFIX};
use redress_platform::signing::SigningKey;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// Static tokens for development, each mapped to the principal it stands for. Refused
    /// unless the gateway runs in development mode (`redress dev`, or `redress serve gateway
    /// --allow-dev-tokens`).
    pub dev_tokens: Vec<DevToken>,
    /// Expected `iss` of caller JWTs.
    pub jwt_issuer: String,
    /// Expected `aud` of caller JWTs.
    pub jwt_audience: String,
    /// JWKS file of the identity provider (`{"keys":[…]}`): each key names its `kid`, and a
    /// token is verified with the key its header names. RS256, ES256 and EdDSA keys.
    pub jwks_file: String,
    /// How often the JWKS file is read again (seconds); an unknown `kid` reads it at once (at
    /// most every 10 s), so a rotated-in key works as soon as the file has it.
    pub jwks_refresh_secs: u64,
    /// Shared secret for HS256 caller JWTs.
    pub jwt_hs256_secret: Secret,
    /// PEM public key for RS256 caller JWTs.
    pub jwt_rs256_public_key_pem: String,
    /// Permissions of each role (RBAC). A role named here replaces its default; roles not
    /// named keep theirs (see [`default_roles`]); a caller's permissions are those of all its
    /// roles together.
    pub roles: BTreeMap<String, Vec<String>>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            dev_tokens: Vec::new(),
            jwt_issuer: String::new(),
            jwt_audience: String::new(),
            jwks_file: String::new(),
            jwks_refresh_secs: 300,
            jwt_hs256_secret: Secret::default(),
            jwt_rs256_public_key_pem: String::new(),
            roles: default_roles(),
        }
    }
}

/// The default role set and what each role may do (docs/authorization.md).
pub fn default_roles() -> BTreeMap<String, Vec<String>> {
    use Permission as P;
    let handler = [
        P::ComplaintsCreate,
        P::ComplaintsRead,
        P::ComplaintsClassify,
        P::CasesRead,
        P::CasesWrite,
        P::IncidentsRead,
        P::KnowledgeRead,
    ];
    let supervisor = [&handler[..], &[P::CasesApprove, P::CasesExtend, P::IncidentsWrite, P::KnowledgeWrite]].concat();
    let department_head = [&supervisor[..], &[P::KnowledgeReview, P::IncidentsApprove]].concat();
    let senior_manager = [&department_head[..], &[P::CasesExtendSpecial]].concat();
    let compliance = [
        P::ComplaintsRead,
        P::CasesRead,
        P::PiiRead,
        P::PiiManage,
        P::IncidentsRead,
        P::IncidentsWrite,
        P::IncidentsApprove,
        P::VipsManage,
        P::KnowledgeRead,
        P::KnowledgeReview,
        P::EventsRead,
    ];
    let auditor = [P::ComplaintsRead, P::CasesRead, P::IncidentsRead, P::KnowledgeRead, P::EventsRead];
    let integration =
        [P::ComplaintsCreate, P::ComplaintsRead, P::CasesRead, P::EventsRead, P::MentionsReport, P::VipsManage];
    let admin: Vec<P> = P::ALL.into_iter().filter(|p| !matches!(p, P::PiiRead | P::PiiManage)).collect();
    let names = |ps: &[P]| ps.iter().map(|p| p.as_str().to_owned()).collect::<Vec<_>>();
    BTreeMap::from([
        ("handler".to_owned(), names(&handler)),
        ("supervisor".to_owned(), names(&supervisor)),
        ("department_head".to_owned(), names(&department_head)),
        ("senior_manager".to_owned(), names(&senior_manager)),
        ("compliance".to_owned(), names(&compliance)),
        ("auditor".to_owned(), names(&auditor)),
        ("integration".to_owned(), names(&integration)),
        ("admin".to_owned(), names(&admin)),
    ])
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevToken {
    pub token: Secret,
    pub principal: Principal,
}

/// Whether static dev tokens may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevTokens {
    /// Production: configuring dev tokens is an error.
    Refused,
    /// Development (`redress dev`, or `--allow-dev-tokens`).
    Allowed,
}

/// Claims Redress reads from a caller JWT.
#[derive(Deserialize)]
struct CallerClaims {
    sub: String,
    exp: u64,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    org_unit: String,
    /// The department of a member of staff.
    #[serde(default)]
    department: String,
    /// Employee id of a member of staff.
    #[serde(default)]
    staff_id: String,
}

/// How caller JWTs are checked: one static key, or a JWKS file.
enum Keys {
    Static(DecodingKey, Validation),
    Jwks(Jwks),
}

/// The keys of a JWKS file by `kid`, re-read every `refresh` or on an unknown `kid`.
struct Jwks {
    path: PathBuf,
    refresh: Duration,
    base: Validation,
    keys: RwLock<HashMap<String, (DecodingKey, Algorithm)>>,
    loaded_at: Mutex<Instant>,
}

/// An unknown `kid` reads the file again at most this often.
const UNKNOWN_KID_RELOAD: Duration = Duration::from_secs(10);

impl Jwks {
    fn open(path: &str, refresh: Duration, base: Validation) -> anyhow::Result<Self> {
        let keys = read_jwks(path.as_ref())?;
        anyhow::ensure!(!keys.is_empty(), "jwks_file {path} has no usable key");
        Ok(Self { path: path.into(), refresh, base, keys: RwLock::new(keys), loaded_at: Mutex::new(Instant::now()) })
    }

    /// Reads the file again when `due` says so; a failed read keeps the keys in hand.
    fn reload_if(&self, due: impl Fn(Duration) -> bool) {
        let mut loaded_at = self.loaded_at.lock().unwrap_or_else(|p| p.into_inner());
        if !due(loaded_at.elapsed()) {
            return;
        }
        *loaded_at = Instant::now();
        match read_jwks(&self.path) {
            Ok(keys) => *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys,
            Err(e) => tracing::warn!(error = format!("{e:#}"), "re-reading the JWKS file failed; keeping its keys"),
        }
    }

    fn key(&self, kid: &str) -> Option<(DecodingKey, Validation)> {
        self.reload_if(|age| age >= self.refresh);
        let found = |keys: &HashMap<String, (DecodingKey, Algorithm)>| keys.get(kid).cloned();
        let hit = found(&self.keys.read().unwrap_or_else(|p| p.into_inner()));
        let (key, alg) = match hit {
            Some(hit) => hit,
            None => {
                self.reload_if(|age| age >= UNKNOWN_KID_RELOAD);
                found(&self.keys.read().unwrap_or_else(|p| p.into_inner()))?
            }
        };
        let mut validation = self.base.clone();
        validation.algorithms = vec![alg];
        Some((key, validation))
    }
}

fn read_jwks(path: &std::path::Path) -> anyhow::Result<HashMap<String, (DecodingKey, Algorithm)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("jwks_file {}", path.display()))?;
    let set: JwkSet =
        serde_json::from_str(&text).with_context(|| format!("jwks_file {} is not a JWKS", path.display()))?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let Some(kid) = jwk.common.key_id.clone() else {
            tracing::warn!("a JWKS key without kid is ignored");
            continue;
        };
        let alg = match (&jwk.common.key_algorithm, &jwk.algorithm) {
            (Some(alg), _) => alg.to_string().parse::<Algorithm>().ok(),
            (None, AlgorithmParameters::RSA(_)) => Some(Algorithm::RS256),
            (None, AlgorithmParameters::EllipticCurve(ec)) if ec.curve == EllipticCurve::P256 => Some(Algorithm::ES256),
            (None, AlgorithmParameters::OctetKeyPair(_)) => Some(Algorithm::EdDSA),
            _ => None,
        };
        // Symmetric keys have no place in a published key set.
        let Some(alg) = alg.filter(|a| !matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)) else {
            tracing::warn!(kid, "a JWKS key of an unsupported algorithm is ignored");
            continue;
        };
        let key = DecodingKey::from_jwk(jwk).with_context(|| format!("JWKS key {kid}"))?;
        keys.insert(kid, (key, alg));
    }
    Ok(keys)
}

/// Turns bearer tokens into principals and signs them for the services.
pub struct Authenticator {
    dev: HashMap<String, Principal>,
    jwt: Option<Keys>,
    roles: HashMap<String, Vec<String>>,
    key: SigningKey,
    /// Verified callers by token, until their token expires.
    cache: RwLock<HashMap<String, (std::sync::Arc<Principal>, u64)>>,
}

/// Cached entries above this count are dropped wholesale (tokens are re-verified on demand).
const CACHE_LIMIT: usize = 10_000;

impl Authenticator {
    /// Authenticates callers as `config` says and signs their principals with `key`.
    pub fn new(config: &AuthConfig, key: SigningKey, dev_tokens: DevTokens) -> anyhow::Result<Self> {
        anyhow::ensure!(
            config.dev_tokens.is_empty() || dev_tokens == DevTokens::Allowed,
            "auth.dev_tokens are configured but the gateway does not run in development mode: static dev tokens \
             never expire and are refused in production (start with --allow-dev-tokens only for development)"
        );
        let mut dev = HashMap::new();
        for d in &config.dev_tokens {
            let org_unit = canonical_principal_unit(&d.principal.org_unit)
                .map_err(|e| anyhow::anyhow!("dev token of {}: org_unit {e}", d.principal.subject))?;
            dev.insert(d.token.expose().to_owned(), Principal { org_unit, ..d.principal.clone() });
        }
        anyhow::ensure!(!dev.contains_key(""), "a dev token must not be empty");
        let sources = [
            !config.jwks_file.is_empty(),
            !config.jwt_hs256_secret.is_empty(),
            !config.jwt_rs256_public_key_pem.is_empty(),
        ];
        anyhow::ensure!(
            sources.iter().filter(|s| **s).count() <= 1,
            "configure one of jwks_file, jwt_hs256_secret or jwt_rs256_public_key_pem"
        );
        let jwt = if !config.jwks_file.is_empty() {
            let mut base = validation(Algorithm::RS256, config)?;
            base.algorithms.clear();
            let refresh = Duration::from_secs(config.jwks_refresh_secs.max(1));
            Some(Keys::Jwks(Jwks::open(&config.jwks_file, refresh, base)?))
        } else if !config.jwt_hs256_secret.is_empty() {
            Some(Keys::Static(
                DecodingKey::from_secret(config.jwt_hs256_secret.expose().as_bytes()),
                validation(Algorithm::HS256, config)?,
            ))
        } else if !config.jwt_rs256_public_key_pem.is_empty() {
            Some(Keys::Static(
                DecodingKey::from_rsa_pem(config.jwt_rs256_public_key_pem.as_bytes())
                    .context("invalid jwt_rs256_public_key_pem")?,
                validation(Algorithm::RS256, config)?,
            ))
        } else {
            None
        };
        anyhow::ensure!(
            !dev.is_empty() || jwt.is_some(),
            "no way to authenticate callers: configure JWT or dev tokens"
        );
        let mut roles = HashMap::new();
        for (role, permissions) in &config.roles {
            for p in permissions {
                anyhow::ensure!(Permission::parse(p).is_some(), "auth.roles.{role}: unknown permission {p:?}");
            }
            roles.insert(role.clone(), permissions.clone());
        }
        if !dev.is_empty() {
            tracing::warn!(tokens = dev.len(), "development mode: static dev tokens are accepted");
        }
        Ok(Self { dev, jwt, roles, key, cache: RwLock::default() })
    }

    /// The principal signed for `audience` (the service the call goes to), for the
    /// `authorization` header value of a call.
    pub fn authenticate(&self, authorization: Option<&str>, audience: &str) -> Result<http::HeaderValue, ServiceError> {
        let principal = self.principal(authorization)?;
        self.sign(&principal, audience)
    }

    /// `principal` (a caller [`Authenticator::principal`] verified) signed for `audience`.
    pub fn sign(&self, principal: &Principal, audience: &str) -> Result<http::HeaderValue, ServiceError> {
        let signed = self.key.sign(principal, audience)?;
        Ok(http::HeaderValue::from_str(&signed).map_err(anyhow::Error::from)?)
    }

    /// The caller of the `authorization` header value, verified.
    pub fn principal(&self, authorization: Option<&str>) -> Result<std::sync::Arc<Principal>, ServiceError> {
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ServiceError::Unauthenticated("a bearer token is required".to_owned()))?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(anyhow::Error::from)?.as_secs();
        if let Some((principal, valid_until)) = self.cache.read().unwrap_or_else(|p| p.into_inner()).get(token)
            && *valid_until > now
        {
            return Ok(principal.clone());
        }
        let (principal, valid_until) = self.verify(token)?;
        let principal = std::sync::Arc::new(principal);
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(token.to_owned(), (principal.clone(), valid_until));
        Ok(principal)
    }

    fn verify(&self, token: &str) -> Result<(Principal, u64), ServiceError> {
        if let Some(p) = self.dev.get(token) {
            return Ok((p.clone(), u64::MAX));
        }
        let Some(jwt) = &self.jwt else {
            return Err(ServiceError::Unauthenticated("unknown token".to_owned()));
        };
        let invalid = |e: jsonwebtoken::errors::Error| ServiceError::Unauthenticated(format!("invalid token: {e}"));
        let claims = match jwt {
            Keys::Static(key, validation) => jsonwebtoken::decode::<CallerClaims>(token, key, validation),
            Keys::Jwks(jwks) => {
                let header = jsonwebtoken::decode_header(token).map_err(invalid)?;
                let kid = header
                    .kid
                    .ok_or_else(|| ServiceError::Unauthenticated("the token names no key (kid)".to_owned()))?;
                let (key, validation) = jwks
                    .key(&kid)
                    .ok_or_else(|| ServiceError::Unauthenticated(format!("the token's key {kid} is not known")))?;
                jsonwebtoken::decode::<CallerClaims>(token, &key, &validation)
            }
        }
        .map_err(invalid)?
        .claims;
        // Service principals are signed by the services themselves; no caller may pose as one.
        if claims.sub.starts_with(SERVICE_SUBJECT_PREFIX) || claims.roles.iter().any(|r| r == SERVICE_ROLE) {
            return Err(ServiceError::Unauthenticated("the token claims a service identity".to_owned()));
        }
        // One spelling of each unit, so scope checks compare like with like.
        let org_unit = canonical_principal_unit(&claims.org_unit)
            .map_err(|e| ServiceError::Unauthenticated(format!("the token's org_unit claim {e}")))?;
        let mut permissions: Vec<String> =
            claims.roles.iter().filter_map(|r| self.roles.get(r)).flatten().cloned().collect();
        permissions.sort();
        permissions.dedup();
        let principal = Principal {
            subject: claims.sub,
            roles: claims.roles,
            org_unit,
            department: claims.department.trim().to_owned(),
            permissions,
            staff_id: claims.staff_id.trim().to_owned(),
        };
        Ok((principal, claims.exp))
    }
}

fn validation(alg: Algorithm, config: &AuthConfig) -> anyhow::Result<Validation> {
    anyhow::ensure!(!config.jwt_issuer.is_empty(), "jwt_issuer is required with JWT authentication");
    anyhow::ensure!(!config.jwt_audience.is_empty(), "jwt_audience is required with JWT authentication");
    let mut v = Validation::new(alg);
    v.set_issuer(&[&config.jwt_issuer]);
    v.set_audience(&[&config.jwt_audience]);
    v.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
    v.leeway = 30;
    Ok(v)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
