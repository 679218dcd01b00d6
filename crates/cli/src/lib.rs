//! The command-line client of a running gateway: `redress case …` drives cases and
//! `redress complaint …` submits, reads, withdraws, reclassifies and imports complaints by hand.
//! It speaks the public API with the generated clients, exactly as any other caller does; the
//! `redress` binary mounts [`CaseArgs`] and [`ComplaintArgs`] as those two subcommands.
//!
//! Every invocation makes one call and tells its outcome in the exit code: 0 done, 1 refused or
//! failed, 2 bad usage (input refused before any call; clap uses the same for its own errors).

mod case;
mod complaint;
mod import;
mod incident;
mod kb;
mod metrics;
mod output;
mod words;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use chrono::DateTime;
use clap::{Args, ValueEnum};
use prost_types::Timestamp;
use redress_platform::server::suite_endpoint;
use redress_platform::tls::{Tls, TlsConfig};
use redress_proto::redress::common::v1::{self as common, Grade};
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub use case::{CaseArgs, run as run_case};
pub use complaint::{ComplaintArgs, run as run_complaint};
pub use incident::{IncidentArgs, MentionArgs, run_incident, run_mention};
pub use kb::{KbArgs, run as run_kb};
pub use metrics::{MetricsArgs, run as run_metrics};
use output::Format;

/// Exit code of input refused before any call (clap uses the same for its own usage errors).
const EXIT_USAGE: u8 = 2;
/// Exit code of a call the gateway refused, or that failed.
const EXIT_FAILED: u8 = 1;

/// Where `redress dev` serves the gateway.
const DEFAULT_GATEWAY: &str = "http://127.0.0.1:50051";
/// Help heading of the options every subcommand takes.
const GLOBAL: &str = "Global options";

/// The options every subcommand takes: where the gateway is, who calls, how to print.
#[derive(Args)]
struct Global {
    /// Gateway address.
    #[arg(
        long,
        global = true,
        env = "REDRESS_GATEWAY",
        default_value = DEFAULT_GATEWAY,
        help_heading = GLOBAL
    )]
    gateway: String,
    /// Bearer token (required; `redress dev` prints one).
    #[arg(long, global = true, env = "REDRESS_TOKEN", hide_env_values = true, help_heading = GLOBAL)]
    token: Option<String>,
    /// CA certificates (PEM) an `https://` gateway's certificate must chain to, for a private
    /// CA; without it the public web PKI roots are trusted.
    #[arg(long, global = true, env = "REDRESS_CA_FILE", value_name = "PEM", help_heading = GLOBAL)]
    ca_file: Option<PathBuf>,
    /// How to print the result.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text, help_heading = GLOBAL)]
    output: Format,
}

/// A severity grade as the command line names it.
#[derive(Clone, Copy, ValueEnum)]
enum Severity {
    General,
    Important,
    Urgent,
    Major,
}

impl From<Severity> for Grade {
    fn from(grade: Severity) -> Self {
        match grade {
            Severity::General => Grade::General,
            Severity::Important => Grade::Important,
            Severity::Urgent => Grade::Urgent,
            Severity::Major => Grade::Major,
        }
    }
}

/// A channel as the command line names it.
#[derive(Clone, Copy, ValueEnum)]
enum Via {
    Counter,
    SelfService,
    Phone,
    Online,
    MobileApp,
    SocialMedia,
    Sms,
    Email,
    Letter,
    Visit,
    ThirdParty,
    RegulatorReferral,
    Other,
}

impl From<Via> for common::Channel {
    fn from(via: Via) -> Self {
        match via {
            Via::Counter => common::Channel::Counter,
            Via::SelfService => common::Channel::SelfService,
            Via::Phone => common::Channel::Phone,
            Via::Online => common::Channel::Online,
            Via::MobileApp => common::Channel::MobileApp,
            Via::SocialMedia => common::Channel::SocialMedia,
            Via::Sms => common::Channel::Sms,
            Via::Email => common::Channel::Email,
            Via::Letter => common::Channel::Letter,
            Via::Visit => common::Channel::Visit,
            Via::ThirdParty => common::Channel::ThirdParty,
            Via::RegulatorReferral => common::Channel::RegulatorReferral,
            Via::Other => common::Channel::Other,
        }
    }
}

/// `cases/{id}` (or `complaints/{id}`) from either the name or the bare id.
fn resource_name(collection: &str, arg: &str) -> String {
    let arg = arg.trim();
    if arg.starts_with(collection) { arg.to_owned() } else { format!("{collection}{arg}") }
}

/// An RFC 3339 instant (`2026-06-09T10:13:20+08:00`) as a protobuf timestamp.
fn parse_time(text: &str) -> Result<Timestamp, String> {
    let time = DateTime::parse_from_rfc3339(text.trim())
        .map_err(|e| format!("expected an RFC 3339 time such as 2026-06-09T10:13:20+08:00 ({e})"))?;
    let nanos = i32::try_from(time.timestamp_subsec_nanos()).map_err(|_| "leap seconds are not supported")?;
    Ok(Timestamp { seconds: time.timestamp(), nanos })
}

/// Adds the bearer token to every call.
#[derive(Clone)]
struct Bearer(AsciiMetadataValue);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A channel to the gateway that authenticates every call; any generated client wraps it.
type Authenticated = InterceptedService<Channel, Bearer>;

