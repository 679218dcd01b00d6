//! Signed principals between the parts of the suite. Each signer holds its own Ed25519 key
//! (EdDSA JWTs): the gateway signs the principal of the caller it authenticated, and a service
//! calling another service signs its own service principal — never anyone else's. Every token
//! names one audience (the service it is for), carries a unique `jti` and lives at most
//! [`TOKEN_LIFETIME`].
//!
//! A service verifies with public keys only: the gateway's, and those of the services allowed
//! to call it, each with the permissions that caller may claim (its allow-list). So no service
//! can mint a principal another service accepts beyond what it was configured for, and a
//! leaked service key reaches nothing its allow-lists do not grant, as nobody but that service.
//!
//! On behalf of its caller: a service that reads from another service *as the person who called
//! it* sends its own service token and, in [`ON_BEHALF_METADATA_KEY`], that person's token as
//! the gateway signed it for the calling service. The callee accepts the person only from a
//! trusted caller and only with a gateway token addressed to that caller, and grants the
//! permissions both tokens hold.
//!
//! Replay: each service remembers the `jti` of every token it accepted until that token
//! expires (at most [`TOKEN_LIFETIME`] plus leeway), in memory, per replica. A token is
//! therefore accepted once per replica; a copy presented to another replica of the same service
//! within its lifetime is not detected, and a token for another service is refused for its
//! audience anyway.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::{Request, Status};

use crate::ServiceError;
use crate::config::Secret;
use crate::principal::{
    ON_BEHALF_METADATA_KEY, PRINCIPAL_METADATA_KEY, Permission, Principal, ROOT_ORG_UNIT, SERVICE_ROLE,
    SERVICE_SUBJECT_PREFIX,
};

/// The issuer name (and key id) of the gateway.
pub const GATEWAY: &str = "gateway";
/// Longest life of a signed principal.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Clock difference tolerated between signer and verifier, in seconds.
const LEEWAY_S: u64 = 5;

/// PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410), followed by the 32-byte seed.
const PKCS8_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
/// SubjectPublicKeyInfo prefix of an Ed25519 public key (RFC 8410), followed by its 32 bytes.
const SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn unpem(label: &str, text: &str) -> anyhow::Result<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin).with_context(|| format!("no {begin} line"))? + begin.len();
    let stop = text[start..].find(&end).with_context(|| format!("no {end} line"))? + start;
    let body: String = text[start..stop].chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(body).context("the PEM body is not base64")
}

/// An Ed25519 private key and the name it signs as (`gateway`, or the service's name).
pub struct SigningKey {
    issuer: String,
    seed: [u8; 32],
    encoding: EncodingKey,
    public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({}, <redacted>)", self.issuer)
    }
}

impl SigningKey {
    /// A fresh random key.
    pub fn generate(issuer: &str) -> Self {
        let seed: [u8; 32] = rand::random();
        // A 32-byte seed is always a valid Ed25519 private key.
        Self::from_seed(issuer, seed).unwrap_or_else(|e| unreachable!("ed25519 seed: {e}"))
    }

    fn from_seed(issuer: &str, seed: [u8; 32]) -> anyhow::Result<Self> {
        anyhow::ensure!(!issuer.is_empty(), "a signing key needs the name it signs as");
        let mut der = PKCS8_PREFIX.to_vec();
        der.extend_from_slice(&seed);
        let encoding = EncodingKey::from_ed_der(&der);
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, Algorithm::EdDSA)?;
        let jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(okp) = jwk.algorithm else {
            anyhow::bail!("not an Ed25519 key");
        };
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(okp.x)?;
        let public = PublicKey::from_raw(&raw)?;
        Ok(Self { issuer: issuer.to_owned(), seed, encoding, public })
    }

    /// A key from its PKCS#8 PEM form (`-----BEGIN PRIVATE KEY-----`, as written by
    /// `openssl genpkey -algorithm ed25519`).
    pub fn from_pem(issuer: &str, text: &str) -> anyhow::Result<Self> {
        let der = unpem("PRIVATE KEY", text)?;
        let seed = der
            .strip_prefix(PKCS8_PREFIX.as_slice())
            .and_then(|s| <[u8; 32]>::try_from(s).ok())
            .context("not an Ed25519 private key in PKCS#8 form")?;
        Self::from_seed(issuer, seed)
    }

    /// The key from `inline` PEM if given, else from the PEM file at `file`.
    pub fn load(issuer: &str, inline: &Secret, file: &str, setting: &str) -> anyhow::Result<Self> {
        let text = match (inline.is_empty(), file.is_empty()) {
            (false, true) => inline.expose().to_owned(),
            (true, false) => std::fs::read_to_string(file).with_context(|| format!("{setting}_file {file}"))?,
            (false, false) => anyhow::bail!("set either {setting} or {setting}_file, not both"),
            (true, true) => anyhow::bail!("{setting} or {setting}_file is required (an Ed25519 private key, PEM)"),
        };
        Self::from_pem(issuer, &text).with_context(|| format!("invalid {setting}"))
    }

    /// The PKCS#8 PEM form.
    pub fn to_pem(&self) -> String {
        let mut der = PKCS8_PREFIX.to_vec();
        der.extend_from_slice(&self.seed);
        pem("PRIVATE KEY", &der)
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn public_key(&self) -> PublicKey {
        self.public.clone()
    }

    /// Signs `principal` for `audience`, valid for [`TOKEN_LIFETIME`], with a fresh `jti`.
    pub fn sign(&self, principal: &Principal, audience: &str) -> anyhow::Result<String> {
        let iat = now_s();
        self.sign_at(principal, audience, iat, iat + TOKEN_LIFETIME.as_secs(), &new_jti())
    }

    fn sign_at(&self, principal: &Principal, audience: &str, iat: u64, exp: u64, jti: &str) -> anyhow::Result<String> {
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: audience.to_owned(),
            exp,
            iat,
            jti: jti.to_owned(),
            principal: principal.clone(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.issuer.clone());
        Ok(jsonwebtoken::encode(&header, &claims, &self.encoding)?)
    }
}

