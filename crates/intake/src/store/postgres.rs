//! PostgreSQL implementation. Each operation of `ops` runs in a transaction of its own. A
//! submission claims its request id first, so two concurrent submissions of one request
//! serialise on its unique key and the loser replays the winner's result; two of one source
//! reference under different ids meet at the reference's unique index, and the loser is
//! answered as a later submission of that reference is.

use std::sync::Arc;

use async_trait::async_trait;
use prost::Message;
use redress_platform::events::{Feed, Outbox};
use redress_platform::host::Supervisor;
use redress_platform::telemetry::TraceContext;
use redress_platform::time::to_micros;
use redress_proto::redress::intake::v1::{Complainant, Complaint, ContentConfirmation, PersonalDataSupplement};
use sqlx::{PgConnection, PgPool};

use super::tx::IntakeTx;
use super::{
    AccessLogVerdict, Erased, Identifier, IntakeStore, NewComplaint, PiiAccess, RequestKey, Restriction, Rewrite,
    StoreError, Submitted, codes, deadlines_provisional, ops,
};
use crate::domain::acceptance::{self, SourceReference};
use crate::domain::pii::{FREE_TEXT_FORM, Keyring};

#[derive(Clone)]
pub struct PostgresIntakeStore {
    pool: PgPool,
    feed: Feed,
    keyring: Arc<Keyring>,
}

impl PostgresIntakeStore {
    pub async fn open(pool: PgPool, keyring: Arc<Keyring>, supervisor: &Supervisor) -> anyhow::Result<Self> {
        redress_platform::db::migrate_postgres(&pool, &super::POSTGRES_MIGRATIONS).await?;
        redress_platform::events::migrate_postgres(&pool).await?;
        let feed = Feed::postgres(pool.clone(), supervisor);
        let store = Self { pool, feed, keyring };
        let (pool, keyring) = (&store.pool, store.keyring.as_ref());
        ops::seal_legacy(|| async {
            let mut tx = pool.begin().await?;
            let sealed = ops::seal_unsealed(&mut *tx, keyring).await?;
            tx.commit().await?;
            Ok(sealed)
        })
        .await?;
        ops::seal_legacy_free_text(|after| async move {
            let mut tx = pool.begin().await?;
            let sealed = ops::seal_free_text(&mut *tx, keyring, &after).await?;
            tx.commit().await?;
            Ok(sealed)
        })
        .await?;
        ops::derive_legacy_references(|| async {
            let mut tx = pool.begin().await?;
            let derived = ops::derive_references(&mut *tx).await?;
            tx.commit().await?;
            Ok(derived)
        })
        .await?;
        ops::rewrap_keys(|after| async move {
            let mut tx = pool.begin().await?;
            let rewrapped = ops::rewrap_stale(&mut *tx, keyring, &after).await?;
            tx.commit().await?;
            Ok(rewrapped)
        })
        .await?;
        ops::reindex_subjects(|after| async move {
            let mut tx = pool.begin().await?;
            let reindexed = ops::reindex_stale(&mut *tx, keyring, &after).await?;
            tx.commit().await?;
            Ok(reindexed)
        })
        .await?;
        if keyring.access_log().chains_legacy() {
            ops::chain_access_log(
                || async { pool.acquire().await?.first_chained_access().await },
                |before| async move {
                    let mut tx = pool.begin().await?;
                    let chained = ops::chain_unchained(&mut *tx, keyring, before).await?;
                    tx.commit().await?;
                    Ok(chained)
                },
            )
            .await?;
        }
        Ok(store)
    }