/// Why a command did not succeed.
enum Failure {
    /// Input refused before any call.
    Usage(String),
    /// The gateway answered with an error. `request_id` is that of a change, to retry it safely.
    Status { status: tonic::Status, request_id: Option<String> },
    /// Anything else (reading a file, writing the output).
    Other(String),
}

fn usage(message: impl Into<String>) -> Failure {
    Failure::Usage(message.into())
}

/// Tells how a command went: the error on stderr, and the exit code.
fn report(outcome: Result<ExitCode, Failure>, gateway: &str) -> ExitCode {
    match outcome {
        Ok(code) => code,
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(Failure::Status { status, request_id }) => {
            eprint!("{}", output::status(&status, gateway, request_id.as_deref()));
            ExitCode::from(EXIT_FAILED)
        }
        Err(Failure::Other(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Writes the printed result to stdout; a reader that went away (`| head`) is no error.
fn print(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::Other(format!("cannot write the output: {error}")))
        }
        _ => Ok(()),
    }
}

/// The gateway's URL: `http://` unless another scheme is given.
fn gateway_url(arg: &str) -> String {
    // An empty REDRESS_GATEWAY reaches here as "" rather than as the default.
    let gateway = Some(arg.trim()).filter(|g| !g.is_empty()).unwrap_or(DEFAULT_GATEWAY);
    if gateway.contains("://") { gateway.to_owned() } else { format!("http://{gateway}") }
}

/// An authenticated channel to the gateway; it connects on the first call, so input is checked
/// first. An `https://` gateway is reached over TLS (rustls), its certificate verified against
/// `ca_file` when given, else against the public web PKI roots.
fn connect(gateway: &str, token: Option<&str>, ca_file: Option<&Path>) -> Result<Authenticated, Failure> {
    let token = token.map(str::trim).filter(|t| !t.is_empty()).ok_or_else(|| {
        usage("a bearer token is required: --token <TOKEN> or REDRESS_TOKEN (`redress dev` prints one)")
    })?;
    let mut bearer: AsciiMetadataValue = format!("Bearer {token}")
        .parse()
        .map_err(|_| usage("the token must be printable ASCII without line breaks"))?;
    bearer.set_sensitive(true);
    let endpoint = suite_endpoint(gateway)
        .map_err(|e| usage(format!("--gateway {gateway:?} is not a valid URL: {e:#}")))?
        .with_timeout(Duration::from_secs(30));
    // A CA file (say from REDRESS_CA_FILE) is only used for an https:// gateway.
    let tls = if endpoint.is_https() { Some(gateway_tls(ca_file)?) } else { None };
    Ok(InterceptedService::new(endpoint.connect_lazy_with(tls), Bearer(bearer)))
}

/// What an `https://` gateway's certificate is verified against: the CA file given, or the
/// public web PKI roots.
fn gateway_tls(ca_file: Option<&Path>) -> Result<Tls, Failure> {
    let Some(path) = ca_file else {
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        return Tls::client_trusting(roots).map_err(|e| Failure::Other(format!("TLS: {e:#}")));
    };
    let config = TlsConfig { ca_file: path.display().to_string(), ..TlsConfig::default() };
    match Tls::load(&config) {
        Ok(Some(tls)) if tls.client_config().is_some() => Ok(tls),
        Ok(_) => Err(usage(format!("--ca-file {}: no CA certificate", path.display()))),
        Err(e) => Err(usage(format!("--ca-file {}: {e:#}", path.display()))),
    }
}

/// What a read answered, or the error.
fn read<T>(answer: Result<tonic::Response<T>, tonic::Status>) -> Result<T, Failure> {
    answer.map(tonic::Response::into_inner).map_err(|status| Failure::Status { status, request_id: None })
}

/// What a change answered, or the error with the request id to retry it with.
fn changed<T>(answer: Result<tonic::Response<T>, tonic::Status>, request_id: String) -> Result<T, Failure> {
    answer.map(tonic::Response::into_inner).map_err(|status| Failure::Status { status, request_id: Some(request_id) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_id_is_prefixed_and_a_name_kept() {
        assert_eq!(resource_name("cases/", "0199"), "cases/0199");
        assert_eq!(resource_name("cases/", "cases/0199"), "cases/0199");
        assert_eq!(resource_name("complaints/", " abc "), "complaints/abc");
    }

    #[test]
    fn the_gateway_defaults_to_http_and_to_where_dev_serves_it() {
        assert_eq!(gateway_url("127.0.0.1:50777"), "http://127.0.0.1:50777");
        assert_eq!(gateway_url("https://redress.example.com"), "https://redress.example.com");
        assert_eq!(gateway_url(" "), DEFAULT_GATEWAY);
    }

    #[test]
    fn times_are_rfc3339_with_an_offset() {
        assert_eq!(
            parse_time("2026-06-09T18:13:20.5+08:00"),
            Ok(Timestamp { seconds: 1_781_000_000, nanos: 500_000_000 })
        );
        assert_eq!(parse_time("2026-06-09T10:13:20Z"), Ok(Timestamp { seconds: 1_781_000_000, nanos: 0 }));
        for bad in ["2026-06-09", "2026-06-09T10:13:20", "yesterday", ""] {
            assert!(parse_time(bad).is_err(), "{bad:?}");
        }
    }
}
