//! Caller authentication at the edge. Development mode accepts configured static dev tokens;
//! production verifies JWTs (HS256 secret or RS256 public key, issuer and audience checked).
//! Either way the caller becomes a [`Principal`] that is re-signed with the internal key for
//! the services, and the signed form is cached per token until shortly before it expires.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use redress_platform::ServiceError;
use redress_platform::config::Secret;
use redress_platform::names::canonical_principal_unit;
use redress_platform::principal::{InternalKey, Principal, SERVICE_ROLE, SERVICE_SUBJECT_PREFIX};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// Static tokens for development, each mapped to the principal it stands for.
    pub dev_tokens: Vec<DevToken>,
    /// Expected `iss` of caller JWTs.
    pub jwt_issuer: String,
    /// Expected `aud` of caller JWTs.
    pub jwt_audience: String,
    /// Shared secret for HS256 caller JWTs.
    pub jwt_hs256_secret: Secret,
    /// PEM public key for RS256 caller JWTs.
    pub jwt_rs256_public_key_pem: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevToken {
    pub token: Secret,
    pub principal: Principal,
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
    #[serde(default)]
    permissions: Vec<String>,
    /// Employee id of a member of staff.
    #[serde(default)]
    staff_id: String,
}

struct Jwt {
    key: DecodingKey,
    validation: Validation,
}

/// Turns bearer tokens into signed principals for the services.
pub struct Authenticator {
    dev: HashMap<String, Principal>,
    jwt: Option<Jwt>,
    key: InternalKey,
    cache: RwLock<HashMap<String, (http::HeaderValue, u64)>>,
}

/// Cached entries above this count are dropped wholesale (tokens are re-verified on demand).
const CACHE_LIMIT: usize = 10_000;
/// A cached signed principal is renewed this long before it expires.
const RENEW_BEFORE_S: u64 = 60;

impl Authenticator {
    pub fn new(config: &AuthConfig, key: InternalKey) -> anyhow::Result<Self> {
        let mut dev = HashMap::new();
        for d in &config.dev_tokens {
            let org_unit = canonical_principal_unit(&d.principal.org_unit)
                .map_err(|e| anyhow::anyhow!("dev token of {}: org_unit {e}", d.principal.subject))?;
            dev.insert(d.token.expose().to_owned(), Principal { org_unit, ..d.principal.clone() });
        }
        anyhow::ensure!(!dev.contains_key(""), "a dev token must not be empty");
        let jwt = match (config.jwt_hs256_secret.is_empty(), config.jwt_rs256_public_key_pem.is_empty()) {
            (true, true) => None,
            (false, false) => anyhow::bail!("configure either jwt_hs256_secret or jwt_rs256_public_key_pem, not both"),
            (false, true) => Some(Jwt {
                key: DecodingKey::from_secret(config.jwt_hs256_secret.expose().as_bytes()),
                validation: validation(Algorithm::HS256, config)?,
            }),
            (true, false) => Some(Jwt {
                key: DecodingKey::from_rsa_pem(config.jwt_rs256_public_key_pem.as_bytes())
                    .context("invalid jwt_rs256_public_key_pem")?,
                validation: validation(Algorithm::RS256, config)?,
            }),
        };
        anyhow::ensure!(
            !dev.is_empty() || jwt.is_some(),
            "no way to authenticate callers: configure JWT or dev tokens"
        );
        if !dev.is_empty() {
            tracing::warn!(tokens = dev.len(), "static dev tokens are accepted; do not use them in production");
        }
        Ok(Self { dev, jwt, key, cache: RwLock::default() })
    }

