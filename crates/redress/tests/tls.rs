//! TLS on every hop: the gateway and a service with production TLS settings (certificates from
//! files, mutual TLS between them), and PostgreSQL with `sslmode=verify-full`.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use redress::{SuiteKeys, dev_principal};
use redress_case_workflow::{AuditConfig, CaseWorkflow, CaseWorkflowConfig};
use redress_gateway::{AuthConfig, DevToken, DevTokens, Gateway, GatewayConfig, Upstreams};
use redress_intake::{Intake, IntakeConfig, PiiConfig};
use redress_platform::config::Secret;
use redress_platform::db::DatabaseConfig;
use redress_platform::principal::{Permission, ServiceCredentials};
use redress_platform::server::{GrpcServer, ServerConfig, suite_endpoint};
use redress_platform::signing::{GATEWAY, SigningKey};
use redress_platform::tls::{Tls, TlsConfig};
use redress_proto::redress::case::v1::ListCasesRequest;
use redress_proto::redress::case::v1::case_service_client::CaseServiceClient;
use redress_proto::redress::intake::v1::intake_service_client::IntakeServiceClient;
use redress_proto::redress::intake::v1::{ListTaxonomiesRequest, SubmitComplaintRequest};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const TOKEN: &str = "tls-test-token";

/// The services as `redress serve` names them; the gateway last.
const SERVED: [&str; 6] = ["intake", "case-workflow", "escalation", "knowledge-base", "quality-metrics", GATEWAY];

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
                ..Default::default()
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
        let mut command = Command::new(env!("CARGO_BIN_EXE_redress"));
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
    let mut env_ca = Command::new(env!("CARGO_BIN_EXE_redress"));
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
    let pool = redress_platform::db::connect_postgres(&DatabaseConfig {
        url: verified,
        max_connections: 2,
        ..Default::default()
    })
    .await
    .unwrap();
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetch_one(&pool).await.unwrap();
    assert!(encrypted, "the connection is encrypted");

    // verify-full checks the server against the CA: another CA is refused.
    let stranger = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(stranger.path(), Ca::new().pem).unwrap();
    let untrusted = format!("{url}{separator}sslmode=verify-full&sslrootcert={}", stranger.path().display());
    assert!(
        redress_platform::db::connect_postgres(&DatabaseConfig {
            url: untrusted,
            max_connections: 2,
            ..Default::default()
        })
        .await
        .is_err()
    );
}

