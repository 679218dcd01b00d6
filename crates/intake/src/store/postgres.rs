//! PostgreSQL implementation. The request id is claimed first, so two concurrent submissions
//! of one request serialise on its unique key and the loser replays the winner's result.

use async_trait::async_trait;
use prost::Message;
use redress_platform::events::Feed;
use redress_platform::time::to_micros;
use std::sync::Arc;

use redress_platform::host::Supervisor;
use redress_proto::redress::intake::v1::{Complainant, Complaint};
use sqlx::{PgConnection, PgPool, Row};

use super::{
    ACCESSES, DELETE_INDEX, ERASE_SUBJECT, Erased, FIND_SUBJECT, INSERT_INDEX, INSERT_SUBJECT, Identifier, IntakeStore,
    LOAD_SEALED, LOAD_SEALED_OF_SUBJECT, ListQuery, Listed, NewComplaint, PiiAccess, PiiAccessRecord, SealedRow,
    StoreError, Subject, Submitted, UPDATE_SEALED, numbered,
};
use crate::domain::pii::{Keyring, WrappedKey};

#[derive(Clone)]
pub struct PostgresIntakeStore {
    pool: PgPool,
    feed: Feed,
    keyring: Arc<Keyring>,
}

/// Serialises the creation of subjects, so two concurrent first complaints of one person
/// share one subject (ASCII "redrsubj").
const SUBJECT_LOCK: i64 = 0x7265_6472_7375_626a;

impl PostgresIntakeStore {
    pub async fn open(pool: PgPool, keyring: Arc<Keyring>, supervisor: &Supervisor) -> anyhow::Result<Self> {
        redress_platform::db::migrate_postgres(&pool, &super::POSTGRES_MIGRATIONS).await?;
        redress_platform::events::migrate_postgres(&pool).await?;
        let feed = Feed::postgres(pool.clone(), supervisor);
        let store = Self { pool, feed, keyring };
        store.seal_legacy().await?;
        store.rewrap_keys().await?;
        Ok(store)
    }

