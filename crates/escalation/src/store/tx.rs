//! The single queries the escalation service's operations are made of, inside one transaction
//! of either backend. Every operation is written once over [`EscTx`] in `ops`; the backends
//! differ only in the suffix their locking reads carry.

use async_trait::async_trait;
use prost::Message;
use redress_platform::consumer::ConsumerTx;
use redress_platform::events::Outbox;
use redress_proto::redress::escalation::v1::{
    Alert, Escalation, Incident, IncidentMember, MaliciousFlag, Mention, ResponseTemplate, Statement, StatementUse,
    Vip, Watchlist,
};
use sqlx::{PgConnection, SqliteConnection};

use super::{CaseFacts, FingerprintRow, Known, KnownRow, Stored, fingerprint_columns};
use crate::domain::actions::{CaseAction, id_of};
use crate::error::EscalationError;

type Result<T> = std::result::Result<T, EscalationError>;

/// Complaints read from each LSH bucket a complaint falls in when it is matched: the newest in
/// the window. Complaints alike share most of their 32 buckets, so a complaint in a flood of
/// like ones still meets up to this many of the latest (all in the flood's cluster), while a
/// match costs the same at its thousandth member as at its tenth. Far above what a bucket of
/// unrelated complaints holds.
pub(crate) const CANDIDATES_PER_BUCKET: i64 = 64;

/// Bands forgotten in one transaction, a literal in the statement (32 a complaint with the
/// shipped bands): a bound `LIMIT` would let a generic plan on PostgreSQL hash the table.
macro_rules! forget_batch {
    () => {
        2048
    };
}
pub(crate) const FORGET_BATCH: u64 = forget_batch!();

/// One transaction of the escalation store.
#[async_trait]
pub(crate) trait EscTx: Outbox + ConsumerTx + Send {
    /// What the service knows of a complaint.
    async fn complaint(&mut self, complaint: &str) -> Result<Option<Known>>;
    /// What the service knows of the complaint of a case.
    async fn complaint_of_case(&mut self, case: &str) -> Result<Option<Known>>;
    /// Records intake's ComplaintAccepted (payload as received).
    async fn record_accepted(
        &mut self,
        complaint: &str,
        org_unit: &str,
        grade: i32,
        complainant_key: &str,
        payload: &[u8],
    ) -> Result<()>;
    /// Records whether the complainant restricted the processing of their personal information
    /// (intake's ComplaintProcessingRestricted), from now on.
    async fn record_restriction(&mut self, complaint: &str, org_unit: &str, restricted: bool) -> Result<()>;
    /// Records where a complaint's case stands, from the case feed.
    async fn record_case(&mut self, complaint: &str, case: &CaseFacts) -> Result<()>;

    /// An incident with its version, locked until the transaction ends.
    async fn load_incident(&mut self, id: &str) -> Result<Option<Stored<Incident>>>;
    async fn insert_incident(&mut self, incident: &Incident, next_check_us: Option<i64>) -> Result<()>;
    /// Writes an incident loaded at `version`; fails if it changed meanwhile.
    async fn save_incident(&mut self, incident: &Incident, version: i64, next_check_us: Option<i64>) -> Result<()>;
    /// An incident's members in join order.
    async fn members(&mut self, incident: &str) -> Result<Vec<IncidentMember>>;
    async fn load_member(&mut self, incident: &str, complaint: &str) -> Result<Option<IncidentMember>>;
    /// Adds a member after the last, with the key of its complainant; `false` (nothing
    /// written) when it is one already.
    async fn insert_member(&mut self, member: &IncidentMember, complainant_key: &str) -> Result<bool>;
    /// An incident's first member (its lead), if any.
    async fn lead_member(&mut self, incident: &str) -> Result<Option<String>>;
    /// Whether a complainant (by key) is a member of an incident already.
    async fn has_complainant(&mut self, incident: &str, complainant_key: &str) -> Result<bool>;
    async fn save_member(&mut self, member: &IncidentMember) -> Result<()>;
    /// The incidents a complaint is a member of.
    async fn incidents_of(&mut self, complaint: &str) -> Result<Vec<String>>;

    /// An incident's statements, newest first, locked.
    async fn statements(&mut self, incident: &str) -> Result<Vec<Statement>>;
    async fn put_statement(&mut self, statement: &Statement, new: bool) -> Result<()>;
    async fn insert_statement_use(&mut self, id: &str, used: &StatementUse) -> Result<()>;

    async fn load_escalation(&mut self, id: &str) -> Result<Option<Stored<Escalation>>>;
    async fn escalation_of(&mut self, complaint: &str) -> Result<Option<Stored<Escalation>>>;
    /// Inserts (`version` None) or updates an escalation loaded at `version`.
    async fn put_escalation(
        &mut self,
        escalation: &Escalation,
        version: Option<i64>,
        next_check_us: Option<i64>,
    ) -> Result<()>;

    /// Records an alert unless one was raised for `cause` already (`false`).
    async fn insert_alert(&mut self, alert: &Alert, cause: &str) -> Result<bool>;
    async fn load_alert(&mut self, id: &str) -> Result<Option<Alert>>;
    async fn save_alert(&mut self, alert: &Alert) -> Result<()>;

    /// Records a request to CaseService unless its key was recorded already (`false`).
    async fn insert_action(&mut self, action: &CaseAction, now_us: i64) -> Result<bool>;
    /// Records how an attempt went: `state` 0 (try again at `next_attempt_us`), 1 done, 2
    /// refused. `false` when the request was no longer pending (another replica finished it).
    async fn finish_action(
        &mut self,
        key: &str,
        state: i64,
        error: &str,
        next_attempt_us: i64,
        now_us: i64,
    ) -> Result<bool>;

