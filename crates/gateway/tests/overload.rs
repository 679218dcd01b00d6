//! Overload at the gateway: callers and institutions over their request rates are refused with
//! RESOURCE_EXHAUSTED and when to retry while others are served, and a request message over the
//! limit is refused before it is forwarded.

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use redress_gateway::{AuthConfig, DevToken, DevTokens, Gateway, GatewayConfig, RateLimits, Upstreams};
use redress_platform::Principal;
use redress_platform::config::Secret;
use redress_platform::server::{GrpcServer, ServerConfig};
use redress_platform::signing::{GATEWAY, SigningKey};
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::service::Routes;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_prost::ProstCodec;
use tonic_types::StatusExt;

const PATH: &str = "/redress.intake.v1.IntakeService/GetComplaint";

/// An upstream answering every call of the intake service with an empty message.
#[derive(Clone)]
struct Upstream;

impl tonic::server::NamedService for Upstream {
    const NAME: &'static str = "redress.intake.v1.IntakeService";
}

struct Answer;

impl tonic::server::UnaryService<Vec<u8>> for Answer {
    type Response = ();
    type Future = std::future::Ready<Result<tonic::Response<()>, Status>>;
    fn call(&mut self, _: tonic::Request<Vec<u8>>) -> Self::Future {
        std::future::ready(Ok(tonic::Response::new(())))
    }
}

impl tower::Service<http::Request<Body>> for Upstream {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<(), Vec<u8>>::default())
                .max_decoding_message_size(64 * 1024 * 1024);
            Ok(grpc.unary(Answer, request).await)
        })
    }
}

fn caller(token: &str, subject: &str, org_unit: &str) -> DevToken {
    DevToken {
        token: Secret::new(token),
        principal: Principal { subject: subject.to_owned(), org_unit: org_unit.to_owned(), ..Principal::default() },
    }
}

/// A gateway with `limits` in front of the upstream, and a channel to it.
async fn gateway(limits: RateLimits, shutdown: &CancellationToken) -> Channel {
    let upstream = GrpcServer::bind(&ServerConfig::default(), &[]).await.unwrap();
    let upstream_url = format!("http://{}", upstream.local_addr());
    tokio::spawn(upstream.serve(Routes::new(Upstream), shutdown.clone()));
    let gateway = Gateway::build(
        GatewayConfig {
            server: ServerConfig::default(),
            upstreams: Upstreams { intake: upstream_url, ..Upstreams::default() },
            auth: AuthConfig {
                dev_tokens: vec![
                    caller("a1", "a1", "institutions/a/branches/x"),
                    caller("a2", "a2", "institutions/a/branches/y"),
                    caller("b1", "b1", "institutions/b"),
                ],
                ..AuthConfig::default()
            },
            rate_limits: limits,
            ..GatewayConfig::default()
        },
        SigningKey::generate(GATEWAY),
        DevTokens::Allowed,
        shutdown.clone(),
    )
    .await
    .unwrap();
    let url = format!("http://{}", gateway.local_addr());
    tokio::spawn(gateway.run_until_stopped());
    let channel = tonic::transport::Endpoint::from_shared(url).unwrap().connect_lazy();
    // Connected (and the gateway serving) before any limited call, so none waits on that.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.unwrap();
    channel
}

async fn call(channel: &Channel, token: &str, message: Vec<u8>) -> Result<(), Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let path = http::uri::PathAndQuery::from_static(PATH);
    grpc.unary(request, path, ProstCodec::<Vec<u8>, ()>::default()).await.map(|_| ())
}

/// The limit a refusal names, and how long it says to wait.
fn refusal(status: &Status) -> (String, Duration) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let details = status.get_error_details();
    let info = details.error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "RATE_LIMITED");
    let delay = details.retry_info().expect("RetryInfo").retry_delay.expect("retry_delay");
    (info.metadata["limit"].clone(), delay)
}

#[tokio::test]
async fn callers_and_institutions_over_their_rate_are_told_when_to_retry_while_others_are_served() {
    let shutdown = CancellationToken::new();
    let limits = RateLimits { caller_per_second: 1, caller_burst: 2, institution_per_second: 1, institution_burst: 3 };
    let channel = gateway(limits, &shutdown).await;

    call(&channel, "a1", Vec::new()).await.unwrap();
    call(&channel, "a1", Vec::new()).await.unwrap();
    let (limit, delay) = refusal(&call(&channel, "a1", Vec::new()).await.unwrap_err());
    assert_eq!(limit, "caller");
    assert!(delay > Duration::ZERO && delay <= Duration::from_secs(1), "{delay:?}");

    // Another caller of the same institution has a rate of its own, but shares the
    // institution's, which a1's refused call did not use.
    call(&channel, "a2", Vec::new()).await.unwrap();
    let (limit, _) = refusal(&call(&channel, "a2", Vec::new()).await.unwrap_err());
    assert_eq!(limit, "institution");

    // A caller of another institution is served all the while.
    call(&channel, "b1", Vec::new()).await.unwrap();
    call(&channel, "b1", Vec::new()).await.unwrap();

    // Once the delay has passed, the refused caller is served again.
    tokio::time::sleep(delay).await;
    call(&channel, "a1", Vec::new()).await.unwrap();
    shutdown.cancel();
}

#[tokio::test]
async fn a_request_message_over_the_limit_is_refused_at_the_gateway() {
    let shutdown = CancellationToken::new();
    let channel = gateway(RateLimits::off(), &shutdown).await;
    let limit = ServerConfig::default().max_decoding_message_size;

    let refused = call(&channel, "b1", vec![7; limit + 1024]).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains(&format!("limit of {limit} bytes")), "{}", refused.message());
    assert_eq!(refused.get_error_details().error_info().unwrap().reason, "MESSAGE_TOO_LARGE");

    // Up to the limit it is forwarded (the upstream here takes any size).
    call(&channel, "b1", vec![7; limit - 16]).await.unwrap();
    shutdown.cancel();
}
