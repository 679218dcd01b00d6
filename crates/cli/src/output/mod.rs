//! How `redress case` and `redress complaint` print what the gateway answered: a summary or a
//! table for people ([`text`]), or the message as protobuf's JSON for scripts ([`json`]), and
//! how they tell an error.

mod json;
mod text;
mod zone;

use clap::ValueEnum;
use redress_proto::redress::case::v1::{Case, ListAuditEntriesResponse, ListCasesResponse, VerifyAuditChainResponse};
use redress_proto::redress::intake::v1::{
    Complaint, ListComplaintsResponse, ListTaxonomiesResponse, SubjectProcessingRestriction, SubmitComplaintResponse,
};
use tonic_types::StatusExt;

use super::Failure;

/// How to print a result.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A compact summary.
    Text,
    /// The message as JSON.
    Json,
}

/// What a command answered.
pub enum Reply {
    Case(Box<Case>),
    Cases(ListCasesResponse),
    Audit(ListAuditEntriesResponse),
    Verification {
        case: String,
        result: VerifyAuditChainResponse,
    },
    Complaint(Box<Complaint>),
    /// A submitted complaint, with the request id that repeats the submission safely.
    Submitted {
        response: Box<SubmitComplaintResponse>,
        request_id: String,
    },
    /// A complaint with a read-back answer recorded, with the request id that repeats it safely.
    Confirmed {
        complaint: Box<Complaint>,
        request_id: String,
    },
    /// A complaint with a supplement added, with the request id that repeats it safely.
    Supplemented {
        complaint: Box<Complaint>,
        request_id: String,
    },
    /// Whether a person's processing is restricted, after a restriction or its lifting, with
    /// the request id that repeats it safely.
    Restriction {
        restriction: SubjectProcessingRestriction,
        request_id: String,
    },
    Complaints(ListComplaintsResponse),
    Taxonomies(ListTaxonomiesResponse),
}

/// The reply as printed, ending in a newline.
pub fn render(reply: &Reply, format: Format) -> Result<String, Failure> {
    match format {
        Format::Json => json::render(reply).map_err(Failure::Other),
        Format::Text => Ok(text::render(reply)),
    }
}

/// Any message of the contracts as JSON, for commands whose replies are not a [`Reply`].
pub fn message_json<M: prost::Message + prost::Name>(message: &M) -> Result<String, Failure> {
    json::message(message).map_err(Failure::Other)
}

/// The canonical name of a status code, as gRPC documents it.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// An error status for stderr: code and message, every field violation and precondition
/// failure, the error reason and localized message, and what to do next where that is clear.
pub fn status(status: &tonic::Status, gateway: &str, request_id: Option<&str>) -> String {
    use tonic::Code;
    let mut out = format!("error: {}: {}\n", code_name(status.code()), status.message());
    let details = status.get_error_details();
    for v in details.bad_request().map(|b| b.field_violations.as_slice()).unwrap_or_default() {
        out.push_str(&format!("  field {}: {}\n", v.field, v.description));
    }
    for v in details.precondition_failure().map(|p| p.violations.as_slice()).unwrap_or_default() {
        out.push_str(&format!("  precondition {} {}: {}\n", v.r#type, v.subject, v.description));
    }
    if let Some(info) = details.error_info() {
        out.push_str(&format!("  reason: {} ({})\n", info.reason, info.domain));
    }
    if let Some(localized) = details.localized_message() {
        out.push_str(&format!("  {}: {}\n", localized.locale, localized.message));
    }
    // Transport errors nest several layers that repeat one another; say each thing once.
    let mut said = vec![status.message().to_owned()];
    let mut cause = std::error::Error::source(status);
    while let Some(error) = cause {
        let text = error.to_string();
        if !said.contains(&text) {
            out.push_str(&format!("  caused by: {text}\n"));
            said.push(text);
        }
        cause = error.source();
    }
    match status.code() {
        Code::Unavailable => out.push_str(&format!("  is the gateway running at {gateway}?\n")),
        Code::Unauthenticated => out.push_str("  check --token (or REDRESS_TOKEN)\n"),
        _ => {}
    }
    // When the outcome is unknown the change may have been made; retrying with the same id
    // makes it at most once.
    if let Some(id) = request_id
        && matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown)
    {
        out.push_str(&format!("  to retry this change safely: --request-id {id}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_violations_are_listed_under_the_status() {
        let details = tonic_types::ErrorDetails::with_bad_request_violation("total_days", "must be 30 or 60");
        let status = tonic::Status::with_error_details(tonic::Code::InvalidArgument, "invalid request", details);
        let text = super::status(&status, "http://127.0.0.1:50051", Some("r-1"));
        assert!(text.starts_with("error: INVALID_ARGUMENT: invalid request\n"), "{text}");
        assert!(text.contains("  field total_days: must be 30 or 60\n"), "{text}");
        assert!(!text.contains("--request-id"), "a refused change needs no retry: {text}");
    }
}
