//! `--output json`: the message the gateway answered, in protobuf's canonical JSON mapping,
//! read off the descriptor set the contracts compile into. Every message prints as other
//! protobuf tools print it (`buf curl`, grpcurl), and a field added to `proto/` prints without
//! a change here.
//!
//! Fields go by their proto names (`case_number`), the names a `--file` complaint uses; fields
//! at their default value are printed too, so that a script reads `false` or `""` rather than
//! a missing key; enums print by name, times in RFC 3339 UTC, 64-bit integers as strings.

use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use serde::{Serialize, Serializer};

use super::Reply;

/// The JSON mapping's options: proto field names, and defaults printed.
const OPTIONS: SerializeOptions = SerializeOptions::new().use_proto_field_name(true).skip_default_fields(false);

/// The reply as pretty-printed JSON, ending in a newline.
pub(super) fn render(reply: &Reply) -> Result<String, String> {
    let pool = DescriptorPool::decode(redress_proto::FILE_DESCRIPTOR_SET)
        .map_err(|e| format!("the contracts' descriptor set does not load: {e}"))?;
    let messages = Messages(&pool);
    let value = match reply {
        Reply::Case(case) => messages.of(case.as_ref())?,
        Reply::Cases(list) => messages.of(list)?,
        Reply::Audit(list) => messages.of(list)?,
        Reply::Verification { result, .. } => messages.of(result)?,
        Reply::Complaint(complaint) => messages.of(complaint.as_ref())?,
        Reply::Complaints(list) => messages.of(list)?,
        Reply::Taxonomies(list) => messages.of(list)?,
        // The request id is no field of the response, yet a script needs it to retry.
        Reply::Submitted { response, request_id } => {
            return pretty(&Retryable { response: messages.of(response.as_ref())?, request_id });
        }
        Reply::Confirmed { complaint, request_id } | Reply::Supplemented { complaint, request_id } => {
            return pretty(&Retryable { response: messages.of(complaint.as_ref())?, request_id });
        }
        Reply::Restriction { restriction, request_id } => {
            return pretty(&Retryable { response: messages.of(restriction)?, request_id });
        }
    };
    pretty(&value)
}

/// The messages the descriptor set describes.
struct Messages<'a>(&'a DescriptorPool);

impl Messages<'_> {
    /// A generated message as the descriptor set reads it.
    fn of<M: prost::Message + prost::Name>(&self, message: &M) -> Result<Proto, String> {
        let name = M::full_name();
        let descriptor = self
            .0
            .get_message_by_name(&name)
            .ok_or_else(|| format!("{name} is not in the contracts' descriptor set"))?;
        let mut dynamic = DynamicMessage::new(descriptor);
        dynamic.transcode_from(message).map_err(|e| format!("{name} does not read as its descriptor says: {e}"))?;
        Ok(Proto(dynamic))
    }
}

/// A message that serializes in the JSON mapping with [`OPTIONS`].
struct Proto(DynamicMessage);

impl Serialize for Proto {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_with_options(serializer, &OPTIONS)
    }
}

/// A change's response with the request id that repeats it, in one object.
#[derive(Serialize)]
struct Retryable<'a> {
    #[serde(flatten)]
    response: Proto,
    request_id: &'a str,
}

/// One message of the contracts as pretty JSON.
pub(super) fn message<M: prost::Message + prost::Name>(message: &M) -> Result<String, String> {
    let pool = DescriptorPool::decode(redress_proto::FILE_DESCRIPTOR_SET)
        .map_err(|e| format!("the contracts' descriptor set does not load: {e}"))?;
    pretty(&Messages(&pool).of(message)?)
}