    /// Queues an accepted complaint for matching (once).
    async fn enqueue_match(&mut self, complaint: &str, seq: i64, org_unit: &str) -> Result<()>;
    async fn dequeue_match(&mut self, complaint: &str) -> Result<()>;
    async fn fingerprinted(&mut self, complaint: &str) -> Result<bool>;
    /// Complaints of `institution` received within `from_us..=to_us` sharing a bucket: the
    /// newest [`CANDIDATES_PER_BUCKET`] of each bucket.
    async fn candidates(
        &mut self,
        institution: &str,
        buckets: &[i64],
        from_us: i64,
        to_us: i64,
    ) -> Result<Vec<FingerprintRow>>;
    async fn insert_fingerprint(&mut self, row: &FingerprintRow, buckets: &[i64]) -> Result<()>;
    /// Forgets at most [`FORGET_BATCH`] bands of complaints received before `before_us`, oldest
    /// first; returns how many. Their fingerprints stay.
    async fn forget_candidates(&mut self, before_us: i64) -> Result<u64>;
    /// The incident a cluster became, if any; the cluster row is locked.
    async fn cluster(&mut self, id: &str) -> Result<Option<Option<String>>>;
    async fn insert_cluster(&mut self, id: &str, institution: &str) -> Result<()>;
    /// Moves every member of `from` to `to` and forgets `from`.
    async fn merge_cluster(&mut self, from: &str, to: &str) -> Result<()>;
    async fn set_cluster_incident(&mut self, id: &str, incident: &str) -> Result<()>;
    /// Distinct complainants of a cluster, and of those received within `from_us..=to_us`.
    async fn cluster_counts(&mut self, id: &str, from_us: i64, to_us: i64) -> Result<(i64, i64)>;
    /// A cluster's members, earliest received first.
    async fn cluster_members(&mut self, id: &str) -> Result<Vec<FingerprintRow>>;

    async fn load_watchlist(&mut self, id: &str) -> Result<Option<Stored<Watchlist>>>;
    /// Inserts (`version` None) or updates a watchlist loaded at `version`.
    async fn put_watchlist(&mut self, watchlist: &Watchlist, version: Option<i64>) -> Result<()>;
    async fn delete_watchlist(&mut self, id: &str) -> Result<bool>;
    /// The watchlists whose unit covers `org_unit`.
    async fn watchlists_covering(&mut self, org_unit: &str) -> Result<Vec<Watchlist>>;
    async fn load_mention(&mut self, id: &str) -> Result<Option<Mention>>;
    async fn put_mention(&mut self, mention: &Mention, new: bool) -> Result<()>;
    /// Records that a mention matched a watchlist; returns the watchlist's matches published
    /// within `from_us..=to_us`.
    async fn record_mention_match(
        &mut self,
        watchlist: &str,
        mention: &str,
        at_us: i64,
        from_us: i64,
        to_us: i64,
    ) -> Result<i64>;
    /// The open (proposed or declared) media incident a watchlist opened, if any.
    async fn open_incident_of_watchlist(&mut self, watchlist: &str) -> Result<Option<String>>;
    /// The newest stored template for a stage whose unit covers `org_unit`.
    async fn template_for(&mut self, org_unit: &str, stage: i32) -> Result<Option<ResponseTemplate>>;
    async fn insert_template(&mut self, template: &ResponseTemplate) -> Result<()>;
    async fn vip_by_reference(&mut self, institution: &str, crm_reference: &str) -> Result<Option<Vip>>;
    /// Inserts or replaces a VIP with its blind indexes.
    async fn put_vip(&mut self, vip: &Vip, digests: &[String], new: bool) -> Result<()>;
    async fn delete_vip(&mut self, id: &str) -> Result<Option<Vip>>;
    /// The VIP any of `digests` names at `institution`.
    async fn vip_of(&mut self, institution: &str, digests: &[String]) -> Result<Option<Vip>>;
    /// Records that a complaint is a VIP's; `false` when it was recorded before.
    async fn record_vip_match(&mut self, complaint: &str, vip: &str, now_us: i64) -> Result<bool>;
    async fn load_flag(&mut self, id: &str) -> Result<Option<Stored<MaliciousFlag>>>;
    async fn put_flag(&mut self, flag: &MaliciousFlag, version: Option<i64>) -> Result<()>;

    /// The stored first result of a request id: its fingerprint and response.
    async fn load_request(&mut self, id: &str) -> Result<Option<(String, Vec<u8>)>>;
    async fn save_request(&mut self, id: &str, fingerprint: &str, response: &[u8], now_us: i64) -> Result<()>;
}