    /// Seals the personal information of complaints recorded before it was encrypted at rest.
    async fn seal_legacy(&self) -> anyhow::Result<()> {
        loop {
            let mut tx = self.pool.begin().await?;
            let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(
                "SELECT id, record FROM complaints WHERE subject_id IS NULL LIMIT 200 FOR UPDATE SKIP LOCKED",
            )
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                return Ok(());
            }
            for (id, record) in &rows {
                let complaint = Complaint::decode(record.as_slice())?;
                let subject = subject_for(&mut tx, &self.keyring, &complaint).await?;
                let (record, pii) = super::seal(&complaint, &subject)?;
                sqlx::query(UPDATE_SEALED).bind(id).bind(record).bind(pii).bind(&subject.id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            tracing::info!(complaints = rows.len(), "sealed personal information of earlier complaints");
        }
    }

    /// Re-wraps every subject's data key under the active master key (after a rotation), so
    /// a retired master key can be removed once this has run without reporting failures.
    async fn rewrap_keys(&self) -> anyhow::Result<()> {
        let mut after = String::new();
        let mut skipped = Vec::new();
        loop {
            let mut tx = self.pool.begin().await?;
            let stale: Vec<(String, String, Vec<u8>)> = sqlx::query_as(const_sql::STALE_WRAPPED_LOCKED)
                .bind(self.keyring.active_key_id())
                .bind(&after)
                .fetch_all(&mut *tx)
                .await?;
            let Some(last) = stale.last().map(|(id, ..)| id.clone()) else { break };
            let fresh = super::rewrapped(&self.keyring, stale, &mut skipped);
            let done = fresh.len();
            for (id, old_key_id, new) in fresh {
                sqlx::query(super::REWRAP)
                    .bind(&id)
                    .bind(&new.key_id)
                    .bind(&new.sealed)
                    .bind(&old_key_id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            if done > 0 {
                tracing::info!(subjects = done, "re-wrapped data keys under the active master key");
            }
            after = last;
        }
        if !skipped.is_empty() {
            tracing::error!(
                subjects = skipped.len(),
                "data keys of some subjects could not be re-wrapped: keep their master keys configured"
            );
            metrics::counter!("redress_pii_rewrap_failures_total").increment(skipped.len() as u64);
        }
        Ok(())
    }

    async fn find_subject(tx: &mut PgConnection, kind: &str, digest: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(String, String, Vec<u8>)> =
            sqlx::query_as(FIND_SUBJECT).bind(kind).bind(digest).fetch_optional(&mut *tx).await?;
        Ok(row.map(|(id, ..)| id))
    }

    async fn replay(&self, request_id: &str, request_hash: &str) -> Result<Option<Submitted>, StoreError> {
        let row = sqlx::query(
            "SELECT r.request_hash, c.record FROM submit_requests r JOIN complaints c ON c.id = r.complaint_id \
             WHERE r.request_id = $1",
        )
        .bind(request_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let hash: String = row.try_get(0)?;
        if hash != request_hash {
            return Err(StoreError::RequestIdReused);
        }
        let record: Vec<u8> = row.try_get(1)?;
        Ok(Some(Submitted::Replayed(Complaint::decode(record.as_slice())?)))
    }
}

#[async_trait]
impl IntakeStore for PostgresIntakeStore {
    async fn submit(&self, new: NewComplaint) -> Result<Submitted, StoreError> {
        if let Some(done) = self.replay(&new.request_id, &new.request_hash).await? {
            return Ok(done);
        }
        let mut tx = self.pool.begin().await?;
        let claimed = sqlx::query(
            "INSERT INTO submit_requests (request_id, request_hash, complaint_id, record_time_us) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (request_id) DO NOTHING",
        )
        .bind(&new.request_id)
        .bind(&new.request_hash)
        .bind(&new.id)
        .bind(to_micros(new.create_time))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            tx.rollback().await?;
            return self
                .replay(&new.request_id, &new.request_hash)
                .await?
                .ok_or_else(|| StoreError::Other(anyhow::anyhow!("claimed request vanished")));
        }
        let seq: i64 = sqlx::query_scalar("SELECT nextval('complaint_number_seq')").fetch_one(&mut *tx).await?;
        let subject = subject_for(&mut tx, &self.keyring, &new.complaint).await?;
        let (business_type, cause) = super::codes(&new.complaint);
        let earlier: Option<String> = match (&business_type, &cause) {
            (Some(b), Some(c)) => sqlx::query_scalar(super::RECURRENCE)
                .bind(&subject.id)
                .bind(b)
                .bind(c)
                .bind(to_micros(new.recurrence_since))
                .bind(to_micros(new.receive_time))
                .fetch_optional(&mut *tx)
                .await?
                .map(|id: String| format!("complaints/{id}")),
            _ => None,
        };
        let (complaint, events) = numbered(&new, seq, earlier);
        let (record, pii) = super::seal(&complaint, &subject)?;
        sqlx::query(
            "INSERT INTO complaints (id, complaint_number, channel, receive_time_us, org_unit, state, record, \
             create_time_us, pii, subject_id, business_type, cause) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&new.id)
        .bind(&complaint.complaint_number)
        .bind(complaint.channel)
        .bind(to_micros(new.receive_time))
        .bind(&complaint.org_unit)
        .bind(complaint.state)
        .bind(record)
        .bind(to_micros(new.create_time))
        .bind(pii)
        .bind(&subject.id)
        .bind(&business_type)
        .bind(&cause)
        .execute(&mut *tx)
        .await?;
        for event in &events {
            event.append_postgres(&mut tx).await?;
        }
        tx.commit().await?;
        self.feed.notify_committed();
        Ok(Submitted::Created(complaint))
    }

    async fn get(&self, id: &str) -> Result<Option<Complaint>, StoreError> {
        let record: Option<Vec<u8>> = sqlx::query_scalar("SELECT record FROM complaints WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(record.map(|r| Complaint::decode(r.as_slice())).transpose()?)
    }

    async fn list(&self, q: &ListQuery) -> Result<Vec<Listed>, StoreError> {
        let rows = super::list_query!(q).fetch_all(&self.pool).await?;
        rows.into_iter().map(Listed::try_from).collect()
    }

    async fn reveal(&self, id: &str, access: &PiiAccess) -> Result<Option<Complaint>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let Some(row) = sqlx::query_as::<_, SealedRow>(LOAD_SEALED).bind(id).fetch_optional(&mut *tx).await? else {
            return Ok(None);
        };
        let complaint = row.open(&self.keyring)?;
        // Erased information reveals nothing, so there is no access to record.
        if let (Some(subject), Some(_), Some(_)) = (&row.subject_id, &row.pii, &row.wrapped_key) {
            record_access(&mut tx, Some(id), subject, access).await?;
        }
        tx.commit().await?;
        Ok(Some(complaint))
    }

    async fn export(&self, identifier: &Identifier, access: &PiiAccess) -> Result<Vec<Complaint>, StoreError> {
        let digest = identifier.digest(&self.keyring);
        let mut tx = self.pool.begin().await?;
        let Some(subject) = Self::find_subject(&mut tx, identifier.kind, &digest).await? else {
            return Ok(Vec::new());
        };
        let rows: Vec<SealedRow> = sqlx::query_as(LOAD_SEALED_OF_SUBJECT).bind(&subject).fetch_all(&mut *tx).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(row.open(&self.keyring)?);
            record_access(&mut tx, Some(&row.id), &subject, access).await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn correct(
        &self,
        id: &str,
        complainant: Complainant,
        access: &PiiAccess,
    ) -> Result<Option<Complaint>, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Subjects change under one lock, taken first (as erasure does), so a correction and an
        // erasure of the same person run one after the other and the correction sees the
        // erasure.
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SUBJECT_LOCK).execute(&mut *tx).await?;
        let Some(row) =
            sqlx::query_as::<_, SealedRow>(const_sql::LOAD_SEALED_LOCKED).bind(id).fetch_optional(&mut *tx).await?
        else {
            return Ok(None);
        };
        let (Some(old_subject), Some(_), Some(_), Some(_)) = (&row.subject_id, &row.key_id, &row.wrapped_key, &row.pii)
        else {
            return Err(StoreError::Erased);
        };
        let mut complaint = row.open(&self.keyring)?;
        complaint.complainant = Some(complainant);
        // The corrected complainant may be someone else: the complaint moves to the subject its
        // new identifiers name (found, or new), and the old subject keeps only the identifiers
        // its remaining complaints still carry.
        let subject = subject_for(&mut tx, &self.keyring, &complaint).await?;
        let (record, pii) = super::seal(&complaint, &subject)?;
        sqlx::query(UPDATE_SEALED).bind(id).bind(record).bind(pii).bind(&subject.id).execute(&mut *tx).await?;
        let remaining: Vec<SealedRow> =
            sqlx::query_as(LOAD_SEALED_OF_SUBJECT).bind(old_subject).fetch_all(&mut *tx).await?;
        let live = super::live_digests(&self.keyring, &remaining)?;
        sqlx::query("DELETE FROM subject_index WHERE subject_id = $1 AND NOT (digest = ANY($2))")
            .bind(old_subject)
            .bind(&live)
            .execute(&mut *tx)
            .await?;
        // An identifier the old subject gave up now names the corrected complainant.
        for (kind, digest) in super::digests(&self.keyring, &complaint) {
            sqlx::query(INSERT_INDEX).bind(kind).bind(&digest).bind(&subject.id).execute(&mut *tx).await?;
        }
        record_access(&mut tx, Some(id), &subject.id, access).await?;
        if subject.id != *old_subject {
            record_access(&mut tx, Some(id), old_subject, access).await?;
        }
        tx.commit().await?;
        Ok(Some(complaint))
    }

    async fn erase(&self, identifier: &Identifier, access: &PiiAccess) -> Result<Option<Erased>, StoreError> {
        let digest = identifier.digest(&self.keyring);
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SUBJECT_LOCK).execute(&mut *tx).await?;
        let Some(subject) = Self::find_subject(&mut tx, identifier.kind, &digest).await? else {
            return Ok(None);
        };
        let rows: Vec<SealedRow> = sqlx::query_as(LOAD_SEALED_OF_SUBJECT).bind(&subject).fetch_all(&mut *tx).await?;
        for row in &rows {
            let mut complaint = Complaint::decode(row.record.as_slice())?;
            crate::domain::pii::erase(&mut complaint);
            sqlx::query(UPDATE_SEALED)
                .bind(&row.id)
                .bind(complaint.encode_to_vec())
                .bind(None::<Vec<u8>>)
                .bind(&subject)
                .execute(&mut *tx)
                .await?;
        }
        let now = to_micros(redress_platform::time::now());
        sqlx::query(ERASE_SUBJECT).bind(&subject).bind(now).execute(&mut *tx).await?;
        sqlx::query(DELETE_INDEX).bind(&subject).execute(&mut *tx).await?;
        record_access(&mut tx, None, &subject, access).await?;
        tx.commit().await?;
        Ok(Some(Erased { subject_id: subject, complaints: rows.len() as i64 }))
    }

    async fn rewrite(&self, id: &str, change: super::Rewrite) -> Result<Option<Complaint>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let record: Option<Vec<u8>> = sqlx::query_scalar("SELECT record FROM complaints WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(record) = record else { return Ok(None) };
        let current = Complaint::decode(record.as_slice())?;
        let Some((complaint, event)) = change(current.clone()) else { return Ok(Some(current)) };
        super::rewrite_query!(id, &complaint).execute(&mut *tx).await?;
        event.append_postgres(&mut tx).await?;
        tx.commit().await?;
        self.feed.notify_committed();
        Ok(Some(complaint))
    }

    async fn subject_units(&self, subject_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(super::SUBJECT_UNITS).bind(subject_id).fetch_all(&self.pool).await?)
    }

    async fn subject_of(&self, complaint_id: &str) -> Result<Option<String>, StoreError> {
        let subject: Option<Option<String>> =
            sqlx::query_scalar(super::SUBJECT_OF).bind(complaint_id).fetch_optional(&self.pool).await?;
        Ok(subject.flatten())
    }

    async fn pii_accesses(&self, subject_id: &str) -> Result<Vec<PiiAccessRecord>, StoreError> {
        Ok(sqlx::query_as(ACCESSES).bind(subject_id).fetch_all(&self.pool).await?)
    }

    fn feed(&self) -> &Feed {
        &self.feed
    }
}

mod const_sql {
    /// [`super::super::STALE_WRAPPED`], skipping rows another replica is re-wrapping.
    pub const STALE_WRAPPED_LOCKED: &str = "SELECT id, key_id, wrapped_key FROM subjects \
        WHERE wrapped_key IS NOT NULL AND key_id <> $1 AND id > $2 ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED";

