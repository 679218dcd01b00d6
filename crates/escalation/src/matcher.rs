//! Matches accepted complaints as they arrive (D-ESC-2, D-ESC-4). Intake's events carry no
//! free text, so each complaint's facts and demand are read from IntakeService, masked, and
//! matched in one transaction with taking the complaint off the queue the consumer put it on:
//! none is missed, none matched twice. Only for an institution that keeps a VIP register is
//! the complaint read in clear (recorded by intake as a read by this service, for this
//! purpose), to compute its complainant's blind indexes; the clear identifiers are never
//! stored or logged.

use std::sync::Arc;
use std::time::Duration;

use redress_platform::blind_index::BlindIndexKey;
use redress_platform::principal::ServiceCredentials;
use redress_proto::redress::intake::v1::intake_service_client::IntakeServiceClient;
use redress_proto::redress::intake::v1::{Complaint, GetComplaintRequest};
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::cases::Credentials;
use crate::store::ops::MatchInput;
use crate::store::{EscalationStore, MATCH_LOCK};

pub type IntakeClient = IntakeServiceClient<InterceptedService<Channel, Credentials>>;

/// An IntakeService client calling as `credentials`, over `tls` (the service's own) for
/// `https://`.
pub fn intake_client(
    url: &str,
    credentials: ServiceCredentials,
    tls: Option<&redress_platform::tls::Tls>,
) -> anyhow::Result<IntakeClient> {
    let channel = redress_platform::server::suite_endpoint(url)?.connect_lazy(tls);
    Ok(IntakeServiceClient::with_interceptor(channel, Credentials::new(credentials))
        .max_decoding_message_size(redress_platform::server::DEFAULT_MAX_MESSAGE_SIZE)
        .max_encoding_message_size(redress_platform::server::DEFAULT_MAX_MESSAGE_SIZE))
}

/// Why the service reads a complaint in clear, as intake records it (D-PII-4).
const VIP_MATCHING: &str = "重要客户绿色通道：比对VIP名册（D-ESC-4），仅计算盲索引，不留存明文";

/// Complaints matched per pass.
const BATCH: i64 = 200;

/// Matches queued complaints until `stop`, every `interval` (at once again after a full batch).
pub async fn run(
    store: Arc<EscalationStore>,
    intake: IntakeClient,
    key: Option<BlindIndexKey>,
    interval: Duration,
    stop: CancellationToken,
) {
    loop {
        let pass = || match_pending(&store, &intake, key.as_ref(), &stop);
        let matched = match store.exclusively(MATCH_LOCK, pass).await {
            Ok(n) => n.unwrap_or(0),
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "matching complaints failed; retrying");
                0
            }
        };
        if matched < BATCH as usize {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        } else if stop.is_cancelled() {
            return;
        }
    }
}

/// The blind indexes a complaint read from intake is matched against the VIP register by: none
/// without a key, or when intake says its complainant restricted the processing of their
/// personal information (escalation's own copy of the restriction may not have caught up yet).
fn vip_digests(key: Option<&BlindIndexKey>, institution: &str, found: &Complaint) -> Vec<String> {
    match key {
        Some(key) if !found.personal_data_restricted => crate::domain::vip::match_digests(key, institution, found),
        _ => Vec::new(),
    }
}

/// Complaints matched in one transaction.
const CHUNK: usize = 32;
/// Complaints read from intake at once while matching.
const READS_IN_FLIGHT: usize = 8;