    /// The first result of a request id recorded before (see [`Submitted::replay`]).
    async fn replay(&self, new: &NewComplaint) -> Result<Option<Submitted>, StoreError> {
        let stored: Option<(String, Vec<u8>)> = sqlx::query_as(
            "SELECT r.request_hash, c.record FROM submit_requests r JOIN complaints c ON c.id = r.complaint_id \
             WHERE r.request_id = $1",
        )
        .bind(new.request_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some((hash, record)) = stored else { return Ok(None) };
        Submitted::replay(&hash, &new.request_hash, Complaint::decode(record.as_slice())?).map(Some)
    }

    /// The answer to `new` when its source reference identifies a complaint.
    async fn by_reference(&self, new: &NewComplaint) -> Result<Option<Submitted>, StoreError> {
        ops::answer_by_reference(&mut *self.pool.acquire().await?, new).await
    }
}

/// Claims `new`'s request id for it; `false` when another submission holds it.
async fn claim(conn: &mut PgConnection, new: &NewComplaint) -> Result<bool, StoreError> {
    let claimed = sqlx::query(
        "INSERT INTO submit_requests (request_id, request_hash, complaint_id, record_time_us) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (request_id) DO NOTHING",
    )
    .bind(new.request_id.as_str())
    .bind(&new.request_hash)
    .bind(&new.id)
    .bind(to_micros(new.create_time))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(claimed == 1)
}

/// Records an accepted complaint's row: its record, its sealed personal part and the columns
/// it is found by.
async fn insert_complaint(
    conn: &mut PgConnection,
    new: &NewComplaint,
    complaint: &Complaint,
    sealed: (Vec<u8>, Vec<u8>),
    subject_id: &str,
) -> Result<(), StoreError> {
    let (record, pii) = sealed;
    let (business_type, cause) = codes(complaint);
    sqlx::query(
        "INSERT INTO complaints (id, complaint_number, channel, receive_time_us, org_unit, state, record, \
         create_time_us, pii, subject_id, business_type, cause, source_reference, source_reference_derived, \
         deadlines_provisional, free_text_form) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, TRUE, $14, $15)",
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
    .bind(subject_id)
    .bind(business_type)
    .bind(cause)
    .bind(new.source_reference().as_ref().map(SourceReference::as_str))
    .bind(deadlines_provisional(complaint))
    .bind(FREE_TEXT_FORM)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[async_trait]
impl IntakeStore for PostgresIntakeStore {
    async fn submit(&self, new: NewComplaint) -> Result<Submitted, StoreError> {
        if let Some(done) = self.replay(&new).await? {
            return Ok(done);
        }
        if let Some(done) = self.by_reference(&new).await? {
            return Ok(done);
        }
        let mut tx = self.pool.begin().await?;
        if !claim(&mut tx, &new).await? {
            tx.rollback().await?;
            return self.replay(&new).await?.ok_or_else(|| anyhow::anyhow!("claimed request vanished").into());
        }
        let seq: i64 = sqlx::query_scalar("SELECT nextval('complaint_number_seq')").fetch_one(&mut *tx).await?;
        let subject = ops::subject_for(&mut *tx, &self.keyring, &new.complaint).await?;
        let restricted = tx.subject_restriction(&subject.id).await?.is_some();
        let earlier = ops::recurrence_of(&mut *tx, &subject.id, restricted, &new).await?;
        let number = acceptance::complaint_number(&new.number_prefix, seq);
        let (complaint, events) = acceptance::accepted(&new.complaint, number, earlier, restricted, &new.trace);
        let inserted = insert_complaint(&mut tx, &new, &complaint, subject.seal(&complaint)?, &subject.id).await;
        if inserted.as_ref().is_err_and(StoreError::is_reference_conflict) {
            // A submission of the same reference committed since it was looked up: this one
            // is answered as any later one is, and its request id is not recorded.
            tx.rollback().await?;
            return self
                .by_reference(&new)
                .await?
                .ok_or_else(|| anyhow::anyhow!("referenced complaint vanished").into());
        }
        inserted?;
        tx.append_events(&events).await?;
        tx.commit().await?;
        self.feed.notify_committed();
        Ok(Submitted::Created(complaint))
    }

    async fn reveal(&self, id: &str, access: &PiiAccess) -> Result<Option<Complaint>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let revealed = ops::reveal(&mut *tx, &self.keyring, id, access).await?;
        tx.commit().await?;
        Ok(revealed)
    }

    async fn export(&self, identifier: &Identifier, access: &PiiAccess) -> Result<Vec<Complaint>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let exported = ops::export(&mut *tx, &self.keyring, identifier, access).await?;
        tx.commit().await?;
        Ok(exported)
    }

    async fn correct(&self, id: &str, to: Complainant, access: &PiiAccess) -> Result<Option<Complaint>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let corrected = ops::correct(&mut *tx, &self.keyring, id, to, access).await?;
        tx.commit().await?;
        // A correction moving the complaint to another subject may announce its restriction.
        self.feed.notify_committed();
        Ok(corrected)
    }

    async fn erase(&self, identifier: &Identifier, access: &PiiAccess) -> Result<Option<Erased>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let erased = ops::erase(&mut *tx, &self.keyring, identifier, access).await?;
        tx.commit().await?;
        Ok(erased)
    }

    async fn rewrite(&self, id: &str, change: Rewrite) -> Result<(Option<Complaint>, bool), StoreError> {
        let mut tx = self.pool.begin().await?;
        let rewritten = ops::rewrite(&mut *tx, id, change).await?;
        tx.commit().await?;
        Ok(rewritten)
    }

    async fn confirm(
        &self,
        id: &str,
        request: RequestKey,
        confirmation: ContentConfirmation,
        trace: TraceContext,
    ) -> Result<Option<Complaint>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let confirmed = ops::confirm(&mut *tx, &self.keyring, id, &request, confirmation, trace).await?;
        tx.commit().await?;
        self.feed.notify_committed();
        Ok(confirmed)
    }

    async fn restrict(
        &self,
        identifier: &Identifier,
        restrict: bool,
        request: RequestKey,
        access: &PiiAccess,
        trace: TraceContext,
    ) -> Result<Option<Restriction>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = ops::restrict(&mut *tx, &self.keyring, identifier, restrict, &request, access, trace).await?;
        tx.commit().await?;
        self.feed.notify_committed();
        Ok(done)
    }

    async fn supplement(
        &self,
        id: &str,
        request: RequestKey,
        supplement: PersonalDataSupplement,
        access: &PiiAccess,
    ) -> Result<Option<Complaint>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = ops::supplement(&mut *tx, &self.keyring, id, &request, supplement, access).await?;
        tx.commit().await?;
        Ok(done)
    }

    async fn verify_access_log(&self) -> Result<AccessLogVerdict, StoreError> {
        let mut conn = self.pool.acquire().await?;
        ops::verify_access_log(&mut *conn, &self.keyring).await
    }

    fn feed(&self) -> &Feed {
        &self.feed
    }
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
                request_id: crate::store::conformance_support::request_id(&format!("r{n}")),
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
