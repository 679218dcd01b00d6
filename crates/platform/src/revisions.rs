//! Deadlines recomputed when an official calendar year arrives (D-SLA-6): what a revision did,
//! and the one report every service that computes deadlines gives of a calendar reload.

use redress_proto::redress::common::v1::ReloadCalendarsResponse;

/// What a revision of provisional deadlines did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Revised {
    /// Records with a provisional deadline looked at.
    pub recomputed: u64,
    /// Of those, the records whose deadlines moved or stopped being provisional.
    pub revised: u64,
}

/// Logs and counts a calendar reload, and answers `ReloadCalendars` with it.
pub fn reloaded(official_years: Vec<i32>, revised: Revised) -> ReloadCalendarsResponse {
    tracing::info!(
        years = ?official_years,
        recomputed = revised.recomputed,
        revised = revised.revised,
        "working-day calendars reloaded"
    );
    metrics::counter!("redress_deadline_revisions_total").increment(revised.revised);
    ReloadCalendarsResponse {
        official_years,
        recomputed_count: i64::try_from(revised.recomputed).unwrap_or(i64::MAX),
        revised_count: i64::try_from(revised.revised).unwrap_or(i64::MAX),
    }
}