/// What a queued complaint is matched by: its facts and demand read from intake, and, for an
/// institution that keeps a VIP register, its complainant's blind indexes.
async fn read(
    store: &EscalationStore,
    intake: &IntakeClient,
    key: Option<&BlindIndexKey>,
    complaint: String,
    org_unit: String,
) -> anyhow::Result<MatchInput> {
    let institution = crate::domain::institution_of(&org_unit);
    // A complainant who restricted the processing of their personal information (PIPL
    // Art.44) is not read in clear for the VIP register: it serves only their complaint.
    let known = store.known(&complaint).await?;
    let restricted = known.is_some_and(|k| k.restricted);
    let vip_key = match key {
        Some(key) if !restricted && store.institution_has_vips(&institution).await? => Some(key),
        _ => None,
    };
    let request = GetComplaintRequest {
        name: complaint.clone(),
        pii_access_reason: if vip_key.is_some() { VIP_MATCHING.to_owned() } else { String::new() },
    };
    Ok(match intake.clone().get_complaint(request).await {
        Ok(found) => {
            let found = found.into_inner();
            let digests = vip_digests(vip_key, &institution, &found);
            MatchInput { complaint, facts: found.facts, demand: found.demand, digests }
        }
        // Gone (never there, or unknown to intake): nothing to compare it by.
        Err(status) if status.code() == Code::NotFound => {
            MatchInput { complaint, facts: String::new(), demand: String::new(), digests: Vec::new() }
        }
        Err(status) => anyhow::bail!("reading {complaint} from intake: {status}"),
    })
}

/// Matches `inputs` in one transaction, in queue order; returns how many.
async fn match_chunk(store: &EscalationStore, inputs: Vec<MatchInput>) -> anyhow::Result<usize> {
    let n = inputs.len();
    if n == 0 {
        return Ok(0);
    }
    let started = std::time::Instant::now();
    store.match_complaints(inputs).await?;
    let each = started.elapsed().as_secs_f64() / n as f64;
    for _ in 0..n {
        metrics::histogram!("redress_escalation_match_seconds").record(each);
    }
    Ok(n)
}

/// One pass over the queue; returns how many complaints it matched. Complaints are read from
/// intake several at once and matched in queue order, [`CHUNK`] to a transaction.
pub async fn match_pending(
    store: &EscalationStore,
    intake: &IntakeClient,
    key: Option<&BlindIndexKey>,
    stop: &CancellationToken,
) -> anyhow::Result<usize> {
    use futures_util::StreamExt;

    let pending = store.pending_matches(BATCH).await?;
    let mut inputs = futures_util::stream::iter(pending)
        .map(|(complaint, org_unit)| read(store, intake, key, complaint, org_unit))
        .buffered(READS_IN_FLIGHT);
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut done = 0;
    while let Some(input) = inputs.next().await {
        if stop.is_cancelled() {
            // What was read and not matched stays queued for the next start.
            return Ok(done);
        }
        chunk.push(input?);
        if chunk.len() == CHUNK {
            done += match_chunk(store, std::mem::take(&mut chunk)).await?;
        }
    }
    done += match_chunk(store, chunk).await?;
    Ok(done)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use redress_proto::redress::intake::v1::complainant::Party;
    use redress_proto::redress::intake::v1::{Complainant, NaturalPerson};

    use super::*;

    fn complaint(restricted: bool) -> Complaint {
        Complaint {
            org_unit: "institutions/demo-bank".to_owned(),
            complainant: Some(Complainant {
                party: Some(Party::Person(NaturalPerson {
                    full_name: "张三".to_owned(),
                    id_document_type: 1,
                    id_number: "11010519491231002X".to_owned(),
                    phone: "13812345678".to_owned(),
                    ..NaturalPerson::default()
                })),
            }),
            personal_data_restricted: restricted,
            ..Complaint::default()
        }
    }

    #[test]
    fn a_complaint_intake_reports_restricted_is_not_matched_against_the_vip_register() {
        let key = BlindIndexKey::new(&[5; 32]).unwrap();
        let open = vip_digests(Some(&key), "institutions/demo-bank", &complaint(false));
        assert_eq!(open, crate::domain::vip::match_digests(&key, "institutions/demo-bank", &complaint(false)));
        assert!(!open.is_empty());
        assert!(vip_digests(Some(&key), "institutions/demo-bank", &complaint(true)).is_empty());
        assert!(vip_digests(None, "institutions/demo-bank", &complaint(false)).is_empty());
    }
}
