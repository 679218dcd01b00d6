//! gRPC surface of quality-metrics, the only place protos meet the domain: [`queries`] reads
//! KPIs, breakdowns, series, Pareto charts and hotspots; [`admin`] keeps targets and
//! denominators, the read models' status and rebuild, the event feed and dead letters.

mod admin;
#[cfg(test)]
mod conformance;
mod improvement;
mod parse;
mod queries;

use std::sync::Arc;

use redress_platform::events::Subscribe;
use redress_platform::principal::Principal;
use redress_platform::ready::Ready;
use redress_platform::time::Clock;
use redress_proto::redress::common::v1::{
    DeadLetter, ListDeadLettersRequest, ListDeadLettersResponse, ReplayDeadLetterRequest,
};
use redress_proto::redress::metrics::v1::improvement_service_server::ImprovementService;
use redress_proto::redress::metrics::v1::metrics_event_feed_service_server::MetricsEventFeedService;
use redress_proto::redress::metrics::v1::quality_metrics_service_server::QualityMetricsService;
use redress_proto::redress::metrics::v1::{
    ActionEffect, CreateImprovementActionRequest, CreateRootCauseRequest, GetActionEffectRequest,
    GetImprovementActionRequest, GetRootCauseRequest, ImprovementAction, ListImprovementActionsRequest,
    ListImprovementActionsResponse, ListRootCausesRequest, ListRootCausesResponse, RootCause,
    UpdateImprovementActionRequest,
};
use redress_proto::redress::metrics::v1::{
    Breakdown, Denominators, GenerateReportRequest, GetBreakdownRequest, GetKpisRequest, GetParetoRequest,
    GetReadModelStatusRequest, GetSeriesRequest, GetTargetsRequest, KpiReport, ListDenominatorsRequest,
    ListDenominatorsResponse, ListHotspotsRequest, ListHotspotsResponse, Pareto, ReadModelStatus,
    RebuildReadModelsRequest, Report, Series, SetDenominatorsRequest, StreamEventsRequest, Targets,
    UpdateTargetsRequest,
};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::error::MetricsError;
use crate::store::MetricsStore;
use admin::EventStream;

/// The feeds the read models follow, each as a subscription used to check, before a rebuild,
/// that the feed still holds its first events.
pub type FeedChecks = Arc<tokio::sync::Mutex<Vec<(&'static str, Subscribe)>>>;

#[derive(Clone)]
pub struct MetricsApi {
    store: Ready<Arc<dyn MetricsStore>>,
    shutdown: CancellationToken,
    clock: Clock,
    feeds: FeedChecks,
    /// Counts rebuilds, so that the consumers resubscribe at once.
    rebuilt: Arc<tokio::sync::watch::Sender<u64>>,
}

impl MetricsApi {
    pub fn new(store: Ready<Arc<dyn MetricsStore>>, shutdown: CancellationToken) -> Self {
        let rebuilt = Arc::new(tokio::sync::watch::channel(0).0);
        Self { store, shutdown, clock: Clock::system(), feeds: FeedChecks::default(), rebuilt }
    }

    /// Reads "today" from `clock`.
    pub fn with_clock(self, clock: Clock) -> Self {
        Self { clock, ..self }
    }

    /// Checks these feeds before a rebuild, and tells `rebuilt`'s receivers after one.
    pub fn with_feeds(self, feeds: Vec<(&'static str, Subscribe)>, rebuilt: tokio::sync::watch::Sender<u64>) -> Self {
        Self { feeds: Arc::new(tokio::sync::Mutex::new(feeds)), rebuilt: Arc::new(rebuilt), ..self }
    }

    /// Changes after each rebuild.
    pub fn rebuilds(&self) -> tokio::sync::watch::Receiver<u64> {
        self.rebuilt.subscribe()
    }

    /// The store, once it is open (UNAVAILABLE until then).
    fn store(&self) -> Result<Arc<dyn MetricsStore>, MetricsError> {
        Ok(self.store.get()?.clone())
    }
}

/// Implements a gRPC service on [`MetricsApi`]: each method takes the principal the interceptor
/// verified and hands it, with the request, to the handler named after `=>`.
macro_rules! delegate {
    ($service:ident {
        $(type $assoc:ident = $assoc_ty:ty;)*
        $(fn $method:ident($request:ty) -> $response:ty => $handler:ident;)*
    }) => {
        #[tonic::async_trait]
        impl $service for MetricsApi {
            $(type $assoc = $assoc_ty;)*
            $(
                async fn $method(&self, request: Request<$request>) -> Result<Response<$response>, Status> {
                    let principal = Principal::of(&request)?;
                    Ok(Response::new(self.$handler(&principal, request.into_inner()).await?))
                }
            )*
        }
    };
}

delegate!(QualityMetricsService {
    fn get_kpis(GetKpisRequest) -> KpiReport => get_kpis;
    fn get_breakdown(GetBreakdownRequest) -> Breakdown => get_breakdown;
    fn get_series(GetSeriesRequest) -> Series => get_series;
    fn get_pareto(GetParetoRequest) -> Pareto => get_pareto;
    fn list_hotspots(ListHotspotsRequest) -> ListHotspotsResponse => list_hotspots;
    fn get_targets(GetTargetsRequest) -> Targets => get_targets;
    fn update_targets(UpdateTargetsRequest) -> Targets => update_targets;
    fn set_denominators(SetDenominatorsRequest) -> Denominators => set_denominators;
    fn list_denominators(ListDenominatorsRequest) -> ListDenominatorsResponse => list_denominators;
    fn generate_report(GenerateReportRequest) -> Report => generate_report;
    fn get_read_model_status(GetReadModelStatusRequest) -> ReadModelStatus => get_read_model_status;
    fn rebuild_read_models(RebuildReadModelsRequest) -> ReadModelStatus => rebuild_read_models;
});

delegate!(ImprovementService {
    fn create_root_cause(CreateRootCauseRequest) -> RootCause => create_root_cause;
    fn get_root_cause(GetRootCauseRequest) -> RootCause => get_root_cause;
    fn list_root_causes(ListRootCausesRequest) -> ListRootCausesResponse => list_root_causes;
    fn create_improvement_action(CreateImprovementActionRequest) -> ImprovementAction => create_improvement_action;
    fn get_improvement_action(GetImprovementActionRequest) -> ImprovementAction => get_improvement_action;
    fn list_improvement_actions(ListImprovementActionsRequest) -> ListImprovementActionsResponse => list_improvement_actions;
    fn update_improvement_action(UpdateImprovementActionRequest) -> ImprovementAction => update_improvement_action;
    fn get_action_effect(GetActionEffectRequest) -> ActionEffect => get_action_effect;
});

delegate!(MetricsEventFeedService {
    type StreamEventsStream = EventStream;
    fn stream_events(StreamEventsRequest) -> EventStream => stream_events;
    fn list_dead_letters(ListDeadLettersRequest) -> ListDeadLettersResponse => list_dead_letters;
    fn replay_dead_letter(ReplayDeadLetterRequest) -> DeadLetter => replay_dead_letter;
});
