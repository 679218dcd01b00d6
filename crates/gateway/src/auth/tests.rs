use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{EncodingKey, Header};
use redress_platform::signing::{GATEWAY, Verifier};

use super::*;

const SECRET: &[u8] = b"a-shared-secret-of-enough-length!!";

fn config() -> AuthConfig {
    AuthConfig {
        jwt_issuer: "https://idp.example".to_owned(),
        jwt_audience: "redress".to_owned(),
        jwt_hs256_secret: Secret::new(std::str::from_utf8(SECRET).unwrap()),
        ..AuthConfig::default()
    }
}

fn dev_config() -> AuthConfig {
    AuthConfig {
        dev_tokens: vec![DevToken {
            token: Secret::new("dev-token"),
            principal: Principal { subject: "dev".to_owned(), ..Principal::default() },
        }],
        ..config()
    }
}

fn handler_permissions() -> Vec<String> {
    let mut p = default_roles()["handler"].clone();
    p.sort();
    p
}

fn principal() -> Principal {
    Principal {
        subject: "user:zhang".to_owned(),
        roles: vec!["handler".to_owned()],
        org_unit: "institutions/acme/branches/sh".to_owned(),
        department: String::new(),
        permissions: handler_permissions(),
        staff_id: String::new(),
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn hs256(claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(SECRET)).unwrap()
}

fn jwt(iss: &str, exp_in: i64) -> String {
    jwt_as(iss, exp_in, "user:zhang", "handler")
}

fn jwt_as(iss: &str, exp_in: i64, sub: &str, role: &str) -> String {
    jwt_in(iss, exp_in, sub, role, "institutions/acme/branches/sh")
}

fn jwt_in(iss: &str, exp_in: i64, sub: &str, role: &str, org_unit: &str) -> String {
    hs256(&serde_json::json!({
        "sub": sub, "iss": iss, "aud": "redress", "exp": now() + exp_in,
        "roles": [role], "org_unit": org_unit,
    }))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The gateway's key, an authenticator signing with it, and intake's verifier of it.
fn gateway(config: &AuthConfig, dev: DevTokens) -> (Authenticator, Verifier) {
    let key = SigningKey::generate(GATEWAY);
    let verifier = Verifier::new("intake", Some(key.public_key()));
    (Authenticator::new(config, key, dev).unwrap(), verifier)
}

fn forwarded(auth: &Authenticator, verifier: &Verifier, token: &str) -> Principal {
    let signed = auth.authenticate(Some(&bearer(token)), "intake").unwrap();
    (*verifier.verify(signed.to_str().unwrap()).unwrap()).clone()
}

#[test]
fn callers_become_principals_signed_for_one_service() {
    let (auth, intake) = gateway(&dev_config(), DevTokens::Allowed);
    assert_eq!(forwarded(&auth, &intake, &jwt("https://idp.example", 600)), principal());
    assert_eq!(forwarded(&auth, &intake, "dev-token").subject, "dev");
    // Each call gets its own token, for the service it goes to.
    let signed = auth.authenticate(Some(&bearer("dev-token")), "case-workflow").unwrap();
    assert!(intake.verify(signed.to_str().unwrap()).is_err());
}

#[test]
fn without_development_mode_dev_tokens_are_refused() {
    let err = Authenticator::new(&dev_config(), SigningKey::generate(GATEWAY), DevTokens::Refused)
        .err()
        .expect("dev tokens refused");
    assert!(format!("{err:#}").contains("development mode"), "{err:#}");
    // JWT alone is fine in production.
    assert!(Authenticator::new(&config(), SigningKey::generate(GATEWAY), DevTokens::Refused).is_ok());
}

/// The employee id and department reach the services with the principal: conflict-of-interest
/// checks (回避) and department checks use them.
#[test]
fn staff_id_and_department_claims_travel_with_the_principal() {
    let (auth, intake) = gateway(&config(), DevTokens::Refused);
    let token = hs256(&serde_json::json!({
        "sub": "user:zhang", "iss": "https://idp.example", "aud": "redress", "exp": now() + 600,
        "org_unit": "institutions/acme", "staff_id": " E1001 ", "department": " cards ",
    }));
    let p = forwarded(&auth, &intake, &token);
    assert_eq!((p.staff_id.as_str(), p.department.as_str()), ("E1001", "cards"));
    // Without the claims there are none.
    let p = forwarded(&auth, &intake, &jwt("https://idp.example", 600));
    assert_eq!((p.staff_id.as_str(), p.department.as_str()), ("", ""));
}

#[test]
fn roles_map_to_permissions_and_a_permissions_claim_is_ignored() {
    let mut config = config();
    config.roles.insert("reviewer".to_owned(), vec!["knowledge.read".to_owned(), "knowledge.review".to_owned()]);
    let (auth, intake) = gateway(&config, DevTokens::Refused);
    let token = hs256(&serde_json::json!({
        "sub": "user:li", "iss": "https://idp.example", "aud": "redress", "exp": now() + 600,
        "org_unit": "institutions/acme", "roles": ["auditor", "reviewer", "no-such-role"],
        "permissions": ["pii.manage"],
    }));
    let p = forwarded(&auth, &intake, &token);
    let mut expected: Vec<String> = [&default_roles()["auditor"][..], &["knowledge.review".to_owned()]].concat();
    expected.sort();
    expected.dedup();
    assert_eq!(p.permissions, expected);
    assert!(!p.has(Permission::PiiManage));
    // Only compliance reads personal information in clear; an administrator does not.
    let roles = default_roles();
    assert!(roles["compliance"].contains(&"pii.manage".to_owned()));
    assert!(!roles["admin"].iter().any(|p| p.starts_with("pii.")));
    assert!(roles["senior_manager"].contains(&"cases.extend.special".to_owned()));
    assert!(!roles["department_head"].contains(&"cases.extend.special".to_owned()));
    // A configured role naming an unknown permission stops the gateway.
    let mut bad = AuthConfig::default();
    bad.roles.insert("x".to_owned(), vec!["cases.everything".to_owned()]);
    bad.jwt_hs256_secret = config.jwt_hs256_secret.clone();
    bad.jwt_issuer = "i".to_owned();
    bad.jwt_audience = "a".to_owned();
    assert!(Authenticator::new(&bad, SigningKey::generate(GATEWAY), DevTokens::Refused).is_err());
}

#[test]
fn a_claimed_unit_is_taken_in_its_canonical_spelling() {
    let (auth, intake) = gateway(&config(), DevTokens::Refused);
    let token = jwt_in("https://idp.example", 600, "user:zhang", "handler", "/Institutions/ACME/branches/sh/");
    assert_eq!(forwarded(&auth, &intake, &token).org_unit, "institutions/acme/branches/sh");
    let token = jwt_in("https://idp.example", 600, "user:zhang", "handler", "acme");
    assert!(matches!(auth.authenticate(Some(&bearer(&token)), "intake"), Err(ServiceError::Unauthenticated(_))));
}

#[test]
fn bad_callers_are_unauthenticated() {
    let (auth, _) = gateway(&dev_config(), DevTokens::Allowed);
    for header in [
        None,
        Some("Bearer ".to_owned()),
        Some("Basic abc".to_owned()),
        Some("Bearer nope".to_owned()),
        Some(bearer(&jwt("https://evil.example", 600))),
        Some(bearer(&jwt("https://idp.example", -600))),
        // A caller posing as a service of the suite (which reads every institution's feed).
        Some(bearer(&jwt_as("https://idp.example", 600, "service:case-workflow", "handler"))),
        Some(bearer(&jwt_as("https://idp.example", 600, "user:zhang", "service"))),
    ] {
        let err = auth.authenticate(header.as_deref(), "intake").unwrap_err();
        assert!(matches!(err, ServiceError::Unauthenticated(_)), "{header:?}: {err:?}");
    }
}

/// An Ed25519 key of the identity provider: its private key and its JWK named `kid`.
fn idp_key(kid: &str) -> (EncodingKey, Jwk) {
    let pem = SigningKey::generate("idp").to_pem();
    let key = EncodingKey::from_ed_pem(pem.as_bytes()).unwrap();
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::EdDSA).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    (key, jwk)
}

static NONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn idp_token(key: &EncodingKey, kid: &str) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    let claims = serde_json::json!({
        "sub": "user:zhang", "iss": "https://idp.example", "aud": "redress", "exp": now() + 600,
        "roles": ["handler"], "org_unit": "institutions/acme/branches/sh",
        // Each token its own, so none is answered from the verified-caller cache.
        "nonce": NONCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    });
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

#[test]
fn jwks_keys_are_chosen_by_kid_and_rotate_with_the_file() {
    let path = std::env::temp_dir().join(format!("redress-jwks-{}-{}.json", std::process::id(), now()));
    let write = |keys: Vec<Jwk>| std::fs::write(&path, serde_json::to_string(&JwkSet { keys }).unwrap()).unwrap();
    let ((k1, jwk1), (k2, jwk2)) = (idp_key("k1"), idp_key("k2"));
    write(vec![jwk1]);
    let config = AuthConfig {
        jwks_file: path.display().to_string(),
        jwks_refresh_secs: 1,
        jwt_hs256_secret: Secret::default(),
        ..config()
    };
    let (auth, intake) = gateway(&config, DevTokens::Refused);
    assert_eq!(forwarded(&auth, &intake, &idp_token(&k1, "k1")), principal());
    // A token naming a key the set lacks, or a known kid with another key's signature: refused.
    assert!(auth.authenticate(Some(&bearer(&idp_token(&k2, "k2"))), "intake").is_err());
    assert!(auth.authenticate(Some(&bearer(&idp_token(&k2, "k1"))), "intake").is_err());
    // Rotation: k2 replaces k1 in the file, and is used once the file is read again.
    write(vec![jwk2]);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(forwarded(&auth, &intake, &idp_token(&k2, "k2")), principal());
    assert!(auth.authenticate(Some(&bearer(&idp_token(&k1, "k1"))), "intake").is_err(), "k1 is retired");
    // Only one way of checking caller tokens at a time.
    let both = AuthConfig { jwt_hs256_secret: Secret::new("x".repeat(40)), ..config };
    assert!(Authenticator::new(&both, SigningKey::generate(GATEWAY), DevTokens::Refused).is_err());
    std::fs::remove_file(&path).unwrap();
}
