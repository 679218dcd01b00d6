//! TLS on every hop: the gateway and a service with production TLS settings (certificates from
//! files, mutual TLS between them), and PostgreSQL with `sslmode=verify-full`.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use redress::{SuiteKeys, dev_principal};
use redress_gateway::{AuthConfig, DevToken, DevTokens, Gateway, GatewayConfig, Upstreams};
use redress_intake::{Intake, IntakeConfig, PiiConfig};
use redress_platform::config::Secret;
use redress_platform::db::DatabaseConfig;
use redress_platform::server::{ServerConfig, suite_endpoint};
use redress_platform::tls::{Tls, TlsConfig};
use redress_proto::redress::intake::v1::ListTaxonomiesRequest;
use redress_proto::redress::intake::v1::intake_service_client::IntakeServiceClient;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const TOKEN: &str = "tls-test-token";

/// A private CA issuing certificates for `localhost`/`127.0.0.1`, written as cert-manager
/// secrets are mounted (`tls.crt`, `tls.key`, `ca.crt`).
struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl Ca {
    fn new() -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "redress internal CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self { pem: cert.pem(), issuer: rcgen::Issuer::new(params, key) }
    }

    /// Writes a certificate named `name` with its key and the CA into `dir`.
    fn issue(&self, dir: &Path, name: &str) {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.extended_key_usages =
            vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("tls.crt"), cert.pem()).unwrap();
        std::fs::write(dir.join("tls.key"), key.serialize_pem()).unwrap();
        std::fs::write(dir.join("ca.crt"), &self.pem).unwrap();
    }
}

fn tls_in(dir: &Path, client_auth: bool) -> TlsConfig {
    TlsConfig { dir: dir.display().to_string(), client_auth, reload_interval_ms: 200, ..TlsConfig::default() }
}

fn served(tls: TlsConfig) -> ServerConfig {
    ServerConfig { listen_addr: "127.0.0.1:0".to_owned(), tls, ..ServerConfig::default() }
}

/// A caller's TLS: trusts `ca` and, when given, presents the certificate in `identity`.
fn caller(ca: &Path, identity: Option<&Path>) -> Tls {
    let config = match identity {
        Some(dir) => tls_in(dir, false),
        None => TlsConfig { ca_file: ca.display().to_string(), ..TlsConfig::default() },
    };
    Tls::load(&config).unwrap().unwrap()
}