fn pretty(value: &impl Serialize) -> Result<String, String> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| format!("cannot print the JSON: {e}"))?;
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use prost_types::Timestamp;
    use redress_proto::redress::case::v1::{Case, CaseState, VerifyAuditChainResponse};
    use redress_proto::redress::intake::v1::{Complaint, SubmitComplaintResponse};
    use serde_json::{Value, json};

    use super::*;

    fn parsed(reply: &Reply) -> Value {
        let text = render(reply).unwrap_or_else(|e| panic!("{e}"));
        assert!(text.ends_with("}\n"), "{text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    #[test]
    fn a_message_prints_in_the_json_mapping_with_proto_field_names() {
        let case = Case {
            name: "cases/1".to_owned(),
            case_number: "2026060900001".to_owned(),
            state: CaseState::InMediation as i32,
            open_time: Some(Timestamp { seconds: 1_781_000_000, nanos: 500_000_000 }),
            ..Case::default()
        };
        let json = parsed(&Reply::Case(Box::new(case)));
        assert_eq!(json["case_number"], "2026060900001");
        assert_eq!(json["state"], "CASE_STATE_IN_MEDIATION");
        assert_eq!(json["open_time"], "2026-06-09T10:13:20.500Z");
        assert_eq!(json["assignee"], "", "a field at its default is printed: {json}");
        assert_eq!(json["review_count"], 0, "{json}");
        assert_eq!(json["clocks"], json!([]), "{json}");
        assert!(json.get("resolution").is_none(), "a message that is not set is left out: {json}");
    }

    #[test]
    fn sixty_four_bit_integers_are_strings_and_unknown_enum_values_numbers() {
        let result =
            VerifyAuditChainResponse { intact: false, entries: 7, first_broken_sequence: 3, reason: "x".into() };
        let json = parsed(&Reply::Verification { case: "cases/1".to_owned(), result });
        assert_eq!(json, json!({ "intact": false, "entries": "7", "first_broken_sequence": "3", "reason": "x" }));
        let json = parsed(&Reply::Case(Box::new(Case { state: 42, ..Case::default() })));
        assert_eq!(json["state"], 42);
    }

    #[test]
    fn an_audit_entry_carries_its_key_id() {
        use redress_proto::redress::case::v1::{AuditEntry, ListAuditEntriesResponse};
        let entry = |key_id: &str| AuditEntry { sequence: 1, key_id: key_id.to_owned(), ..AuditEntry::default() };
        let list =
            ListAuditEntriesResponse { audit_entries: vec![entry("audit-2026"), entry("")], ..Default::default() };
        let json = parsed(&Reply::Audit(list));
        assert_eq!(json["audit_entries"][0]["key_id"], "audit-2026", "{json}");
        assert_eq!(json["audit_entries"][1]["key_id"], "", "an entry written before trails were keyed: {json}");
    }

    #[test]
    fn a_submission_carries_its_request_id_beside_the_response() {
        let response = SubmitComplaintResponse {
            complaint: Some(Complaint { name: "complaints/1".to_owned(), ..Complaint::default() }),
            receipt: None,
        };
        let json = parsed(&Reply::Submitted { response: Box::new(response), request_id: "r-1".to_owned() });
        assert_eq!(json["request_id"], "r-1");
        assert_eq!(json["complaint"]["name"], "complaints/1");
    }

    #[test]
    fn a_read_back_answer_carries_its_request_id_beside_the_complaint() {
        use redress_proto::redress::intake::v1::{ConfirmationMethod, ContentConfirmation};
        let complaint = Complaint {
            name: "complaints/1".to_owned(),
            content_confirmations: vec![ContentConfirmation {
                confirmed: true,
                method: ConfirmationMethod::ReadBackCall as i32,
                ..ContentConfirmation::default()
            }],
            ..Complaint::default()
        };
        let json = parsed(&Reply::Confirmed { complaint: Box::new(complaint), request_id: "r-2".to_owned() });
        assert_eq!(json["request_id"], "r-2");
        assert_eq!(json["name"], "complaints/1");
        assert_eq!(json["content_confirmations"][0]["method"], "CONFIRMATION_METHOD_READ_BACK_CALL");
        assert_eq!(json["source"], "COMPLAINT_SOURCE_UNSPECIFIED");
    }
}