fn new_jti() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// An Ed25519 public key.
#[derive(Clone)]
pub struct PublicKey {
    raw: [u8; 32],
    decoding: DecodingKey,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.raw))
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl PublicKey {
    fn from_raw(raw: &[u8]) -> anyhow::Result<Self> {
        let raw = <[u8; 32]>::try_from(raw).map_err(|_| anyhow::anyhow!("an Ed25519 public key has 32 bytes"))?;
        Ok(Self { raw, decoding: DecodingKey::from_ed_der(&raw) })
    }

    /// A key from its SubjectPublicKeyInfo PEM form (`-----BEGIN PUBLIC KEY-----`, as written
    /// by `openssl pkey -pubout`).
    pub fn from_pem(text: &str) -> anyhow::Result<Self> {
        let der = unpem("PUBLIC KEY", text)?;
        let raw = der.strip_prefix(SPKI_PREFIX.as_slice()).context("not an Ed25519 public key")?;
        Self::from_raw(raw)
    }

    /// The key from `inline` PEM if given, else from the PEM file at `file`; `None` when
    /// neither is set.
    pub fn load(inline: &str, file: &str, setting: &str) -> anyhow::Result<Option<Self>> {
        let text = match (inline.is_empty(), file.is_empty()) {
            (false, true) => inline.to_owned(),
            (true, false) => std::fs::read_to_string(file).with_context(|| format!("{setting}_file {file}"))?,
            (false, false) => anyhow::bail!("set either {setting} or {setting}_file, not both"),
            (true, true) => return Ok(None),
        };
        Self::from_pem(&text).with_context(|| format!("invalid {setting}")).map(Some)
    }

    pub fn to_pem(&self) -> String {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.raw);
        pem("PUBLIC KEY", &der)
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    exp: u64,
    iat: u64,
    jti: String,
    #[serde(flatten)]
    principal: Principal,
}

/// A service allowed to call: its public key and the permissions it may claim.
#[derive(Debug, Clone)]
struct TrustedCaller {
    key: PublicKey,
    permissions: Vec<Permission>,
}