async fn wait_serving(channel: tonic::transport::Channel, service: &str) {
    let mut health = HealthClient::new(channel);
    let started = Instant::now();
    loop {
        let request = HealthCheckRequest { service: service.to_owned() };
        let answer = health.check(request).await;
        if let Ok(response) = &answer
            && response.get_ref().status == 1
        {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{service} not serving over TLS: {answer:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_and_services_speak_tls_with_mutual_tls_between_them_and_refuse_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let certs = dir.path().join("certs");
    for name in ["intake", "gateway", "operator"] {
        ca.issue(&certs.join(name), name);
    }
    let ca_file = certs.join("gateway").join("ca.crt");
    let shutdown = CancellationToken::new();
    let keys = SuiteKeys::in_dir(&dir.path().join("keys")).unwrap();

    let intake = Intake::build(
        IntakeConfig {
            server: served(tls_in(&certs.join("intake"), true)),
            database: DatabaseConfig {
                url: format!("sqlite://{}", dir.path().join("intake.db").display()),
                max_connections: 4,
            },
            pii: PiiConfig::generate(),
            ..IntakeConfig::default()
        },
        keys.service_auth(redress_intake::SERVICE_NAME).unwrap(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let intake_port = intake.local_addr().port();
    let nowhere = "https://localhost:9".to_owned();
    let gateway = Gateway::build(
        GatewayConfig {
            server: served(tls_in(&certs.join("gateway"), false)),
            upstreams: Upstreams {
                intake: format!("https://localhost:{intake_port}"),
                case_workflow: nowhere.clone(),
                knowledge_base: nowhere.clone(),
                escalation: nowhere.clone(),
                quality_metrics: nowhere,
            },
            auth: AuthConfig {
                dev_tokens: vec![DevToken { token: Secret::new(TOKEN), principal: dev_principal() }],
                ..AuthConfig::default()
            },
            ..GatewayConfig::default()
        },
        keys.gateway().unwrap(),
        DevTokens::Allowed,
        shutdown.clone(),
    )
    .await
    .unwrap();
    let gateway_port = gateway.local_addr().port();
    let intake_task = tokio::spawn(intake.run_until_stopped());
    let gateway_task = tokio::spawn(gateway.run_until_stopped());

    // A service requires a client certificate from the CA: with one it answers.
    let to_intake = suite_endpoint(&format!("https://localhost:{intake_port}")).unwrap();
    let as_service = caller(&ca_file, Some(&certs.join("operator")));
    wait_serving(to_intake.connect_lazy_with(Some(as_service)), "redress.intake.v1.IntakeService").await;

    // An outside caller reaches intake through the gateway with only the CA: the gateway's hop
    // to intake is itself mutual TLS (intake refuses anything else, as checked below).
    let gateway_url = format!("https://localhost:{gateway_port}");
    let channel = suite_endpoint(&gateway_url).unwrap().connect_lazy_with(Some(caller(&ca_file, None)));
    wait_serving(channel.clone(), "").await;
    let mut request = tonic::Request::new(ListTaxonomiesRequest {});
    request.metadata_mut().insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let taxonomies = IntakeServiceClient::new(channel).list_taxonomies(request).await.unwrap().into_inner();
    assert!(!taxonomies.taxonomies.is_empty(), "intake answered through the gateway over TLS");

    // The command line reaches the https gateway with the private CA given (--ca-file or
    // REDRESS_CA_FILE); without it the public roots do not vouch for the gateway, and a CA file
    // that holds no certificate is a usage error.
    let cli = |ca: Option<&Path>| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_redress"));
        command.args(["complaint", "taxonomies", "--gateway", &gateway_url, "--token", TOKEN]);
        command.env_remove("REDRESS_CA_FILE").env_remove("REDRESS_GATEWAY").env_remove("REDRESS_TOKEN");
        if let Some(ca) = ca {
            command.arg("--ca-file").arg(ca);
        }
        command.output()
    };
    let listed = cli(Some(&ca_file)).await.unwrap();
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    assert!(!listed.stdout.is_empty());
    let unverified = cli(None).await.unwrap();
    assert_eq!(unverified.status.code(), Some(1), "{}", String::from_utf8_lossy(&unverified.stderr));
    let stranger_ca = dir.path().join("stranger-ca.crt");
    std::fs::write(&stranger_ca, Ca::new().pem).unwrap();
    assert_eq!(cli(Some(&stranger_ca)).await.unwrap().status.code(), Some(1));
    let empty = dir.path().join("empty.crt");
    std::fs::write(&empty, "").unwrap();
    let bad = cli(Some(&empty)).await.unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", String::from_utf8_lossy(&bad.stderr));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--ca-file"));
    let mut env_ca = tokio::process::Command::new(env!("CARGO_BIN_EXE_redress"));
    env_ca.args(["complaint", "taxonomies", "--gateway", &gateway_url]).env("REDRESS_TOKEN", TOKEN);
    let by_env = env_ca.env("REDRESS_CA_FILE", &ca_file).output().await.unwrap();
    assert!(by_env.status.success(), "{}", String::from_utf8_lossy(&by_env.stderr));

    // Without a client certificate a service refuses the connection.
    let anonymous = to_intake.connect_lazy_with(Some(caller(&ca_file, None)));
    let refused = HealthClient::new(anonymous).check(HealthCheckRequest::default()).await;
    assert!(refused.is_err(), "intake answered a caller without a client certificate");

    // A plaintext (h2c) client gets nothing from either.
    for port in [gateway_port, intake_port] {
        let plain = suite_endpoint(&format!("http://localhost:{port}")).unwrap().connect_lazy_with(None);
        let refused = tokio::time::timeout(
            Duration::from_secs(10),
            HealthClient::new(plain).check(HealthCheckRequest::default()),
        )
        .await
        .expect("a plaintext call is refused, not left hanging");
        assert!(refused.is_err(), "port {port} answered plaintext");
    }

    // A certificate from another CA is not trusted either way.
    let stranger = Ca::new();
    stranger.issue(&dir.path().join("stranger"), "stranger");
    let untrusted = suite_endpoint(&gateway_url)
        .unwrap()
        .connect_lazy_with(Some(caller(&dir.path().join("stranger").join("ca.crt"), None)));
    assert!(HealthClient::new(untrusted).check(HealthCheckRequest::default()).await.is_err());

    shutdown.cancel();
    intake_task.await.unwrap().unwrap();
    gateway_task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let served_dir = dir.path().join("gateway");
    ca.issue(&served_dir, "first");
    let tls = Tls::load(&tls_in(&served_dir, false)).unwrap().unwrap();
    let before = tls.server_config().unwrap();
    assert!(!tls.reload().unwrap(), "unchanged files are not reloaded");

    // A broken renewal keeps the certificate in use.
    std::fs::write(served_dir.join("tls.crt"), "not a certificate").unwrap();
    assert!(tls.reload().is_err());
    assert!(std::sync::Arc::ptr_eq(&before, &tls.server_config().unwrap()));

    // A good one replaces it, and a watched configuration picks it up by itself.
    ca.issue(&served_dir, "second");
    let watched = Tls::load_watched(&tls_in(&served_dir, false)).unwrap().unwrap();
    let first = watched.server_config().unwrap();
    ca.issue(&served_dir, "third");
    let started = Instant::now();
    while std::sync::Arc::ptr_eq(&first, &watched.server_config().unwrap()) {
        assert!(started.elapsed() < Duration::from_secs(10), "renewed certificate not picked up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(tls.reload().unwrap());
}

#[tokio::test]
async fn postgres_connects_with_sslmode_verify_full() {
    let Ok(url) = std::env::var(redress_platform::testing::POSTGRES_URL_ENV) else {
        eprintln!("skipped: PostgreSQL verify-full ({} is not set)", redress_platform::testing::POSTGRES_URL_ENV);
        return;
    };
    let plain = sqlx::PgPool::connect(&url).await.unwrap();
    let ssl: String = sqlx::query_scalar("SHOW ssl").fetch_one(&plain).await.unwrap();
    assert_eq!(ssl, "on", "the local PostgreSQL has TLS on (.ci/postgres turns it on)");
    let data_dir: String = sqlx::query_scalar("SHOW data_directory").fetch_one(&plain).await.unwrap();
    let ca = Path::new(&data_dir).join("redress-ca.crt");
    let separator = if url.contains('?') { '&' } else { '?' };
    let verified = format!("{url}{separator}sslmode=verify-full&sslrootcert={}", ca.display());
    let pool =
        redress_platform::db::connect_postgres(&DatabaseConfig { url: verified, max_connections: 2 }).await.unwrap();
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetch_one(&pool).await.unwrap();
    assert!(encrypted, "the connection is encrypted");

    // verify-full checks the server against the CA: another CA is refused.
    let stranger = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(stranger.path(), Ca::new().pem).unwrap();
    let untrusted = format!("{url}{separator}sslmode=verify-full&sslrootcert={}", stranger.path().display());
    assert!(
        redress_platform::db::connect_postgres(&DatabaseConfig { url: untrusted, max_connections: 2 }).await.is_err()
    );
}