/// Services embedded in one process (as `redress dev` runs them) call the others each with its
/// own TLS: a service bound later with a certificate from another CA does not change what
/// case-workflow follows intake's feed with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_of_a_process_calls_with_its_own_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let certs = dir.path().join("certs");
    for name in ["intake", "case-workflow", "operator"] {
        ca.issue(&certs.join(name), name);
    }
    let outside = Ca::new();
    outside.issue(&certs.join("outside"), "outside");
    let shutdown = CancellationToken::new();
    let keys = SuiteKeys::in_dir(&dir.path().join("keys")).unwrap();
    let sqlite = |name: &str| DatabaseConfig {
        url: format!("sqlite://{}", dir.path().join(format!("{name}.db")).display()),
        max_connections: 4,
        ..Default::default()
    };
    let intake = Intake::build(
        IntakeConfig {
            server: served(tls_in(&certs.join("intake"), true)),
            database: sqlite("intake"),
            pii: PiiConfig::generate(),
            ..IntakeConfig::default()
        },
        keys.service_auth(redress_intake::SERVICE_NAME).unwrap(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let intake_url = format!("https://localhost:{}", intake.local_addr().port());
    let case_workflow = CaseWorkflow::build(
        CaseWorkflowConfig {
            server: served(tls_in(&certs.join("case-workflow"), true)),
            database: sqlite("case-workflow"),
            intake_url: intake_url.clone(),
            audit: AuditConfig::generate(),
            ..CaseWorkflowConfig::default()
        },
        keys.service_auth(redress_case_workflow::SERVICE_NAME).unwrap(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let case_url = format!("https://localhost:{}", case_workflow.local_addr().port());
    // Bound last, with a certificate and CA that intake does not know.
    let other = GrpcServer::bind(&served(tls_in(&certs.join("outside"), false)), &[]).await.unwrap();
    assert!(other.tls_for_calls().is_some());
    let intake_task = tokio::spawn(intake.run_until_stopped());
    let case_task = tokio::spawn(case_workflow.run_until_stopped());

    let operator = caller(&certs.join("operator").join("ca.crt"), Some(&certs.join("operator")));
    let gateway_key = std::sync::Arc::new(keys.gateway().unwrap());
    let as_gateway = |audience: &str| {
        let credentials = ServiceCredentials::new(gateway_key.clone(), dev_principal(), audience);
        move |mut request: tonic::Request<()>| {
            credentials.apply(&mut request).map_err(tonic::Status::from)?;
            Ok(request)
        }
    };
    let to_intake = suite_endpoint(&intake_url).unwrap().connect_lazy_with(Some(operator.clone()));
    wait_serving(to_intake.clone(), redress_proto::services::INTAKE).await;
    let submit = SubmitComplaintRequest {
        request_id: "own-tls-1".to_owned(),
        complaint: Some(redress_intake::testing::complaint("理财产品赎回款迟迟未到账。")),
    };
    let complaint = IntakeServiceClient::with_interceptor(to_intake, as_gateway("intake"))
        .submit_complaint(submit)
        .await
        .unwrap()
        .into_inner()
        .complaint
        .unwrap();
    let to_cases = suite_endpoint(&case_url).unwrap().connect_lazy_with(Some(operator));
    let mut cases = CaseServiceClient::with_interceptor(to_cases, as_gateway("case-workflow"));
    let started = Instant::now();
    loop {
        let request = ListCasesRequest { complaint: complaint.name.clone(), ..Default::default() };
        if let Ok(found) = cases.list_cases(request).await
            && !found.into_inner().cases.is_empty()
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "case-workflow did not follow intake over its own TLS");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    shutdown.cancel();
    intake_task.await.unwrap().unwrap();
    case_task.await.unwrap().unwrap();
    drop(other);
}

/// The suite as deployed: one `redress serve` process per service, each serving TLS with its
/// own certificate from the private CA (the services require client certificates, the
/// gateway does not), calling the others over `https://` with mutual TLS, and reaching
/// PostgreSQL with `sslmode=verify-full`. A complaint submitted through the gateway opens its
/// case; plaintext callers and callers that do not trust the CA get nothing from any port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_served_one_process_per_service_speaks_tls_on_every_hop() {
    let test = "the_suite_served_one_process_per_service_speaks_tls_on_every_hop";
    // A database per service; without a server the test says it is skipped (the shared helper
    // prints the `skipped:` line).
    let mut urls = Vec::new();
    for _ in &SERVED[..5] {
        let Some(url) = redress_platform::testing::fresh_postgres_database(test).await.unwrap() else { return };
        urls.push(url);
    }
    let server = std::env::var(redress_platform::testing::POSTGRES_URL_ENV).unwrap();
    let dir = tempfile::tempdir().unwrap();

    // PostgreSQL's own CA (.ci/postgres made it and turned TLS on), for verify-full.
    let admin = sqlx::PgPool::connect(&server).await.unwrap();
    let ssl: String = sqlx::query_scalar("SHOW ssl").fetch_one(&admin).await.unwrap();
    assert_eq!(ssl, "on", "the local PostgreSQL has TLS on (.ci/postgres turns it on)");
    let data_dir: String = sqlx::query_scalar("SHOW data_directory").fetch_one(&admin).await.unwrap();
    let postgres_ca = dir.path().join("postgres-ca.crt");
    std::fs::copy(Path::new(&data_dir).join("redress-ca.crt"), &postgres_ca).unwrap();
    let mut databases = std::collections::BTreeMap::new();
    for (service, url) in SERVED.iter().zip(urls) {
        let name = url.rsplit('/').next().unwrap().split('?').next().unwrap().to_owned();
        let separator = if url.contains('?') { '&' } else { '?' };
        let verified = format!("{url}{separator}sslmode=verify-full&sslrootcert={}", postgres_ca.display());
        databases.insert(*service, (name, verified));
    }

    // The suite's CA, a certificate per service, and one for an operator calling a service
    // directly.
    let ca = Ca::new();
    let certs = dir.path().join("certs");
    for name in SERVED.iter().chain(&["operator"]) {
        ca.issue(&certs.join(name), name);
    }
    let ca_file = certs.join("gateway").join("ca.crt");

    // Each process binds the port picked for it here, so that every service knows the others'
    // URLs before any of them starts (case-workflow and the knowledge base call each other).
    let ports: std::collections::BTreeMap<&str, u16> = {
        let listeners: Vec<_> =
            SERVED.iter().map(|s| (*s, std::net::TcpListener::bind("127.0.0.1:0").unwrap())).collect();
        listeners.iter().map(|(s, l)| (*s, l.local_addr().unwrap().port())).collect()
    };
    let url = |service: &str| format!("https://localhost:{}", ports[service]);

    let keys: std::collections::BTreeMap<&str, SigningKey> =
        redress::SIGNERS.iter().map(|s| (*s, SigningKey::generate(s))).collect();
    let index_key = "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=";
    let token_file = dir.path().join("gateway.toml");
    let permissions: Vec<String> = Permission::ALL.iter().map(|p| format!("{:?}", p.as_str())).collect();
    std::fs::write(
        &token_file,
        format!(
            "[[auth.dev_tokens]]\ntoken = \"{TOKEN}\"\nprincipal = {{ subject = \"dev\", roles = [\"admin\"], \
             org_unit = \"/\", permissions = [{}] }}\n",
            permissions.join(", ")
        ),
    )
    .unwrap();

    let mut children = Vec::new();
    for service in SERVED {
        let mut command = Command::new(env!("CARGO_BIN_EXE_redress"));
        command
            .args(["serve", service])
            .env("REDRESS_SERVER__LISTEN_ADDR", format!("127.0.0.1:{}", ports[service]))
            .env("REDRESS_SERVER__TLS__DIR", certs.join(service))
            .env("REDRESS_SERVER__TLS__CLIENT_AUTH", (service != GATEWAY).to_string())
            .env("REDRESS_TELEMETRY__METRICS_ADDR", "")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join(format!("{service}.log"))).unwrap())
            .kill_on_drop(true);
        if service == GATEWAY {
            command
                .arg("--allow-dev-tokens")
                .arg("--config")
                .arg(&token_file)
                .env("REDRESS_SIGNING_KEY", keys[GATEWAY].to_pem())
                .env("REDRESS_UPSTREAMS__INTAKE", url("intake"))
                .env("REDRESS_UPSTREAMS__CASE_WORKFLOW", url("case-workflow"))
                .env("REDRESS_UPSTREAMS__ESCALATION", url("escalation"))
                .env("REDRESS_UPSTREAMS__KNOWLEDGE_BASE", url("knowledge-base"))
                .env("REDRESS_UPSTREAMS__QUALITY_METRICS", url("quality-metrics"));
        } else {
            command
                .env("REDRESS_DATABASE__URL", &databases[service].1)
                .env("REDRESS_AUTH__SIGNING_KEY", keys[service].to_pem())
                .env("REDRESS_AUTH__GATEWAY_PUBLIC_KEY", keys[GATEWAY].public_key().to_pem())
                .env("REDRESS_INTAKE_URL", url("intake"))
                .env("REDRESS_CASE_WORKFLOW_URL", url("case-workflow"))
                .env("REDRESS_ESCALATION_URL", url("escalation"))
                .env("REDRESS_KNOWLEDGE_BASE_URL", url("knowledge-base"))
                .env("REDRESS_INDEX_DIR", dir.path().join("knowledge-base-index"))
                .env("REDRESS_PII__ACTIVE_KEY_ID", "k1")
                .env("REDRESS_PII__MASTER_KEYS__K1", "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=")
                .env("REDRESS_PII__INDEX_KEY", index_key)
                .env("REDRESS_AUDIT__ACTIVE_KEY_ID", "k1")
                .env("REDRESS_AUDIT__KEYS__K1", "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=");
            for (_, caller, allowed) in redress::service_callers().into_iter().filter(|(to, _, _)| *to == service) {
                let setting = format!("REDRESS_AUTH__CALLERS__{}", caller.replace('-', "_").to_uppercase());
                let allowed: Vec<&str> = allowed.iter().map(|p| p.as_str()).collect();
                command
                    .env(format!("{setting}__PUBLIC_KEY"), keys[caller].public_key().to_pem())
                    .env(format!("{setting}__PERMISSIONS"), allowed.join(","));
            }
        }
        children.push(command.spawn().unwrap());
    }
    let logs = || {
        SERVED
            .iter()
            .map(|s| {
                let log = std::fs::read_to_string(dir.path().join(format!("{s}.log"))).unwrap_or_default();
                format!("--- {s}\n{log}")
            })
            .collect::<String>()
    };

    // Every service serves TLS to a caller with a client certificate from the CA, and the
    // gateway sees every upstream SERVING over its own mutual-TLS hops.
    let operator = caller(&ca_file, Some(&certs.join("operator")));
    let started = Instant::now();
    let serving = |channel: tonic::transport::Channel, service: &'static str| async move {
        let request = HealthCheckRequest { service: service.to_owned() };
        HealthClient::new(channel).check(request).await.is_ok_and(|r| r.get_ref().status == 1)
    };
    for service in &SERVED[..5] {
        let channel = suite_endpoint(&url(service)).unwrap().connect_lazy_with(Some(operator.clone()));
        while !serving(channel.clone(), "").await {
            assert!(started.elapsed() < Duration::from_secs(45), "{service} not serving over TLS:\n{}", logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let gateway = suite_endpoint(&url(GATEWAY)).unwrap().connect_lazy_with(Some(caller(&ca_file, None)));
    for service in [
        redress_proto::services::INTAKE,
        redress_proto::services::CASE,
        redress_proto::services::ESCALATION,
        redress_proto::services::KNOWLEDGE,
        redress_proto::services::METRICS,
    ] {
        while !serving(gateway.clone(), service).await {
            assert!(started.elapsed() < Duration::from_secs(45), "{service} not serving via the gateway:\n{}", logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // A complaint submitted through the gateway reaches intake, whose feed case-workflow
    // follows over TLS; the case it opens is read back through the gateway.
    let with_token = |mut request: tonic::Request<()>| {
        request.metadata_mut().insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
        Ok::<_, tonic::Status>(request)
    };
    let mut intake = IntakeServiceClient::with_interceptor(gateway.clone(), with_token);
    let submit = SubmitComplaintRequest {
        request_id: "tls-suite-1".to_owned(),
        complaint: Some(redress_intake::testing::complaint("信用卡年费未经同意被扣收。")),
    };
    let complaint = intake.submit_complaint(submit).await.unwrap().into_inner().complaint.unwrap();
    let mut cases = CaseServiceClient::with_interceptor(gateway.clone(), with_token);
    let case = loop {
        let request = ListCasesRequest { complaint: complaint.name.clone(), ..Default::default() };
        if let Some(case) = cases.list_cases(request).await.unwrap().into_inner().cases.pop() {
            break case;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no case opened:\n{}", logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(case.complaint, complaint.name);

    // Every service's connections to its database are encrypted.
    for (service, (database, _)) in &databases {
        let (connections, encrypted): (i64, bool) = sqlx::query_as(
            "SELECT count(*), coalesce(bool_and(s.ssl), false) FROM pg_stat_ssl s \
             JOIN pg_stat_activity a USING (pid) WHERE a.datname = $1",
        )
        .bind(database)
        .fetch_one(&admin)
        .await
        .unwrap();
        assert!(connections > 0 && encrypted, "{service}: {connections} connections, all encrypted: {encrypted}");
    }

    // Refused on every port: plaintext (h2c), a caller trusting another CA (with that CA's
    // certificate), and on the services a caller without a client certificate.
    let stranger = Ca::new();
    stranger.issue(&dir.path().join("stranger"), "stranger");
    let untrusting = caller(&dir.path().join("stranger").join("ca.crt"), Some(&dir.path().join("stranger")));
    for service in SERVED {
        let port = ports[service];
        let plain = suite_endpoint(&format!("http://localhost:{port}")).unwrap().connect_lazy_with(None);
        let refused = tokio::time::timeout(
            Duration::from_secs(10),
            HealthClient::new(plain).check(HealthCheckRequest::default()),
        )
        .await
        .expect("a plaintext call is refused, not left hanging");
        assert!(refused.is_err(), "{service} answered plaintext");
        let foreign = suite_endpoint(&url(service)).unwrap().connect_lazy_with(Some(untrusting.clone()));
        let refused = HealthClient::new(foreign).check(HealthCheckRequest::default()).await;
        assert!(refused.is_err(), "{service} was trusted by a caller that trusts another CA");
        if service != GATEWAY {
            let anonymous = suite_endpoint(&url(service)).unwrap().connect_lazy_with(Some(caller(&ca_file, None)));
            let refused = HealthClient::new(anonymous).check(HealthCheckRequest::default()).await;
            assert!(refused.is_err(), "{service} answered a caller without a client certificate");
        }
    }

    for child in &children {
        let pid = child.id().unwrap();
        Command::new("kill").args(["-TERM", &pid.to_string()]).status().await.unwrap();
    }
    for (service, mut child) in SERVED.into_iter().zip(children) {
        let status = tokio::time::timeout(Duration::from_secs(20), child.wait()).await.unwrap().unwrap();
        assert!(status.success(), "{service} stopped with {status}:\n{}", logs());
    }
}