/// Verifies the signed principals addressed to one service.
pub struct Verifier {
    audience: String,
    gateway: Option<PublicKey>,
    callers: HashMap<String, TrustedCaller>,
    validation: Validation,
    seen: Mutex<ReplayCache>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("audience", &self.audience)
            .field("gateway", &self.gateway.is_some())
            .field("callers", &self.callers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The `jti`s of accepted tokens until they expire.
#[derive(Default)]
struct ReplayCache {
    expiry: HashMap<Box<str>, u64>,
    swept_at: u64,
}

impl ReplayCache {
    /// Records `jti` (valid until `exp`); false when it was seen before.
    fn first_use(&mut self, jti: &str, exp: u64, now: u64) -> bool {
        if now != self.swept_at {
            // Entries past their token's expiry (and leeway) can never match a valid token.
            self.expiry.retain(|_, e| *e + LEEWAY_S >= now);
            self.swept_at = now;
        }
        if self.expiry.contains_key(jti) {
            return false;
        }
        self.expiry.insert(jti.into(), exp);
        true
    }
}

impl Verifier {
    /// A verifier for tokens addressed to `audience` (the service's own name), signed by the
    /// gateway with `gateway` (none: only service callers are accepted).
    pub fn new(audience: &str, gateway: Option<PublicKey>) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = LEEWAY_S;
        Self { audience: audience.to_owned(), gateway, callers: HashMap::new(), validation, seen: Mutex::default() }
    }

    /// Accepts calls from service `caller`, signed with `key`, claiming at most `permissions`.
    pub fn trust(mut self, caller: &str, key: PublicKey, permissions: &[Permission]) -> Self {
        self.callers.insert(caller.to_owned(), TrustedCaller { key, permissions: permissions.to_vec() });
        self
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The principal of `token`, once: a token is refused when its signer is unknown, it is
    /// for another audience, expired or longer-lived than [`TOKEN_LIFETIME`], seen before, or
    /// (signed by a service) carries any principal but that service's own or claims more than
    /// that caller is allowed.
    pub fn verify(&self, token: &str) -> Result<Arc<Principal>, ServiceError> {
        let (issuer, claims) = self.decode(token, &self.audience)?;
        let principal = self.admit(&issuer, claims.principal.clone())?;
        self.first_use(&[&claims])?;
        Ok(Arc::new(principal))
    }

    /// The person a trusted service calls on behalf of: `token` is the calling service's own
    /// token (as for [`Verifier::verify`]) and `caller_token` the person's token as the gateway
    /// signed it for that service. The person is granted only the permissions both tokens hold;
    /// each token is accepted once.
    pub fn verify_on_behalf(&self, token: &str, caller_token: &str) -> Result<Arc<Principal>, ServiceError> {
        let (issuer, outer) = self.decode(token, &self.audience)?;
        if issuer == GATEWAY {
            return Err(refuse("only a service calls on behalf of its caller".to_owned()));
        }
        let service = self.admit(&issuer, outer.principal.clone())?;
        let (signer, inner) = self.decode(caller_token, &issuer)?;
        if signer != GATEWAY {
            tracing::warn!(signer = %issuer, audience = %self.audience, "a caller's token not signed by the gateway was refused");
            return Err(refuse(format!("the token {issuer} acts on was not signed by the gateway")));
        }
        let person = self.admit(GATEWAY, inner.principal.clone())?;
        self.first_use(&[&outer, &inner])?;
        let permissions = person.permissions.iter().filter(|p| service.permissions.contains(p)).cloned().collect();
        Ok(Arc::new(Principal { permissions, ..person }))
    }

    /// The signer and claims of `token`, checked with the signer's public key for `audience`,
    /// its lifetime and `jti` present (not yet checked against replay).
    fn decode(&self, token: &str, audience: &str) -> Result<(String, Claims), ServiceError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| refuse(e.to_string()))?;
        let issuer = header.kid.ok_or_else(|| refuse("no key id".to_owned()))?;
        let key = if issuer == GATEWAY {
            self.gateway.as_ref().ok_or_else(|| refuse("the gateway is not trusted here".to_owned()))?
        } else {
            &self.callers.get(&issuer).ok_or_else(|| refuse(format!("{issuer} may not call {}", self.audience)))?.key
        };
        let mut validation = self.validation.clone();
        validation.set_issuer(&[&issuer]);
        validation.set_audience(&[audience]);
        let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
            .map_err(|e| refuse(e.to_string()))?
            .claims;
        if claims.exp > now_s() + TOKEN_LIFETIME.as_secs() + LEEWAY_S
            || claims.exp.saturating_sub(claims.iat) > TOKEN_LIFETIME.as_secs()
        {
            return Err(refuse(format!("it lives longer than {} s", TOKEN_LIFETIME.as_secs())));
        }
        if claims.jti.is_empty() {
            return Err(refuse("no jti".to_owned()));
        }
        Ok((issuer, claims))
    }

    /// `principal` as signed by `issuer`: the gateway forwards people and systems, never a
    /// service; a service signs only its own service principal, within its allow-list here.
    fn admit(&self, issuer: &str, principal: Principal) -> Result<Principal, ServiceError> {
        if issuer == GATEWAY {
            if principal.is_service() {
                return Err(refuse("the gateway does not sign service principals".to_owned()));
            }
            return Ok(principal);
        }
        let Some(caller) = self.callers.get(issuer) else {
            return Err(refuse(format!("{issuer} may not call {}", self.audience)));
        };
        if !is_own_principal(issuer, &principal) {
            tracing::warn!(signer = %issuer, audience = %self.audience, "a service-signed token not carrying the service's own principal was refused");
            return Err(refuse(format!("{issuer} signs only its own principal ({SERVICE_SUBJECT_PREFIX}{issuer})")));
        }
        if let Some(extra) =
            principal.permissions.iter().find(|p| !caller.permissions.iter().any(|a| a.as_str() == p.as_str()))
        {
            return Err(ServiceError::PermissionDenied(format!(
                "{issuer} may not claim the {extra} permission when calling {}",
                self.audience
            )));
        }
        Ok(principal)
    }