/// Implements [`EscTx`] for one backend's connection of database `$db`; `$lock` ends the
/// reads that lock.
macro_rules! esc_tx {
    ($conn:ty, $db:ty, lock = $lock:literal) => {
        #[async_trait]
        impl EscTx for $conn {
            async fn complaint(&mut self, complaint: &str) -> Result<Option<Known>> {
                let row: Option<KnownRow> = sqlx::query_as(concat!(super::known_sql!(), " WHERE complaint = $1", $lock))
                    .bind(complaint)
                    .fetch_optional(&mut *self)
                    .await?;
                row.map(Known::try_from).transpose()
            }

            async fn complaint_of_case(&mut self, case: &str) -> Result<Option<Known>> {
                let row: Option<KnownRow> = sqlx::query_as(concat!(super::known_sql!(), " WHERE case_name = $1", $lock))
                    .bind(case)
                    .fetch_optional(&mut *self)
                    .await?;
                row.map(Known::try_from).transpose()
            }

            async fn record_accepted(
                &mut self,
                complaint: &str,
                org_unit: &str,
                grade: i32,
                complainant_key: &str,
                payload: &[u8],
            ) -> Result<()> {
                // The case feed may have told of the case first: its grade is the newer one.
                sqlx::query(
                    "INSERT INTO complaints (complaint, org_unit, accepted, accepted_record, grade, complainant_key) \
                     VALUES ($1, $2, 1, $3, $4, $5) ON CONFLICT (complaint) DO UPDATE SET accepted = 1, \
                     accepted_record = excluded.accepted_record, complainant_key = excluded.complainant_key, \
                     org_unit = CASE WHEN complaints.org_unit = '' THEN excluded.org_unit ELSE complaints.org_unit END, \
                     grade = CASE WHEN complaints.case_name IS NULL THEN excluded.grade ELSE complaints.grade END",
                )
                .bind(complaint)
                .bind(org_unit)
                .bind(payload)
                .bind(i64::from(grade))
                .bind(complainant_key)
                .execute(&mut *self)
                .await?;
                Ok(())
            }

            async fn record_restriction(&mut self, complaint: &str, org_unit: &str, restricted: bool) -> Result<()> {
                sqlx::query(
                    "INSERT INTO complaints (complaint, org_unit, restricted) VALUES ($1, $2, $3) \
                     ON CONFLICT (complaint) DO UPDATE SET restricted = excluded.restricted",
                )
                .bind(complaint)
                .bind(org_unit)
                .bind(i64::from(restricted))
                .execute(&mut *self)
                .await?;
                Ok(())
            }

            async fn record_case(&mut self, complaint: &str, case: &CaseFacts) -> Result<()> {
                sqlx::query(
                    "INSERT INTO complaints (complaint, org_unit, case_name, grade, assignee, department, case_open) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (complaint) DO UPDATE SET \
                     org_unit = excluded.org_unit, case_name = excluded.case_name, grade = excluded.grade, \
                     assignee = excluded.assignee, department = excluded.department, case_open = excluded.case_open",
                )
                .bind(complaint)
                .bind(&case.org_unit)
                .bind(&case.case)
                .bind(i64::from(case.grade))
                .bind(&case.assignee)
                .bind(&case.department)
                .bind(i64::from(case.open))
                .execute(&mut *self)
                .await?;
                Ok(())
            }

            async fn load_incident(&mut self, id: &str) -> Result<Option<Stored<Incident>>> {
                let row: Option<(Vec<u8>, i64)> =
                    sqlx::query_as(concat!("SELECT record, version FROM incidents WHERE id = $1", $lock))
                        .bind(id)
                        .fetch_optional(&mut *self)
                        .await?;
                Ok(row.map(|(r, version)| Ok::<_, EscalationError>(Stored { record: Incident::decode(r.as_slice())?, version })).transpose()?)
            }

            async fn insert_incident(&mut self, incident: &Incident, next_check_us: Option<i64>) -> Result<()> {
                sqlx::query(
                    "INSERT INTO incidents (id, org_unit, kind, state, create_time_us, version, next_check_us, record, \
                     watchlist) VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $8)",
                )
                .bind(id_of(&incident.name))
                .bind(&incident.org_unit)
                .bind(i64::from(incident.kind))
                .bind(i64::from(incident.state))
                .bind(super::micros(incident.create_time.as_ref()))
                .bind(next_check_us)
                .bind(incident.encode_to_vec())
                .bind(Some(incident.watchlist.clone()).filter(|w| !w.is_empty()))
                .execute(&mut *self)
                .await?;
                Ok(())
            }

            async fn save_incident(&mut self, incident: &Incident, version: i64, next_check_us: Option<i64>) -> Result<()> {
                let saved = sqlx::query(
                    "UPDATE incidents SET state = $2, version = $3, next_check_us = $4, record = $5 \
                     WHERE id = $1 AND version = $6",
                )
                .bind(id_of(&incident.name))
                .bind(i64::from(incident.state))
                .bind(version + 1)
                .bind(next_check_us)
                .bind(incident.encode_to_vec())
                .bind(version)
                .execute(&mut *self)
                .await?
                .rows_affected();
                if saved != 1 {
                    return Err(anyhow::anyhow!("incident {} changed while it was being written", incident.name).into());
                }
                Ok(())
            }

            async fn members(&mut self, incident: &str) -> Result<Vec<IncidentMember>> {
                let rows: Vec<Vec<u8>> =
                    sqlx::query_scalar("SELECT record FROM incident_members WHERE incident = $1 ORDER BY seq")
                        .bind(incident)
                        .fetch_all(&mut *self)
                        .await?;
                rows.iter().map(|r| Ok(IncidentMember::decode(r.as_slice())?)).collect()
            }

            async fn load_member(&mut self, incident: &str, complaint: &str) -> Result<Option<IncidentMember>> {
                let row: Option<Vec<u8>> = sqlx::query_scalar(concat!(
                    "SELECT record FROM incident_members WHERE incident = $1 AND complaint = $2",
                    $lock
                ))
                .bind(incident)
                .bind(complaint)
                .fetch_optional(&mut *self)
                .await?;
                Ok(row.map(|r| IncidentMember::decode(r.as_slice())).transpose()?)
            }

            async fn insert_member(&mut self, member: &IncidentMember, complainant_key: &str) -> Result<bool> {
                let inserted = sqlx::query(
                    "INSERT INTO incident_members (incident, complaint, seq, record, complainant) \
                     SELECT $1, $2, COALESCE(MAX(seq), 0) + 1, $3, $4 FROM incident_members WHERE incident = $1 \
                     ON CONFLICT (incident, complaint) DO NOTHING",
                )
                .bind(&member.incident)
                .bind(&member.complaint)
                .bind(member.encode_to_vec())
                .bind(complainant_key)
                .execute(&mut *self)
                .await?
                .rows_affected();
                Ok(inserted == 1)
            }

            async fn lead_member(&mut self, incident: &str) -> Result<Option<String>> {
                Ok(sqlx::query_scalar("SELECT complaint FROM incident_members WHERE incident = $1 ORDER BY seq LIMIT 1")
                    .bind(incident)
                    .fetch_optional(&mut *self)
                    .await?)
            }

            async fn has_complainant(&mut self, incident: &str, complainant_key: &str) -> Result<bool> {
                let found: Option<String> = sqlx::query_scalar(
                    "SELECT complaint FROM incident_members WHERE incident = $1 AND complainant = $2 LIMIT 1",
                )
                .bind(incident)
                .bind(complainant_key)
                .fetch_optional(&mut *self)
                .await?;
                Ok(found.is_some())
            }

            async fn save_member(&mut self, member: &IncidentMember) -> Result<()> {
                sqlx::query("UPDATE incident_members SET record = $3 WHERE incident = $1 AND complaint = $2")
                    .bind(&member.incident)
                    .bind(&member.complaint)
                    .bind(member.encode_to_vec())
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }

            async fn incidents_of(&mut self, complaint: &str) -> Result<Vec<String>> {
                Ok(sqlx::query_scalar("SELECT incident FROM incident_members WHERE complaint = $1 ORDER BY incident")
                    .bind(complaint)
                    .fetch_all(&mut *self)
                    .await?)
            }

            async fn statements(&mut self, incident: &str) -> Result<Vec<Statement>> {
                let rows: Vec<Vec<u8>> = sqlx::query_scalar(concat!(
                    "SELECT record FROM statements WHERE incident = $1 ORDER BY version DESC",
                    $lock
                ))
                .bind(incident)
                .fetch_all(&mut *self)
                .await?;
                rows.iter().map(|r| Ok(Statement::decode(r.as_slice())?)).collect()
            }

            async fn put_statement(&mut self, s: &Statement, new: bool) -> Result<()> {
                let sql = if new {
                    "INSERT INTO statements (incident, version, state, record) VALUES ($1, $2, $3, $4)"
                } else {
                    "UPDATE statements SET state = $3, record = $4 WHERE incident = $1 AND version = $2"
                };
                sqlx::query(sql)
                    .bind(&s.incident)
                    .bind(i64::from(s.version))
                    .bind(i64::from(s.state))
                    .bind(s.encode_to_vec())
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }

            async fn insert_statement_use(&mut self, id: &str, used: &StatementUse) -> Result<()> {
                let s = used.statement.clone().unwrap_or_default();
                sqlx::query(
                    "INSERT INTO statement_uses (id, incident, version, use_time_us, record) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id)
                .bind(&s.incident)
                .bind(i64::from(s.version))
                .bind(super::micros(used.use_time.as_ref()))
                .bind(used.encode_to_vec())
                .execute(&mut *self)
                .await?;
                Ok(())
            }

            async fn load_escalation(&mut self, id: &str) -> Result<Option<Stored<Escalation>>> {
                let row: Option<(Vec<u8>, i64)> =
                    sqlx::query_as(concat!("SELECT record, version FROM escalations WHERE id = $1", $lock))
                        .bind(id)
                        .fetch_optional(&mut *self)
                        .await?;
                Ok(row.map(|(r, version)| Ok::<_, EscalationError>(Stored { record: Escalation::decode(r.as_slice())?, version })).transpose()?)
            }

            async fn escalation_of(&mut self, complaint: &str) -> Result<Option<Stored<Escalation>>> {
                let row: Option<(Vec<u8>, i64)> =
                    sqlx::query_as(concat!("SELECT record, version FROM escalations WHERE complaint = $1", $lock))
                        .bind(complaint)
                        .fetch_optional(&mut *self)
                        .await?;
                Ok(row.map(|(r, version)| Ok::<_, EscalationError>(Stored { record: Escalation::decode(r.as_slice())?, version })).transpose()?)
            }

            async fn put_escalation(&mut self, e: &Escalation, version: Option<i64>, next_check_us: Option<i64>) -> Result<()> {
                let written = match version {
                    None => sqlx::query(
                        "INSERT INTO escalations (id, complaint, org_unit, state, level, update_time_us, version, \
                         next_check_us, record) VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8)",
                    )
                    .bind(id_of(&e.name))
                    .bind(&e.complaint)
                    .bind(&e.org_unit)
                    .bind(i64::from(e.state))
                    .bind(i64::from(e.level))
                    .bind(super::micros(e.update_time.as_ref()))
                    .bind(next_check_us)
                    .bind(e.encode_to_vec())
                    .execute(&mut *self)
                    .await?
                    .rows_affected(),
                    Some(version) => sqlx::query(
                        "UPDATE escalations SET state = $2, level = $3, update_time_us = $4, version = $5, \
                         next_check_us = $6, record = $7 WHERE id = $1 AND version = $8",
                    )
                    .bind(id_of(&e.name))
                    .bind(i64::from(e.state))
                    .bind(i64::from(e.level))
                    .bind(super::micros(e.update_time.as_ref()))
                    .bind(version + 1)
                    .bind(next_check_us)
                    .bind(e.encode_to_vec())
                    .bind(version)
                    .execute(&mut *self)
                    .await?
                    .rows_affected(),
                };
                if written != 1 {
                    return Err(anyhow::anyhow!("escalation {} changed while it was being written", e.name).into());
                }
                Ok(())
            }

            async fn insert_alert(&mut self, alert: &Alert, cause: &str) -> Result<bool> {
                let inserted = sqlx::query(
                    "INSERT INTO alerts (id, org_unit, kind, acknowledged, create_time_us, cause, record) \
                     VALUES ($1, $2, $3, 0, $4, $5, $6) ON CONFLICT (cause) DO NOTHING",
                )
                .bind(id_of(&alert.name))
                .bind(&alert.org_unit)
                .bind(i64::from(alert.kind))
                .bind(super::micros(alert.create_time.as_ref()))
                .bind(cause)
                .bind(alert.encode_to_vec())
                .execute(&mut *self)
                .await?
                .rows_affected();
                Ok(inserted == 1)
            }

            async fn load_alert(&mut self, id: &str) -> Result<Option<Alert>> {
                let row: Option<Vec<u8>> = sqlx::query_scalar(concat!("SELECT record FROM alerts WHERE id = $1", $lock))
                    .bind(id)
                    .fetch_optional(&mut *self)
                    .await?;
                Ok(row.map(|r| Alert::decode(r.as_slice())).transpose()?)
            }

            async fn save_alert(&mut self, alert: &Alert) -> Result<()> {
                sqlx::query("UPDATE alerts SET acknowledged = $2, record = $3 WHERE id = $1")
                    .bind(id_of(&alert.name))
                    .bind(i64::from(!alert.acknowledged_by.is_empty()))
                    .bind(alert.encode_to_vec())
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }

            async fn insert_action(&mut self, action: &CaseAction, now_us: i64) -> Result<bool> {
                let request = serde_json::to_string(&action.request).map_err(anyhow::Error::from)?;
                let inserted = sqlx::query(
                    "INSERT INTO case_actions (key, complaint, org_unit, kind, request, state, attempts, \
                     next_attempt_us, create_time_us) VALUES ($1, $2, $3, $4, $5, 0, 0, $6, $6) \
                     ON CONFLICT (key) DO NOTHING",
                )
                .bind(&action.key)
                .bind(&action.complaint)
                .bind(&action.org_unit)
                .bind(action.request.kind())
                .bind(request)
                .bind(now_us)
                .execute(&mut *self)
                .await?
                .rows_affected();
                Ok(inserted == 1)
            }

            async fn finish_action(&mut self, key: &str, state: i64, error: &str, next_attempt_us: i64, now_us: i64) -> Result<bool> {
                let updated = sqlx::query(
                    "UPDATE case_actions SET state = $2, last_error = $3, next_attempt_us = $4, attempts = attempts + 1, \
                     done_time_us = CASE WHEN $2 = 0 THEN NULL ELSE $5 END WHERE key = $1 AND state = 0",
                )
                .bind(key)
                .bind(state)
                .bind(error)
                .bind(next_attempt_us)
                .bind(now_us)
                .execute(&mut *self)
                .await?
                .rows_affected();
                Ok(updated == 1)
            }

            async fn enqueue_match(&mut self, complaint: &str, seq: i64, org_unit: &str) -> Result<()> {
                sqlx::query(
                    "INSERT INTO match_queue (complaint, enqueue_seq, org_unit) VALUES ($1, $2, $3) \
                     ON CONFLICT (complaint) DO NOTHING",
                )
                .bind(complaint)
                .bind(seq)
                .bind(org_unit)
                .execute(&mut *self)
                .await?;
                Ok(())
            }

            async fn dequeue_match(&mut self, complaint: &str) -> Result<()> {
                sqlx::query("DELETE FROM match_queue WHERE complaint = $1").bind(complaint).execute(&mut *self).await?;
                Ok(())
            }

            async fn fingerprinted(&mut self, complaint: &str) -> Result<bool> {
                let found: Option<String> = sqlx::query_scalar("SELECT complaint FROM fingerprints WHERE complaint = $1")
                    .bind(complaint)
                    .fetch_optional(&mut *self)
                    .await?;
                Ok(found.is_some())
            }

            async fn candidates(
                &mut self,
                institution: &str,
                buckets: &[i64],
                from_us: i64,
                to_us: i64,
            ) -> Result<Vec<FingerprintRow>> {
                if buckets.is_empty() {
                    return Ok(Vec::new());
                }
                let mut keys = buckets.to_vec();
                keys.sort_unstable();
                keys.dedup();
                let mut q = sqlx::QueryBuilder::<$db>::new(concat!(
                    "SELECT ", fingerprint_columns!("f."), " FROM fingerprints f WHERE f.complaint IN ("
                ));
                // The newest complaints of each bucket, each bucket read backwards along its
                // key: a flood of like complaints fills the same buckets, and a match reads no
                // more of them however long the flood goes on.
                for (i, bucket) in keys.iter().enumerate() {
                    if i > 0 {
                        q.push(" UNION ");
                    }
                    q.push("SELECT complaint FROM (SELECT b.complaint FROM lsh_buckets b WHERE b.institution = ");
                    q.push_bind(institution);
                    q.push(" AND b.bucket = ").push_bind(*bucket);
                    q.push(" AND b.receive_time_us >= ").push_bind(from_us);
                    q.push(" AND b.receive_time_us <= ").push_bind(to_us);
                    q.push(" ORDER BY b.receive_time_us DESC, b.complaint DESC LIMIT ").push_bind(CANDIDATES_PER_BUCKET);
                    q.push(format!(") AS s{i}"));
                }
                q.push(")");
                Ok(q.build_query_as::<FingerprintRow>().fetch_all(&mut *self).await?)
            }

            async fn insert_fingerprint(&mut self, row: &FingerprintRow, buckets: &[i64]) -> Result<()> {
                sqlx::query(concat!(
                    "INSERT INTO fingerprints (", fingerprint_columns!(""), ") \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                ))
                .bind(&row.complaint)
                .bind(&row.institution)
                .bind(row.receive_time_us)
                .bind(&row.cluster)
                .bind(&row.complainant_key)
                .bind(&row.tokens)
                .bind(&row.business_type)
                .bind(&row.cause)
                .bind(&row.matched_with)
                .bind(row.score)
                .bind(&row.shared_terms)
                .execute(&mut *self)
                .await?;
                // Two bands hashing alike would be one key twice: each key is written once.
                let mut keys = buckets.to_vec();
                keys.sort_unstable();
                keys.dedup();
                if !keys.is_empty() {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO lsh_buckets (institution, bucket, receive_time_us, complaint) ",
                    );
                    q.push_values(&keys, |mut r, b| {
                        r.push_bind(&row.institution).push_bind(*b).push_bind(row.receive_time_us).push_bind(&row.complaint);
                    });
                    q.push(" ON CONFLICT DO NOTHING");
                    q.build().execute(&mut *self).await?;
                }
                Ok(())
            }

            async fn forget_candidates(&mut self, before_us: i64) -> Result<u64> {
                Ok(sqlx::query(concat!(
                    "DELETE FROM lsh_buckets WHERE (institution, bucket, receive_time_us, complaint) IN \
                     (SELECT institution, bucket, receive_time_us, complaint FROM lsh_buckets \
                      WHERE receive_time_us < $1 ORDER BY receive_time_us LIMIT ",
                    forget_batch!(),
                    ")"
                ))
                .bind(before_us)
                .execute(&mut *self)
                .await?
                .rows_affected())
            }

            async fn cluster(&mut self, id: &str) -> Result<Option<Option<String>>> {
                Ok(sqlx::query_scalar(concat!("SELECT incident FROM clusters WHERE id = $1", $lock))
                    .bind(id)
                    .fetch_optional(&mut *self)
                    .await?)
            }

            async fn insert_cluster(&mut self, id: &str, institution: &str) -> Result<()> {
                sqlx::query("INSERT INTO clusters (id, institution) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
                    .bind(id)
                    .bind(institution)
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }

            async fn merge_cluster(&mut self, from: &str, to: &str) -> Result<()> {
                sqlx::query("UPDATE fingerprints SET cluster = $2 WHERE cluster = $1")
                    .bind(from)
                    .bind(to)
                    .execute(&mut *self)
                    .await?;
                sqlx::query("DELETE FROM clusters WHERE id = $1").bind(from).execute(&mut *self).await?;
                Ok(())
            }

            async fn set_cluster_incident(&mut self, id: &str, incident: &str) -> Result<()> {
                sqlx::query("UPDATE clusters SET incident = $2 WHERE id = $1")
                    .bind(id)
                    .bind(incident)
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }

            async fn cluster_counts(&mut self, id: &str, from_us: i64, to_us: i64) -> Result<(i64, i64)> {
                Ok(sqlx::query_as(
                    "SELECT COUNT(DISTINCT complainant_key), \
                     COUNT(DISTINCT CASE WHEN receive_time_us >= $2 AND receive_time_us <= $3 THEN complainant_key END) \
                     FROM fingerprints WHERE cluster = $1",
                )
                .bind(id)
                .bind(from_us)
                .bind(to_us)
                .fetch_one(&mut *self)
                .await?)
            }

            async fn cluster_members(&mut self, id: &str) -> Result<Vec<FingerprintRow>> {
                Ok(sqlx::query_as(concat!(
                    "SELECT ", fingerprint_columns!(""), " FROM fingerprints WHERE cluster = $1 \
                     ORDER BY receive_time_us, complaint"
                ))
                .bind(id)
                .fetch_all(&mut *self)
                .await?)
            }

            async fn load_watchlist(&mut self, id: &str) -> Result<Option<Stored<Watchlist>>> {
                let row: Option<(Vec<u8>, i64)> =
                    sqlx::query_as(concat!("SELECT record, version FROM watchlists WHERE id = $1", $lock))
                        .bind(id)
                        .fetch_optional(&mut *self)
                        .await?;
                Ok(row.map(|(r, version)| Ok::<_, EscalationError>(Stored { record: Watchlist::decode(r.as_slice())?, version })).transpose()?)
            }

            async fn put_watchlist(&mut self, w: &Watchlist, version: Option<i64>) -> Result<()> {
                let written = match version {
                    None => sqlx::query("INSERT INTO watchlists (id, org_unit, version, record) VALUES ($1, $2, 1, $3)")
                        .bind(id_of(&w.name))
                        .bind(&w.org_unit)
                        .bind(w.encode_to_vec())
                        .execute(&mut *self)
                        .await?
                        .rows_affected(),
                    Some(version) => sqlx::query("UPDATE watchlists SET version = $2, record = $3 WHERE id = $1 AND version = $4")
                        .bind(id_of(&w.name))
                        .bind(version + 1)
                        .bind(w.encode_to_vec())
                        .bind(version)
                        .execute(&mut *self)
                        .await?
                        .rows_affected(),
                };
                if written != 1 {
                    return Err(anyhow::anyhow!("watchlist {} changed while it was being written", w.name).into());
                }
                Ok(())
            }

            async fn delete_watchlist(&mut self, id: &str) -> Result<bool> {
                Ok(sqlx::query("DELETE FROM watchlists WHERE id = $1").bind(id).execute(&mut *self).await?.rows_affected() == 1)
            }

            async fn watchlists_covering(&mut self, org_unit: &str) -> Result<Vec<Watchlist>> {
                let rows: Vec<Vec<u8>> = sqlx::query_scalar(
                    "SELECT record FROM watchlists WHERE org_unit = $1 OR substr($1, 1, length(org_unit) + 1) = org_unit || '/' \
                     ORDER BY id",
                )
                .bind(org_unit)
                .fetch_all(&mut *self)
                .await?;
                rows.iter().map(|r| Ok(Watchlist::decode(r.as_slice())?)).collect()
            }

            async fn load_mention(&mut self, id: &str) -> Result<Option<Mention>> {
                let row: Option<Vec<u8>> = sqlx::query_scalar(concat!("SELECT record FROM mentions WHERE id = $1", $lock))
                    .bind(id)
                    .fetch_optional(&mut *self)
                    .await?;
                Ok(row.map(|r| Mention::decode(r.as_slice())).transpose()?)
            }

            async fn put_mention(&mut self, m: &Mention, new: bool) -> Result<()> {
                let incident = Some(m.incident.clone()).filter(|i| !i.is_empty());
                let sql = if new {
                    "INSERT INTO mentions (id, org_unit, publish_time_us, incident, record) VALUES ($1, $2, $3, $4, $5)"
                } else {
                    "UPDATE mentions SET org_unit = $2, publish_time_us = $3, incident = $4, record = $5 WHERE id = $1"
                };
                sqlx::query(sql)
                    .bind(id_of(&m.name))
                    .bind(&m.org_unit)
                    .bind(super::micros(m.publish_time.as_ref()))
                    .bind(incident)
                    .bind(m.encode_to_vec())
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }

            async fn record_mention_match(&mut self, watchlist: &str, mention: &str, at_us: i64, from_us: i64, to_us: i64) -> Result<i64> {
                sqlx::query(
                    "INSERT INTO mention_matches (watchlist, mention, publish_time_us) VALUES ($1, $2, $3) \
                     ON CONFLICT (watchlist, mention) DO NOTHING",
                )
                .bind(watchlist)
                .bind(mention)
                .bind(at_us)
                .execute(&mut *self)
                .await?;
                Ok(sqlx::query_scalar(
                    "SELECT COUNT(*) FROM mention_matches WHERE watchlist = $1 AND publish_time_us >= $2 AND publish_time_us <= $3",
                )
                .bind(watchlist)
                .bind(from_us)
                .bind(to_us)
                .fetch_one(&mut *self)
                .await?)
            }

            async fn open_incident_of_watchlist(&mut self, watchlist: &str) -> Result<Option<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT id FROM incidents WHERE watchlist = $1 AND state IN (1, 2) ORDER BY id DESC LIMIT 1",
                )
                .bind(watchlist)
                .fetch_optional(&mut *self)
                .await?)
            }

            async fn template_for(&mut self, org_unit: &str, stage: i32) -> Result<Option<ResponseTemplate>> {
                let row: Option<Vec<u8>> = sqlx::query_scalar(
                    "SELECT record FROM response_templates WHERE stage = $2 \
                     AND (org_unit = $1 OR substr($1, 1, length(org_unit) + 1) = org_unit || '/') \
                     ORDER BY length(org_unit) DESC, id DESC LIMIT 1",
                )
                .bind(org_unit)
                .bind(i64::from(stage))
                .fetch_optional(&mut *self)
                .await?;
                Ok(row.map(|r| ResponseTemplate::decode(r.as_slice())).transpose()?)
            }

            async fn insert_template(&mut self, t: &ResponseTemplate) -> Result<()> {
                sqlx::query("INSERT INTO response_templates (id, org_unit, stage, record) VALUES ($1, $2, $3, $4)")
                    .bind(id_of(&t.name))
                    .bind(&t.org_unit)
                    .bind(i64::from(t.stage))
                    .bind(t.encode_to_vec())
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }

            async fn vip_by_reference(&mut self, institution: &str, crm_reference: &str) -> Result<Option<Vip>> {
                let row: Option<Vec<u8>> = sqlx::query_scalar(concat!(
                    "SELECT record FROM vips WHERE institution = $1 AND crm_reference = $2",
                    $lock
                ))
                .bind(institution)
                .bind(crm_reference)
                .fetch_optional(&mut *self)
                .await?;
                Ok(row.map(|r| Vip::decode(r.as_slice())).transpose()?)
            }

            async fn put_vip(&mut self, vip: &Vip, digests: &[String], new: bool) -> Result<()> {
                let id = id_of(&vip.name);
                let sql = if new {
                    "INSERT INTO vips (id, institution, crm_reference, record) VALUES ($1, $2, $3, $4)"
                } else {
                    "UPDATE vips SET institution = $2, crm_reference = $3, record = $4 WHERE id = $1"
                };
                sqlx::query(sql)
                    .bind(id)
                    .bind(&vip.org_unit)
                    .bind(&vip.crm_reference)
                    .bind(vip.encode_to_vec())
                    .execute(&mut *self)
                    .await?;
                sqlx::query("DELETE FROM vip_index WHERE vip = $1").bind(id).execute(&mut *self).await?;
                for digest in digests {
                    // A digest another VIP holds moves to this one: the CRM's latest word counts.
                    sqlx::query(
                        "INSERT INTO vip_index (institution, digest, vip) VALUES ($1, $2, $3) \
                         ON CONFLICT (institution, digest) DO UPDATE SET vip = excluded.vip",
                    )
                    .bind(&vip.org_unit)
                    .bind(digest)
                    .bind(id)
                    .execute(&mut *self)
                    .await?;
                }
                Ok(())
            }

            async fn delete_vip(&mut self, id: &str) -> Result<Option<Vip>> {
                let row: Option<Vec<u8>> = sqlx::query_scalar(concat!("SELECT record FROM vips WHERE id = $1", $lock))
                    .bind(id)
                    .fetch_optional(&mut *self)
                    .await?;
                let Some(row) = row else { return Ok(None) };
                sqlx::query("DELETE FROM vip_index WHERE vip = $1").bind(id).execute(&mut *self).await?;
                sqlx::query("DELETE FROM vips WHERE id = $1").bind(id).execute(&mut *self).await?;
                Ok(Some(Vip::decode(row.as_slice())?))
            }

            async fn vip_of(&mut self, institution: &str, digests: &[String]) -> Result<Option<Vip>> {
                for digest in digests {
                    let row: Option<Vec<u8>> = sqlx::query_scalar(
                        "SELECT v.record FROM vip_index i JOIN vips v ON v.id = i.vip \
                         WHERE i.institution = $1 AND i.digest = $2",
                    )
                    .bind(institution)
                    .bind(digest)
                    .fetch_optional(&mut *self)
                    .await?;
                    if let Some(row) = row {
                        return Ok(Some(Vip::decode(row.as_slice())?));
                    }
                }
                Ok(None)
            }

            async fn record_vip_match(&mut self, complaint: &str, vip: &str, now_us: i64) -> Result<bool> {
                Ok(sqlx::query(
                    "INSERT INTO vip_matches (complaint, vip, match_time_us) VALUES ($1, $2, $3) ON CONFLICT (complaint) DO NOTHING",
                )
                .bind(complaint)
                .bind(vip)
                .bind(now_us)
                .execute(&mut *self)
                .await?
                .rows_affected()
                    == 1)
            }

            async fn load_flag(&mut self, id: &str) -> Result<Option<Stored<MaliciousFlag>>> {
                let row: Option<(Vec<u8>, i64)> =
                    sqlx::query_as(concat!("SELECT record, version FROM malicious_flags WHERE id = $1", $lock))
                        .bind(id)
                        .fetch_optional(&mut *self)
                        .await?;
                Ok(row.map(|(r, version)| Ok::<_, EscalationError>(Stored { record: MaliciousFlag::decode(r.as_slice())?, version })).transpose()?)
            }

            async fn put_flag(&mut self, f: &MaliciousFlag, version: Option<i64>) -> Result<()> {
                let written = match version {
                    None => sqlx::query(
                        "INSERT INTO malicious_flags (id, complaint, org_unit, state, version, record) VALUES ($1, $2, $3, $4, 1, $5)",
                    )
                    .bind(id_of(&f.name))
                    .bind(&f.complaint)
                    .bind(&f.org_unit)
                    .bind(i64::from(f.state))
                    .bind(f.encode_to_vec())
                    .execute(&mut *self)
                    .await?
                    .rows_affected(),
                    Some(version) => sqlx::query(
                        "UPDATE malicious_flags SET state = $2, version = $3, record = $4 WHERE id = $1 AND version = $5",
                    )
                    .bind(id_of(&f.name))
                    .bind(i64::from(f.state))
                    .bind(version + 1)
                    .bind(f.encode_to_vec())
                    .bind(version)
                    .execute(&mut *self)
                    .await?
                    .rows_affected(),
                };
                if written != 1 {
                    return Err(anyhow::anyhow!("flag {} changed while it was being written", f.name).into());
                }
                Ok(())
            }

            async fn load_request(&mut self, id: &str) -> Result<Option<(String, Vec<u8>)>> {
                Ok(sqlx::query_as("SELECT fingerprint, response FROM requests WHERE request_id = $1")
                    .bind(id)
                    .fetch_optional(&mut *self)
                    .await?)
            }

            async fn save_request(&mut self, id: &str, fingerprint: &str, response: &[u8], now_us: i64) -> Result<()> {
                sqlx::query(
                    "INSERT INTO requests (request_id, fingerprint, response, record_time_us) VALUES ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(fingerprint)
                .bind(response)
                .bind(now_us)
                .execute(&mut *self)
                .await?;
                Ok(())
            }
        }
    };
}

esc_tx!(SqliteConnection, sqlx::Sqlite, lock = "");
esc_tx!(PgConnection, sqlx::Postgres, lock = " FOR UPDATE");
