//! The escalation service's event feed, and the dead letters of the feeds it follows.

use std::sync::Arc;

use redress_platform::dead_letters::Replay;
use redress_platform::events::{FeedStream, serve_stream};
use redress_platform::principal::Principal;
use redress_proto::redress::common::v1::{
    DeadLetter, ListDeadLettersRequest, ListDeadLettersResponse, ReplayDeadLetterRequest,
};
use redress_proto::redress::escalation::v1::{StreamEventsRequest, StreamEventsResponse};

use super::EscalationApi;
use crate::error::EscalationError;

pub(super) type EventStream = FeedStream<StreamEventsResponse>;

impl EscalationApi {
    pub(super) async fn stream_events(
        &self,
        principal: &Arc<Principal>,
        request: StreamEventsRequest,
    ) -> Result<EventStream, EscalationError> {
        let store = self.store()?;
        let respond = |events| StreamEventsResponse { events };
        Ok(serve_stream(store.feed(), principal.clone(), request.after_position, self.shutdown.clone(), respond)
            .await?)
    }

    pub(super) async fn list_dead_letters(
        &self,
        principal: &Arc<Principal>,
        request: ListDeadLettersRequest,
    ) -> Result<ListDeadLettersResponse, EscalationError> {
        let store = self.store()?;
        Ok(redress_platform::dead_letters::list(store.feed().pool(), principal, &request).await?)
    }

    pub(super) async fn replay_dead_letter(
        &self,
        principal: &Arc<Principal>,
        request: ReplayDeadLetterRequest,
    ) -> Result<DeadLetter, EscalationError> {
        let replay = Replay::parse(principal.clone(), request)?;
        let dead = self.store()?.replay_dead_letter(replay).await?;
        tracing::info!(dead_letter = %dead.name(), by = %dead.replayed_by, "dead letter replayed");
        Ok(dead.to_proto())
    }
}