    /// Records the `jti` of each token; refuses when any was used before.
    fn first_use(&self, tokens: &[&Claims]) -> Result<(), ServiceError> {
        let now = now_s();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        for claims in tokens {
            if !seen.first_use(&claims.jti, claims.exp, now) {
                return Err(refuse("it was used before".to_owned()));
            }
        }
        Ok(())
    }

    /// Verifies the forwarded principal of a request and places it in the request extensions;
    /// a principal the gateway signed is placed with its token ([`CallerToken`]), so the
    /// service can call another on that caller's behalf.
    pub fn authenticate<T>(&self, mut request: Request<T>) -> Result<Request<T>, Status> {
        let text = |key: &str| match request.metadata().get(key) {
            None => Ok(None),
            Some(v) => v.to_str().map(|t| Some(t.to_owned())).map_err(|_| refuse(format!("{key} is not text"))),
        };
        let token = text(PRINCIPAL_METADATA_KEY)?
            .ok_or_else(|| Status::from(ServiceError::Unauthenticated("missing principal".to_owned())))?;
        let principal = match text(ON_BEHALF_METADATA_KEY)? {
            Some(caller_token) => self.verify_on_behalf(&token, &caller_token)?,
            None => {
                let principal = self.verify(&token)?;
                if !principal.is_service() {
                    request.extensions_mut().insert(CallerToken(token.into()));
                }
                principal
            }
        };
        request.extensions_mut().insert(principal);
        Ok(request)
    }
}

fn refuse(why: String) -> ServiceError {
    ServiceError::Unauthenticated(format!("principal token refused: {why}"))
}

/// Whether `principal` is service `issuer`'s own: subject `service:<issuer>`, only the service
/// role, no department or employee id, and no organisation unit or the whole platform.
fn is_own_principal(issuer: &str, principal: &Principal) -> bool {
    principal.subject.strip_prefix(SERVICE_SUBJECT_PREFIX) == Some(issuer)
        && principal.roles.len() == 1
        && principal.roles[0] == SERVICE_ROLE
        && principal.department.is_empty()
        && principal.staff_id.is_empty()
        && (principal.org_unit.is_empty() || principal.org_unit == ROOT_ORG_UNIT)
}

/// The gateway-signed token a call came with (addressed to the service serving it), kept in the
/// request extensions so that service can call another on the caller's behalf
/// ([`ServiceCredentials::apply_on_behalf`]).
#[derive(Clone)]
pub struct CallerToken(Arc<str>);

impl std::fmt::Debug for CallerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallerToken(<redacted>)")
    }
}

impl CallerToken {
    /// The token of a request's caller, when the gateway signed it.
    pub fn of<T>(request: &Request<T>) -> Option<Self> {
        request.extensions().get::<Self>().cloned()
    }
}

/// One service's identity in the suite: its signing key, and the verifier of calls to it.
#[derive(Clone, Debug)]
pub struct ServiceAuth {
    key: Arc<SigningKey>,
    verifier: Arc<Verifier>,
}

impl ServiceAuth {
    /// `key` signs as the service; `verifier` must be for the same name.
    pub fn new(key: SigningKey, verifier: Verifier) -> anyhow::Result<Self> {
        anyhow::ensure!(
            key.issuer() == verifier.audience(),
            "the signing key of {} does not belong to {}",
            key.issuer(),
            verifier.audience()
        );
        Ok(Self { key: Arc::new(key), verifier: Arc::new(verifier) })
    }

    pub fn name(&self) -> &str {
        self.key.issuer()
    }

    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// A tonic interceptor that verifies each call's principal.
    pub fn interceptor(&self) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone + use<> {
        let verifier = self.verifier.clone();
        move |request| verifier.authenticate(request)
    }

    /// Credentials for calls to `audience` as `principal` (the service's own principal).
    pub fn credentials(&self, principal: Principal, audience: &str) -> ServiceCredentials {
        ServiceCredentials::new(self.key.clone(), principal, audience)
    }
}

/// Adds a freshly signed principal to each outgoing call to one service.
#[derive(Clone, Debug)]
pub struct ServiceCredentials {
    key: Arc<SigningKey>,
    principal: Arc<Principal>,
    audience: Arc<str>,
}

impl ServiceCredentials {
    pub fn new(key: Arc<SigningKey>, principal: Principal, audience: &str) -> Self {
        Self { key, principal: Arc::new(principal), audience: audience.into() }
    }