    /// [`super::LOAD_SEALED`], locking the complaint row.
    pub const LOAD_SEALED_LOCKED: &str = "SELECT c.id, c.record, c.pii, c.subject_id, s.key_id, s.wrapped_key \
        FROM complaints c LEFT JOIN subjects s ON s.id = c.subject_id WHERE c.id = $1 FOR UPDATE OF c";
}

/// The subject a complaint's complainant is, found by blind index or created. Creation is
/// serialised by a transaction lock so concurrent first complaints of one person agree.
async fn subject_for(tx: &mut PgConnection, keyring: &Keyring, complaint: &Complaint) -> Result<Subject, StoreError> {
    let digests = super::digests(keyring, complaint);
    if !digests.is_empty() {
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SUBJECT_LOCK).execute(&mut *tx).await?;
    }
    let mut found = None;
    let has_id = digests.iter().any(|(kind, _)| *kind == "id");
    for (kind, digest) in &digests {
        let row: Option<(String, String, Vec<u8>)> =
            sqlx::query_as(FIND_SUBJECT).bind(kind).bind(digest).fetch_optional(&mut *tx).await?;
        if let Some((id, key_id, sealed)) = row {
            // A person with an identity document is not someone else who shares their phone.
            if *kind != "id" && has_id {
                let other_id: Option<i32> =
                    sqlx::query_scalar(super::SUBJECT_HAS_ID).bind(&id).fetch_optional(&mut *tx).await?;
                if other_id.is_some() {
                    continue;
                }
            }
            let key = keyring.unwrap(&id, &WrappedKey { key_id, sealed }).map_err(|e| anyhow::anyhow!(e))?;
            found = Some(Subject { id, key });
            break;
        }
    }
    let subject = match found {
        Some(s) => s,
        None => {
            let id = uuid::Uuid::now_v7().to_string();
            let (key, wrapped) = keyring.new_data_key(&id).map_err(|e| anyhow::anyhow!(e))?;
            sqlx::query(INSERT_SUBJECT)
                .bind(&id)
                .bind(&wrapped.key_id)
                .bind(&wrapped.sealed)
                .bind(to_micros(redress_platform::time::now()))
                .execute(&mut *tx)
                .await?;
            Subject { id, key }
        }
    };
    for (kind, digest) in digests {
        sqlx::query(INSERT_INDEX).bind(kind).bind(&digest).bind(&subject.id).execute(&mut *tx).await?;
    }
    Ok(subject)
}