    /// The signed principal for the `authorization` header value of a call.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<http::HeaderValue, ServiceError> {
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ServiceError::Unauthenticated("a bearer token is required".to_owned()))?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(anyhow::Error::from)?.as_secs();
        if let Some((value, valid_until)) = self.cache.read().unwrap_or_else(|p| p.into_inner()).get(token)
            && *valid_until > now + RENEW_BEFORE_S
        {
            return Ok(value.clone());
        }
        let (principal, caller_exp) = self.verify(token)?;
        let (signed, exp) = self.key.sign(&principal)?;
        let value = http::HeaderValue::from_str(&signed).map_err(anyhow::Error::from)?;
        let valid_until = caller_exp.map_or(exp, |c| c.min(exp));
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(token.to_owned(), (value.clone(), valid_until));
        Ok(value)
    }

    fn verify(&self, token: &str) -> Result<(Principal, Option<u64>), ServiceError> {
        if let Some(p) = self.dev.get(token) {
            return Ok((p.clone(), None));
        }
        let Some(jwt) = &self.jwt else {
            return Err(ServiceError::Unauthenticated("unknown token".to_owned()));
        };
        let claims = jsonwebtoken::decode::<CallerClaims>(token, &jwt.key, &jwt.validation)
            .map_err(|e| ServiceError::Unauthenticated(format!("invalid token: {e}")))?
            .claims;
        // Service principals are signed by the services themselves; no caller may pose as one.
        if claims.sub.starts_with(SERVICE_SUBJECT_PREFIX) || claims.roles.iter().any(|r| r == SERVICE_ROLE) {
            return Err(ServiceError::Unauthenticated("the token claims a service identity".to_owned()));
        }
        // One spelling of each unit, so scope checks compare like with like.
        let org_unit = canonical_principal_unit(&claims.org_unit)
            .map_err(|e| ServiceError::Unauthenticated(format!("the token's org_unit claim {e}")))?;
        let principal = Principal {
            subject: claims.sub,
            roles: claims.roles,
            org_unit,
            permissions: claims.permissions,
            staff_id: claims.staff_id.trim().to_owned(),
        };
        Ok((principal, Some(claims.exp)))
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
mod tests {
    use jsonwebtoken::{EncodingKey, Header};

    use super::*;

    fn config() -> AuthConfig {
        AuthConfig {
            dev_tokens: vec![DevToken {
                token: Secret::new("dev-token"),
                principal: Principal { subject: "dev".to_owned(), ..principal() },
            }],
            jwt_issuer: "https://idp.example".to_owned(),
            jwt_audience: "redress".to_owned(),
            jwt_hs256_secret: Secret::new("a-shared-secret-of-enough-length!!"),
            jwt_rs256_public_key_pem: String::new(),
        }
    }

    fn principal() -> Principal {
        Principal {
            subject: "user:zhang".to_owned(),
            roles: vec!["handler".to_owned()],
            org_unit: "institutions/acme/branches/sh".to_owned(),
            permissions: vec!["complaints.read".to_owned()],
            staff_id: String::new(),
        }
    }

    fn jwt(iss: &str, exp_in: i64) -> String {
        jwt_as(iss, exp_in, "user:zhang", "handler")
    }

    fn jwt_as(iss: &str, exp_in: i64, sub: &str, role: &str) -> String {
        jwt_in(iss, exp_in, sub, role, "institutions/acme/branches/sh")
    }

    fn jwt_in(iss: &str, exp_in: i64, sub: &str, role: &str, org_unit: &str) -> String {
        let exp = (SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64 + exp_in) as u64;
        let claims = serde_json::json!({
            "sub": sub, "iss": iss, "aud": "redress", "exp": exp,
            "roles": [role], "org_unit": org_unit, "permissions": ["complaints.read"],
        });
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"a-shared-secret-of-enough-length!!"),
        )
        .unwrap()
    }

    #[test]
    fn callers_become_principals_the_services_can_verify() {
        let key = InternalKey::generate();
        let auth = Authenticator::new(&config(), key.clone()).unwrap();
        let signed = auth.authenticate(Some(&format!("Bearer {}", jwt("https://idp.example", 600)))).unwrap();
        assert_eq!(*key.verify(signed.to_str().unwrap()).unwrap(), principal());
        let dev = auth.authenticate(Some("Bearer dev-token")).unwrap();
        assert_eq!(key.verify(dev.to_str().unwrap()).unwrap().subject, "dev");
    }

    /// The employee id reaches the services with the principal: conflict-of-interest checks
    /// (回避) compare it with the staff a complaint names.
    #[test]
    fn a_staff_id_claim_travels_with_the_principal() {
        let key = InternalKey::generate();
        let auth = Authenticator::new(&config(), key.clone()).unwrap();
        let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 600;
        let claims = serde_json::json!({
            "sub": "user:zhang", "iss": "https://idp.example", "aud": "redress", "exp": exp,
            "org_unit": "institutions/acme", "staff_id": " E1001 ",
        });
        let secret = EncodingKey::from_secret(b"a-shared-secret-of-enough-length!!");
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &secret).unwrap();
        let signed = auth.authenticate(Some(&format!("Bearer {token}"))).unwrap();
        assert_eq!(key.verify(signed.to_str().unwrap()).unwrap().staff_id, "E1001");
        // Without the claim there is no staff id.
        let signed = auth.authenticate(Some(&format!("Bearer {}", jwt("https://idp.example", 600)))).unwrap();
        assert_eq!(key.verify(signed.to_str().unwrap()).unwrap().staff_id, "");
    }

    #[test]
    fn a_claimed_unit_is_taken_in_its_canonical_spelling() {
        let key = InternalKey::generate();
        let auth = Authenticator::new(&config(), key.clone()).unwrap();
        let token = jwt_in("https://idp.example", 600, "user:zhang", "handler", "/Institutions/ACME/branches/sh/");
        let signed = auth.authenticate(Some(&format!("Bearer {token}"))).unwrap();
        assert_eq!(key.verify(signed.to_str().unwrap()).unwrap().org_unit, "institutions/acme/branches/sh");
        let token = jwt_in("https://idp.example", 600, "user:zhang", "handler", "acme");
        assert!(matches!(auth.authenticate(Some(&format!("Bearer {token}"))), Err(ServiceError::Unauthenticated(_))));
    }

    #[test]
    fn bad_callers_are_unauthenticated() {
        let auth = Authenticator::new(&config(), InternalKey::generate()).unwrap();
        for header in [
            None,
            Some("Bearer ".to_owned()),
            Some("Basic abc".to_owned()),
            Some("Bearer nope".to_owned()),
            Some(format!("Bearer {}", jwt("https://evil.example", 600))),
            Some(format!("Bearer {}", jwt("https://idp.example", -600))),
            // A caller posing as a service of the suite (which reads every institution's feed).
            Some(format!("Bearer {}", jwt_as("https://idp.example", 600, "service:case-workflow", "handler"))),
            Some(format!("Bearer {}", jwt_as("https://idp.example", 600, "user:zhang", "service"))),
        ] {
            let err = auth.authenticate(header.as_deref()).unwrap_err();
            assert!(matches!(err, ServiceError::Unauthenticated(_)), "{header:?}: {err:?}");
        }
    }
}