    /// Signs the principal for this call.
    pub fn apply<T>(&self, request: &mut Request<T>) -> Result<(), ServiceError> {
        let token = self.key.sign(&self.principal, &self.audience)?;
        let value = token.parse().map_err(anyhow::Error::from)?;
        request.metadata_mut().insert(PRINCIPAL_METADATA_KEY, value);
        Ok(())
    }

    /// Signs the principal for this call and adds `caller`'s own token: the service acting on
    /// behalf of the caller it serves, who is granted at the target only the permissions both
    /// this service's principal and the caller hold.
    pub fn apply_on_behalf<T>(&self, request: &mut Request<T>, caller: &CallerToken) -> Result<(), ServiceError> {
        self.apply(request)?;
        let value = caller.0.parse().map_err(anyhow::Error::from)?;
        request.metadata_mut().insert(ON_BEHALF_METADATA_KEY, value);
        Ok(())
    }
}

/// How a service authenticates calls to it and signs its own, as configured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceAuthConfig {
    /// The service's own Ed25519 private key, PKCS#8 PEM (or the file holding it).
    pub signing_key: Secret,
    pub signing_key_file: String,
    /// The gateway's Ed25519 public key, SPKI PEM (or the file holding it).
    pub gateway_public_key: String,
    pub gateway_public_key_file: String,
    /// The services allowed to call this one, by name (`case-workflow`; `case_workflow` is
    /// read the same, for environment variables).
    pub callers: BTreeMap<String, CallerConfig>,
}

/// A service allowed to call: its public key and the permissions it may claim.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CallerConfig {
    pub public_key: String,
    pub public_key_file: String,
    /// Permission names, as a list or one comma-separated string.
    #[serde(deserialize_with = "list_or_commas")]
    pub permissions: Vec<String>,
}

fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        One(String),
    }
    Ok(match Either::deserialize(d)? {
        Either::List(list) => list,
        Either::One(text) => text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
    })
}