async fn record_access(
    tx: &mut PgConnection,
    complaint_id: Option<&str>,
    subject_id: &str,
    access: &PiiAccess,
) -> Result<(), StoreError> {
    super::insert_access!(complaint_id, subject_id, access).execute(&mut *tx).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use redress_platform::testing::TestDatabase;
    use redress_proto::redress::intake::v1::complainant::Party;

    use crate::store::NewComplaint;

    /// What PostgreSQL stores holds no clear phone or ID number, in any table.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stored_rows_hold_no_clear_personal_information() {
        let Some(db) = TestDatabase::postgres("stored_rows_hold_no_clear_personal_information").await.unwrap() else {
            return;
        };
        let keyring = Arc::new(crate::domain::pii::test_keyring());
        let store = crate::open_store(&db.config, keyring.clone(), &redress_platform::host::Supervisor::detached())
            .await
            .unwrap();
        let mut secrets = Vec::new();
        for n in 0..50 {
            let (phone, id_number) = crate::testing::identity(n);
            let id = uuid::Uuid::now_v7().to_string();
            let mut complaint = crate::testing::complaint("facts");
            complaint.name = format!("complaints/{id}");
            if let Some(Party::Person(p)) = complaint.complainant.as_mut().and_then(|c| c.party.as_mut()) {
                (p.phone, p.id_number) = (phone.clone(), id_number.clone());
            }
            let hash = keyring.digest("request", prost::Message::encode_to_vec(&complaint).as_slice());
            let now = redress_platform::time::now();
            let new = NewComplaint {
                id,
                request_id: format!("r{n}"),
                request_hash: hash,
                number_prefix: "20261126".to_owned(),
                receive_time: now,
                create_time: now,
                complaint,
                trace: Default::default(),
                recurrence_since: now - chrono::TimeDelta::days(90),
            };
            store.submit(new).await.unwrap();
            secrets.push(phone);
            secrets.push(id_number);
        }
        let pool = sqlx::PgPool::connect(&db.config.url).await.unwrap();
        let mut dump: Vec<u8> = Vec::new();
        for table in ["complaints", "subjects", "subject_index", "submit_requests", "outbox", "pii_access"] {
            // Every column of every row: text as is, bytea (rendered \x + hex) decoded.
            let raw: Vec<(String,)> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT row_to_json(t)::text FROM {table} t")))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            for (row,) in raw {
                let row: serde_json::Value = serde_json::from_str(&row).unwrap();
                for value in row.as_object().unwrap().values() {
                    let Some(text) = value.as_str() else { continue };
                    dump.extend_from_slice(text.as_bytes());
                    if let Some(hex) = text.strip_prefix("\\x")
                        && let Ok(bytes) = hex::decode(hex)
                    {
                        dump.extend_from_slice(&bytes);
                    }
                }
            }
        }
        assert!(dump.len() > 10_000, "the tables were read");
        for secret in &secrets {
            assert!(!dump.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} in clear");
        }
        pool.close().await;
    }
}
