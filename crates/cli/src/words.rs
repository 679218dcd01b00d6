//! Enum values as the command line names them: `CASE_STATE_FOLLOW_UP` is `follow-up`, in the
//! text output and in a `--file` complaint alike, so that what a person reads they can type.

use redress_proto::redress::case::v1::{
    CaseState, ClockKind, ClockStatus, ClockUnit, ContactDirection, CoordinationTaskKind, LinkType, PauseReason,
    ProblemScope, ResolutionType, ReviewOutcome, RoutingAction,
};
use redress_proto::redress::common::v1::{Channel, Grade};
use redress_proto::redress::intake::v1::{
    AgentRelation, ClassificationSource, ComplaintSource, ComplaintState, ConfirmationMethod, EvidenceKind,
    IdDocumentType, RiskSignalKind,
};

/// A proto enum, known by its value names (`CASE_STATE_FOLLOW_UP`).
pub trait ProtoEnum {
    /// Shared prefix of the value names.
    const PREFIX: &'static str;
    fn name_of(value: i32) -> Option<&'static str>;
    fn value_of(name: &str) -> Option<i32>;
}

macro_rules! proto_enums {
    ($($ty:ty => $prefix:literal),* $(,)?) => {
        $(impl ProtoEnum for $ty {
            const PREFIX: &'static str = $prefix;
            fn name_of(value: i32) -> Option<&'static str> {
                <$ty>::try_from(value).ok().map(|e| e.as_str_name())
            }
            fn value_of(name: &str) -> Option<i32> {
                <$ty>::from_str_name(name).map(|e| e as i32)
            }
        })*
    };
}

proto_enums! {
    CaseState => "CASE_STATE_",
    Channel => "CHANNEL_",
    Grade => "GRADE_",
    ClockKind => "CLOCK_KIND_",
    ClockUnit => "CLOCK_UNIT_",
    ClockStatus => "CLOCK_STATUS_",
    PauseReason => "PAUSE_REASON_",
    ResolutionType => "RESOLUTION_TYPE_",
    LinkType => "LINK_TYPE_",
    ReviewOutcome => "REVIEW_OUTCOME_",
    ContactDirection => "CONTACT_DIRECTION_",
    ProblemScope => "PROBLEM_SCOPE_",
    RoutingAction => "ROUTING_ACTION_",
    CoordinationTaskKind => "COORDINATION_TASK_KIND_",
    ComplaintState => "COMPLAINT_STATE_",
    IdDocumentType => "ID_DOCUMENT_TYPE_",
    AgentRelation => "AGENT_RELATION_",
    EvidenceKind => "EVIDENCE_KIND_",
    ClassificationSource => "CLASSIFICATION_SOURCE_",
    RiskSignalKind => "RISK_SIGNAL_KIND_",
    ComplaintSource => "COMPLAINT_SOURCE_",
    ConfirmationMethod => "CONFIRMATION_METHOD_",
}

/// The word the command line uses for an enum value: `CASE_STATE_FOLLOW_UP` → `follow-up`.
pub fn word<E: ProtoEnum>(value: i32) -> String {
    match E::name_of(value) {
        Some(name) => name.strip_prefix(E::PREFIX).unwrap_or(name).to_ascii_lowercase().replace('_', "-"),
        None => format!("unknown({value})"),
    }
}

/// The enum value a word names: `mobile-app`, `mobile_app`, `MOBILE_APP` or `CHANNEL_MOBILE_APP`.
/// The unspecified value is named by no word.
pub fn from_word<E: ProtoEnum>(text: &str) -> Option<i32> {
    let name = text.trim().to_ascii_uppercase().replace('-', "_");
    let name = if name.starts_with(E::PREFIX) { name } else { format!("{}{name}", E::PREFIX) };
    E::value_of(&name).filter(|&value| value != 0)
}

/// Every word of an enum, as [`from_word`] takes and [`word`] prints them.
pub fn words<E: ProtoEnum>() -> Vec<String> {
    (1..=100).filter(|&value| E::name_of(value).is_some()).map(word::<E>).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_values_print_as_the_words_the_command_line_takes() {
        assert_eq!(word::<CaseState>(CaseState::FollowUp as i32), "follow-up");
        assert_eq!(word::<ClockKind>(ClockKind::RegulatoryDecision as i32), "regulatory-decision");
        assert_eq!(word::<Grade>(42), "unknown(42)");
        assert_eq!(from_word::<Channel>("mobile-app"), Some(Channel::MobileApp as i32));
        assert_eq!(from_word::<Channel>("CHANNEL_MOBILE_APP"), Some(Channel::MobileApp as i32));
        assert_eq!(from_word::<Channel>("unspecified"), None);
        assert_eq!(word::<ConfirmationMethod>(ConfirmationMethod::ReadBackCall as i32), "read-back-call");
        assert_eq!(word::<RoutingAction>(RoutingAction::LegalOpinionTask as i32), "legal-opinion-task");
        assert_eq!(from_word::<ComplaintSource>("internal-staff"), Some(ComplaintSource::InternalStaff as i32));
        assert_eq!(words::<ConfirmationMethod>().last().map(String::as_str), Some("other"), "99 is a value too");
    }
}