impl ServiceAuthConfig {
    /// The identity of service `name` as configured.
    pub fn load(&self, name: &str) -> anyhow::Result<ServiceAuth> {
        let key = SigningKey::load(name, &self.signing_key, &self.signing_key_file, "auth.signing_key")?;
        let gateway =
            PublicKey::load(&self.gateway_public_key, &self.gateway_public_key_file, "auth.gateway_public_key")?;
        let mut verifier = Verifier::new(name, gateway);
        for (caller, c) in &self.callers {
            let caller = caller.replace('_', "-");
            anyhow::ensure!(caller != GATEWAY && caller != name, "auth.callers.{caller}: not a calling service");
            let setting = format!("auth.callers.{caller}.public_key");
            let key = PublicKey::load(&c.public_key, &c.public_key_file, &setting)?
                .with_context(|| format!("{setting} or {setting}_file is required"))?;
            let permissions = c
                .permissions
                .iter()
                .map(|p| {
                    Permission::parse(p).with_context(|| format!("auth.callers.{caller}.permissions: unknown {p:?}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            verifier = verifier.trust(&caller, key, &permissions);
        }
        ServiceAuth::new(key, verifier)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn user() -> Principal {
        Principal {
            subject: "user:li".to_owned(),
            roles: vec!["handler".to_owned()],
            org_unit: "institutions/acme".to_owned(),
            department: "cards".to_owned(),
            permissions: vec!["complaints.read".to_owned()],
            staff_id: "E1001".to_owned(),
        }
    }

    /// Intake trusting the gateway, and case-workflow for events only.
    fn intake(gateway: &SigningKey, case_workflow: &SigningKey) -> Verifier {
        Verifier::new("intake", Some(gateway.public_key())).trust(
            "case-workflow",
            case_workflow.public_key(),
            &[Permission::EventsRead],
        )
    }

    #[test]
    fn keys_round_trip_through_pem() {
        let key = SigningKey::generate("intake");
        let again = SigningKey::from_pem("intake", &key.to_pem()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        assert_eq!(PublicKey::from_pem(&key.public_key().to_pem()).unwrap(), key.public_key());
        assert!(SigningKey::from_pem("intake", &key.public_key().to_pem()).is_err());
        assert!(PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").is_err());
    }

    /// A key written by `openssl genpkey -algorithm ed25519` (RFC 8410 test vector) and its
    /// public half from `openssl pkey -pubout`.
    #[test]
    fn openssl_keys_are_read() {
        let private = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
        let public = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
        let key = SigningKey::from_pem("gateway", private).unwrap();
        assert_eq!(key.public_key(), PublicKey::from_pem(public).unwrap());
    }

    #[test]
    fn the_gateway_principal_is_accepted_once_by_its_audience() {
        let (gateway, cw) = (SigningKey::generate(GATEWAY), SigningKey::generate("case-workflow"));
        let verifier = intake(&gateway, &cw);
        let token = gateway.sign(&user(), "intake").unwrap();
        assert_eq!(*verifier.verify(&token).unwrap(), user());
        // The same token again is a replay.
        let err = verifier.verify(&token).unwrap_err();
        assert!(matches!(err, ServiceError::Unauthenticated(ref m) if m.contains("used before")), "{err:?}");
    }

    #[test]
    fn a_principal_for_another_service_is_refused() {
        let (gateway, cw) = (SigningKey::generate(GATEWAY), SigningKey::generate("case-workflow"));
        let token = gateway.sign(&user(), "case-workflow").unwrap();
        let err = intake(&gateway, &cw).verify(&token).unwrap_err();
        assert!(matches!(err, ServiceError::Unauthenticated(ref m) if m.contains("Audience")), "{err:?}");
    }

    #[test]
    fn expired_and_long_lived_tokens_are_refused() {
        let (gateway, cw) = (SigningKey::generate(GATEWAY), SigningKey::generate("case-workflow"));
        let verifier = intake(&gateway, &cw);
        let now = now_s();
        let expired = gateway.sign_at(&user(), "intake", now - 120, now - 60, "a").unwrap();
        assert!(matches!(verifier.verify(&expired), Err(ServiceError::Unauthenticated(m)) if m.contains("Expired")));
        let long = gateway.sign_at(&user(), "intake", now, now + 3600, "b").unwrap();
        assert!(matches!(verifier.verify(&long), Err(ServiceError::Unauthenticated(m)) if m.contains("longer")));
        let no_jti = gateway.sign_at(&user(), "intake", now, now + 30, "").unwrap();
        assert!(verifier.verify(&no_jti).is_err());
    }

    #[test]
    fn a_service_key_cannot_mint_what_its_allow_list_does_not_grant() {
        let (gateway, cw) = (SigningKey::generate(GATEWAY), SigningKey::generate("case-workflow"));
        let verifier = intake(&gateway, &cw);
        // Its own principal with the permission it is allowed: accepted.
        let own = cw.sign(&Principal::service("case-workflow", &[Permission::EventsRead]), "intake").unwrap();
        assert!(verifier.verify(&own).unwrap().is_service());
        // Its own principal asking for personal-data management: refused.
        let pii = cw.sign(&Principal::service("case-workflow", &[Permission::PiiManage]), "intake").unwrap();
        assert!(matches!(verifier.verify(&pii), Err(ServiceError::PermissionDenied(m)) if m.contains("pii.manage")));
        // A made-up member of staff with pii.manage, signed with case-workflow's key: refused.
        let forged = Principal { permissions: vec!["pii.manage".to_owned()], ..user() };
        let token = cw.sign(&forged, "intake").unwrap();
        assert!(matches!(verifier.verify(&token), Err(ServiceError::Unauthenticated(_))));
        // Posing as another service, or as the gateway with its own key: refused.
        let other = cw.sign(&Principal::service("escalation", &[Permission::EventsRead]), "intake").unwrap();
        assert!(verifier.verify(&other).is_err());
        let as_gateway = SigningKey::from_pem(GATEWAY, &cw.to_pem()).unwrap().sign(&user(), "intake").unwrap();
        assert!(
            matches!(verifier.verify(&as_gateway), Err(ServiceError::Unauthenticated(m)) if m.contains("Signature"))
        );
        // A service that is not configured at all: refused.
        let kb = SigningKey::generate("knowledge-base");
        let token = kb.sign(&Principal::service("knowledge-base", &[]), "intake").unwrap();
        assert!(matches!(verifier.verify(&token), Err(ServiceError::Unauthenticated(m)) if m.contains("may not call")));
    }

    #[test]
    fn a_service_key_signs_only_its_own_principal() {
        let (gateway, cw) = (SigningKey::generate(GATEWAY), SigningKey::generate("case-workflow"));
        let verifier = intake(&gateway, &cw);
        // Any user, even one holding only what case-workflow may claim: refused.
        let as_user = Principal { permissions: vec!["events.read".to_owned()], ..user() };
        let err = verifier.verify(&cw.sign(&as_user, "intake").unwrap()).unwrap_err();
        assert!(matches!(err, ServiceError::Unauthenticated(ref m) if m.contains("its own principal")), "{err:?}");
        // Its own subject dressed up as a person of a unit, a department or with another role: refused.
        let own = Principal::service("case-workflow", &[Permission::EventsRead]);
        for dressed in [
            Principal { org_unit: "institutions/acme".to_owned(), ..own.clone() },
            Principal { department: "cards".to_owned(), ..own.clone() },
            Principal { staff_id: "E1001".to_owned(), ..own.clone() },
            Principal { roles: vec![SERVICE_ROLE.to_owned(), "compliance".to_owned()], ..own.clone() },
            Principal { roles: vec![], ..own.clone() },
        ] {
            let token = cw.sign(&dressed, "intake").unwrap();
            assert!(matches!(verifier.verify(&token), Err(ServiceError::Unauthenticated(_))), "{dressed:?}");
        }
        // Its own principal, for no unit or the whole platform: accepted.
        assert_eq!(*verifier.verify(&cw.sign(&own, "intake").unwrap()).unwrap(), own);
        let everywhere = Principal { org_unit: ROOT_ORG_UNIT.to_owned(), ..own };
        assert_eq!(*verifier.verify(&cw.sign(&everywhere, "intake").unwrap()).unwrap(), everywhere);
    }

    /// Intake trusting the gateway, and the knowledge base to read complaints.
    fn intake_for_kb(gateway: &SigningKey, kb: &SigningKey) -> Verifier {
        Verifier::new("intake", Some(gateway.public_key())).trust(
            "knowledge-base",
            kb.public_key(),
            &[Permission::ComplaintsRead],
        )
    }

    #[test]
    fn a_service_acts_on_behalf_of_its_caller_only_with_the_callers_gateway_token() {
        let (gateway, kb) = (SigningKey::generate(GATEWAY), SigningKey::generate("knowledge-base"));
        let verifier = intake_for_kb(&gateway, &kb);
        let service = Principal::service("knowledge-base", &[Permission::ComplaintsRead]);
        let person = Principal {
            permissions: vec!["knowledge.read".to_owned(), "complaints.read".to_owned(), "pii.read".to_owned()],
            ..user()
        };
        // The person's token for the knowledge base: the person, with what both tokens hold.
        let caller = gateway.sign(&person, "knowledge-base").unwrap();
        let got = verifier.verify_on_behalf(&kb.sign(&service, "intake").unwrap(), &caller).unwrap();
        assert_eq!(*got, Principal { permissions: vec!["complaints.read".to_owned()], ..person.clone() });
        // Once only.
        let again = verifier.verify_on_behalf(&kb.sign(&service, "intake").unwrap(), &caller).unwrap_err();
        assert!(matches!(again, ServiceError::Unauthenticated(ref m) if m.contains("used before")), "{again:?}");
        // A person without the permission gets none.
        let reader = Principal { permissions: vec!["knowledge.read".to_owned()], ..user() };
        let caller = gateway.sign(&reader, "knowledge-base").unwrap();
        let got = verifier.verify_on_behalf(&kb.sign(&service, "intake").unwrap(), &caller).unwrap();
        assert!(got.permissions.is_empty(), "{got:?}");

        let outer = || kb.sign(&service, "intake").unwrap();
        let refused = |outer: &str, inner: &str| match verifier.verify_on_behalf(outer, inner) {
            Err(ServiceError::Unauthenticated(m)) => m,
            other => panic!("{other:?}"),
        };
        // The person's token must be the gateway's, for the calling service, and current.
        let minted = kb.sign(&person, "knowledge-base").unwrap();
        assert!(refused(&outer(), &minted).contains("gateway"));
        let for_intake = gateway.sign(&person, "intake").unwrap();
        assert!(refused(&outer(), &for_intake).contains("Audience"));
        let now = now_s();
        let expired = gateway.sign_at(&person, "knowledge-base", now - 120, now - 60, "old").unwrap();
        assert!(refused(&outer(), &expired).contains("Expired"));
        let a_service = gateway.sign(&service, "knowledge-base").unwrap();
        assert!(refused(&outer(), &a_service).contains("service principals"));
        // The outer token must be the calling service's own, from a trusted caller.
        let fresh = || gateway.sign(&person, "knowledge-base").unwrap();
        let gateway_outer = gateway.sign(&person, "intake").unwrap();
        assert!(refused(&gateway_outer, &fresh()).contains("only a service"));
        let kb_as_person = kb.sign(&person, "intake").unwrap();
        assert!(refused(&kb_as_person, &fresh()).contains("its own principal"));
        let stranger = SigningKey::generate("escalation");
        let stranger_outer = stranger.sign(&Principal::service("escalation", &[]), "intake").unwrap();
        assert!(refused(&stranger_outer, &fresh()).contains("may not call"));
        // A token signed for someone else's caller: case-workflow's caller relayed by the knowledge base.
        let for_cw = gateway.sign(&person, "case-workflow").unwrap();
        assert!(refused(&outer(), &for_cw).contains("Audience"));
    }

    #[test]
    fn credentials_carry_the_callers_own_token_on_their_behalf() {
        let (gateway, kb) = (SigningKey::generate(GATEWAY), SigningKey::generate("knowledge-base"));
        let intake = intake_for_kb(&gateway, &kb);
        let at_kb = Verifier::new("knowledge-base", Some(gateway.public_key()));
        let auth = ServiceAuth::new(kb, at_kb).unwrap();
        // The person calls the knowledge base through the gateway; the verified call keeps the token.
        let mut incoming = Request::new(());
        let token = gateway.sign(&user(), "knowledge-base").unwrap();
        incoming.metadata_mut().insert(PRINCIPAL_METADATA_KEY, token.parse().unwrap());
        let incoming = auth.verifier().authenticate(incoming).unwrap();
        let caller = CallerToken::of(&incoming).unwrap();
        assert_eq!(format!("{caller:?}"), "CallerToken(<redacted>)");
        // The knowledge base asks intake on the person's behalf: intake sees the person.
        let credentials =
            auth.credentials(Principal::service("knowledge-base", &[Permission::ComplaintsRead]), "intake");
        let mut outgoing = Request::new(());
        credentials.apply_on_behalf(&mut outgoing, &caller).unwrap();
        let served = intake.authenticate(outgoing).unwrap();
        assert_eq!(*Principal::of(&served).unwrap(), user());
        // Neither a service's own call nor a call on someone's behalf keeps a token to pass on.
        assert!(CallerToken::of(&served).is_none());
        let mut own = Request::new(());
        credentials.apply(&mut own).unwrap();
        let served = intake.authenticate(own).unwrap();
        assert!(Principal::of(&served).unwrap().is_service());
        assert!(CallerToken::of(&served).is_none());
        // A caller's token sent straight to intake alongside a gateway principal: refused.
        let mut smuggled = Request::new(());
        smuggled
            .metadata_mut()
            .insert(PRINCIPAL_METADATA_KEY, gateway.sign(&user(), "intake").unwrap().parse().unwrap());
        let inner = gateway.sign(&user(), "knowledge-base").unwrap();
        smuggled.metadata_mut().insert(ON_BEHALF_METADATA_KEY, inner.parse().unwrap());
        assert_eq!(intake.authenticate(smuggled).unwrap_err().code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn the_gateway_never_forwards_a_service_principal() {
        let (gateway, cw) = (SigningKey::generate(GATEWAY), SigningKey::generate("case-workflow"));
        let token = gateway.sign(&Principal::service("case-workflow", &[Permission::EventsRead]), "intake").unwrap();
        assert!(intake(&gateway, &cw).verify(&token).is_err());
    }

    #[test]
    fn credentials_sign_a_fresh_token_per_call() {
        let (gateway, cw) = (SigningKey::generate(GATEWAY), SigningKey::generate("case-workflow"));
        let verifier = intake(&gateway, &cw);
        let auth = ServiceAuth::new(cw, Verifier::new("case-workflow", None)).unwrap();
        let credentials = auth.credentials(Principal::service("case-workflow", &[Permission::EventsRead]), "intake");
        for _ in 0..3 {
            let mut request = Request::new(());
            credentials.apply(&mut request).unwrap();
            assert!(verifier.authenticate(request).is_ok());
        }
        assert!(verifier.authenticate(Request::new(())).is_err());
    }

    #[test]
    fn the_configuration_names_callers_and_their_permissions() {
        let (own, cw) = (SigningKey::generate("intake"), SigningKey::generate("case-workflow"));
        let config = ServiceAuthConfig {
            signing_key: Secret::new(own.to_pem()),
            callers: BTreeMap::from([(
                "case_workflow".to_owned(),
                CallerConfig {
                    public_key: cw.public_key().to_pem(),
                    permissions: vec!["events.read".to_owned()],
                    ..CallerConfig::default()
                },
            )]),
            ..ServiceAuthConfig::default()
        };
        let auth = config.load("intake").unwrap();
        let token = cw.sign(&Principal::service("case-workflow", &[Permission::EventsRead]), "intake").unwrap();
        assert!(auth.verifier().verify(&token).is_ok());
        let bad = ServiceAuthConfig {
            callers: BTreeMap::from([(
                "case-workflow".to_owned(),
                CallerConfig {
                    public_key: cw.public_key().to_pem(),
                    permissions: vec!["everything".to_owned()],
                    ..CallerConfig::default()
                },
            )]),
            ..config.clone()
        };
        assert!(bad.load("intake").is_err());
        assert!(ServiceAuthConfig::default().load("intake").is_err());
        let parsed: CallerConfig = serde_json::from_str(r#"{"permissions":"events.read, complaints.read"}"#).unwrap();
        assert_eq!(parsed.permissions, ["events.read", "complaints.read"]);
    }
}
