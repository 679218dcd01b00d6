//! PostgreSQL implementation. Each operation of `ops` runs in a transaction of its own.
//! Submissions queue up and are written in batches (`batch`) by a few writers at once. Two
//! concurrent submissions of one request from different processes meet at its unique key, two
//! of one source reference under different ids at the reference's unique index: the batch that
//! loses fails, and its submissions are written one by one. A single submission claims its
//! request id first, so the loser of such a race replays the winner's result, or is answered
//! as a later submission of that reference is.

use std::sync::Arc;

use async_trait::async_trait;
use prost::Message;
use redress_platform::events::{Feed, Outbox};
use redress_platform::host::Supervisor;
use redress_platform::telemetry::TraceContext;
use redress_platform::time::to_micros;
use redress_proto::redress::intake::v1::{Complainant, Complaint, ContentConfirmation, PersonalDataSupplement};
use sqlx::{Connection, PgConnection, PgPool};

use super::batch::{self, Writer};
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
    queue: batch::Queue,
}

/// Most batch writers at once; each holds one of the pool's connections while it writes.
const MAX_WRITERS: u32 = 4;

/// Writes batches of submissions, each in a transaction of its own.
struct BatchWriter {
    pool: PgPool,
    feed: Feed,
    keyring: Arc<Keyring>,
}

#[async_trait]
impl Writer for BatchWriter {
    const ONE_IS_ANOTHER_WAY: bool = true;

    async fn batch(&self, news: Arc<Vec<NewComplaint>>) -> Result<Vec<Result<Submitted, StoreError>>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let outcomes = batch::insert_batch(&mut *tx, &self.keyring, &news).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn one(&self, new: NewComplaint) -> Result<Submitted, StoreError> {
        submit_one(&self.pool, &self.keyring, new).await
    }

    fn committed(&self) {
        self.feed.notify_committed();
    }
}

impl PostgresIntakeStore {
    pub async fn open(pool: PgPool, keyring: Arc<Keyring>, supervisor: &Supervisor) -> anyhow::Result<Self> {
        redress_platform::db::migrate_postgres(&pool, &super::POSTGRES_MIGRATIONS).await?;
        redress_platform::events::migrate_postgres(&pool).await?;
        let feed = Feed::postgres(pool.clone(), supervisor);
        let writer = BatchWriter { pool: pool.clone(), feed: feed.clone(), keyring: keyring.clone() };
        // Half the pool at most: reads and the other operations keep the rest.
        let writers = (pool.options().get_max_connections() / 2).clamp(1, MAX_WRITERS);
        let queue = batch::start(writer, writers as usize, supervisor);
        let store = Self { pool, feed, keyring, queue };
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
}

/// The first result of `new`'s request id if it was recorded before (see [`Submitted::replay`]).
async fn replay(conn: &mut PgConnection, new: &NewComplaint) -> Result<Option<Submitted>, StoreError> {
    let stored: Option<(String, Vec<u8>)> = sqlx::query_as(
        "SELECT r.request_hash, c.record FROM submit_requests r JOIN complaints c ON c.id = r.complaint_id \
         WHERE r.request_id = $1",
    )
    .bind(new.request_id.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some((hash, record)) = stored else { return Ok(None) };
    Submitted::replay(&hash, &new.request_hash, Complaint::decode(record.as_slice())?).map(Some)
}

/// Claims `new`'s request id for it and draws its complaint number's sequence value (one
/// round trip); `None` when another submission holds the request id, and then no number is
/// drawn.
async fn claim(conn: &mut PgConnection, new: &NewComplaint) -> Result<Option<i64>, StoreError> {
    let seq = sqlx::query_scalar(
        "INSERT INTO submit_requests (request_id, request_hash, complaint_id, record_time_us) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (request_id) DO NOTHING RETURNING nextval('complaint_number_seq')",
    )
    .bind(new.request_id.as_str())
    .bind(&new.request_hash)
    .bind(&new.id)
    .bind(to_micros(new.create_time))
    .fetch_optional(&mut *conn)
    .await?;
    Ok(seq)
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

/// Writes one submission in a transaction of its own (a batch's submissions, when the batch
/// failed as a whole). The caller tells the feed of what it committed.
async fn submit_one(pool: &PgPool, keyring: &Keyring, new: NewComplaint) -> Result<Submitted, StoreError> {
    // One connection for the whole submission: each connection taken from the pool and
    // given back costs a round trip (it is tested when it returns).
    let mut conn = pool.acquire().await?;
    if let Some(done) = replay(&mut conn, &new).await? {
        return Ok(done);
    }
    if let Some(done) = ops::answer_by_reference(&mut *conn, &new).await? {
        return Ok(done);
    }
    let mut tx = conn.begin().await?;
    let Some(seq) = claim(&mut tx, &new).await? else {
        tx.rollback().await?;
        return replay(&mut conn, &new).await?.ok_or_else(|| anyhow::anyhow!("claimed request vanished").into());
    };
    let subject = ops::subject_for(&mut *tx, keyring, &new.complaint).await?;
    let restricted = tx.subject_restriction(&subject.id).await?.is_some();
    let earlier = ops::recurrence_of(&mut *tx, &subject.id, restricted, &new).await?;
    let number = acceptance::complaint_number(&new.number_prefix, seq);
    let (complaint, events) = acceptance::accepted(&new.complaint, number, earlier, restricted, &new.trace);
    let inserted = insert_complaint(&mut tx, &new, &complaint, subject.seal(&complaint)?, &subject.id).await;
    if inserted.as_ref().is_err_and(StoreError::is_reference_conflict) {
        // A submission of the same reference committed since it was looked up: this one
        // is answered as any later one is, and its request id is not recorded.
        tx.rollback().await?;
        return ops::answer_by_reference(&mut *conn, &new)
            .await?
            .ok_or_else(|| anyhow::anyhow!("referenced complaint vanished").into());
    }
    inserted?;
    tx.append_events(&events).await?;
    tx.commit().await?;
    Ok(Submitted::Created(complaint))
}

#[async_trait]
impl IntakeStore for PostgresIntakeStore {
    async fn submit(&self, new: NewComplaint) -> Result<Submitted, StoreError> {
        batch::submit(&self.queue, new).await
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

    use redress_proto::redress::intake::v1::Complaint;

    use redress_platform::testing::TestDatabase;
    use redress_proto::redress::intake::v1::complainant::Party;
    use sqlx::PgPool;

    use crate::domain::pii::Keyring;
    use crate::domain::subjects::PHONE;
    use crate::store::{IntakeStore, NewComplaint, Submitted};

    use crate::store::conformance_support::classified_by_phone as complaint_of;

    /// The advisory lock a submission of `new` takes for its complainant's phone.
    /// A store on a fresh PostgreSQL database of its own, the keyring it seals with, and a pool
    /// beside it; `None` (the test is skipped) without PostgreSQL.
    struct Opened {
        db: TestDatabase,
        keyring: Arc<Keyring>,
        store: Arc<dyn IntakeStore>,
        pool: PgPool,
    }

    async fn opened(name: &str) -> Option<Opened> {
        let db = TestDatabase::postgres(name).await.unwrap()?;
        let keyring = Arc::new(crate::domain::pii::test_keyring());
        let supervisor = redress_platform::host::Supervisor::detached();
        let store = crate::open_store(&db.config, keyring.clone(), &supervisor).await.unwrap();
        let pool = PgPool::connect(&db.config.url).await.unwrap();
        Some(Opened { db, keyring, store, pool })
    }

    fn phone_lock(keyring: &Keyring, new: &NewComplaint) -> i64 {
        let digests = crate::domain::subjects::digests(keyring, &new.complaint);
        let (_, digest) = digests.iter().find(|(kind, _)| *kind == PHONE).unwrap();
        crate::store::tx::identifier_lock_key(digest)
    }

    /// How many lock requests of this database's sessions wait, and of those how many wait for
    /// the advisory lock `key`.
    async fn waiting(pool: &PgPool, key: i64) -> (i64, i64) {
        sqlx::query_as(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE locktype = 'advisory' AND objsubid = 1 \
                 AND ((classid::bigint << 32) | objid::bigint) = $1) \
             FROM pg_locks WHERE NOT granted \
             AND pid IN (SELECT pid FROM pg_stat_activity WHERE datname = current_database())",
        )
        .bind(key)
        .fetch_one(pool)
        .await
        .unwrap()
    }

    type Submission = tokio::task::JoinHandle<Result<Submitted, crate::store::StoreError>>;

    fn submit(store: &Arc<dyn IntakeStore>, new: NewComplaint) -> Submission {
        let store = store.clone();
        tokio::spawn(async move { store.submit(new).await })
    }

    /// Waits until `n` submissions wait for the advisory lock `key`; none of `running` may end
    /// meanwhile (it would have passed the lock).
    async fn until_waiting(pool: &PgPool, key: i64, n: i64, running: &[&Submission]) {
        loop {
            assert!(running.iter().all(|s| !s.is_finished()), "a submission went past its person's lock");
            if waiting(pool, key).await.1 == n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Waits until `n` lock requests of this database's sessions wait; none of `running` may
    /// end meanwhile (it would have passed the lock).
    async fn until_all_waiting(pool: &PgPool, n: i64, running: &[&Submission]) {
        loop {
            assert!(running.iter().all(|s| !s.is_finished()), "a complaint went past the subject's lock");
            if waiting(pool, 0).await.0 == n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    fn created(done: Result<Result<Submitted, crate::store::StoreError>, tokio::task::JoinError>) -> Complaint {
        match done.unwrap().unwrap() {
            Submitted::Created(c) => c,
            Submitted::Replayed(c) => panic!("replayed {}", c.name),
        }
    }

    async fn subject_of(store: &Arc<dyn IntakeStore>, c: &Complaint) -> String {
        store.subject_of(c.name.strip_prefix("complaints/").unwrap()).await.unwrap().unwrap()
    }

    /// Two complaints of one person submitted at once run one after the other: one subject is
    /// created, and whichever commits second is a recurrence of the first.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn complaints_of_one_person_at_once_make_one_subject_and_see_each_other() {
        let Some(Opened { db: _db, keyring, store, pool }) = opened("complaints_of_one_person_at_once").await else {
            return;
        };
        let a = complaint_of("same-a", "13911112222");
        // Received at the same moment, so either is a repeat of the other once it committed.
        let mut b = complaint_of("same-b", "139-1111-2222");
        (b.receive_time, b.recurrence_since) = (a.receive_time, a.recurrence_since);
        b.complaint.receive_time = a.complaint.receive_time;
        let key = phone_lock(&keyring, &a);
        assert_eq!(key, phone_lock(&keyring, &b), "one phone, however written, is one lock");

        // Held here, the person's lock keeps both submissions waiting together, each in a batch
        // of its own (the second is queued once the first waits, and another writer takes it).
        let mut holder = pool.begin().await.unwrap();
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(key).execute(&mut *holder).await.unwrap();
        let first = submit(&store, a);
        until_waiting(&pool, key, 1, &[&first]).await;
        let second = submit(&store, b);
        until_waiting(&pool, key, 2, &[&first, &second]).await;
        holder.commit().await.unwrap();
        let (a, b) = (created(first.await), created(second.await));

        assert_eq!(subject_of(&store, &a).await, subject_of(&store, &b).await, "one person, one subject");
        let subjects: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM subjects").fetch_one(&pool).await.unwrap();
        assert_eq!(subjects, 1);
        let repeats = [a.recurrence_of == b.name, b.recurrence_of == a.name];
        assert_eq!(repeats.iter().filter(|r| **r).count(), 1, "the second committed repeats the first: {repeats:?}");
        pool.close().await;
    }

    /// A complaint of one person does not wait while another person's lock is held; one of
    /// that person waits until it is released, and then completes as their second complaint.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn complaints_of_other_people_do_not_wait_for_each_other() {
        let Some(Opened { db: _db, keyring, store, pool }) = opened("complaints_of_other_people").await else { return };
        let earlier = created(Ok(store.submit(complaint_of("a-1", "13911112222")).await));
        let again = complaint_of("a-2", "13911112222");
        let other = complaint_of("b-1", "13933334444");
        let key = phone_lock(&keyring, &again);
        assert_ne!(key, phone_lock(&keyring, &other));

        let mut holder = pool.begin().await.unwrap();
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(key).execute(&mut *holder).await.unwrap();
        // The other person's complaint completes while the lock is held, never waiting for it.
        let elsewhere = submit(&store, other);
        while !elsewhere.is_finished() {
            assert_eq!(waiting(&pool, key).await.0, 0, "another person's complaint waits for a lock");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let elsewhere = created(elsewhere.await);
        assert!(elsewhere.recurrence_of.is_empty());
        // The same person's waits for the lock until it is released.
        let blocked = submit(&store, again);
        until_waiting(&pool, key, 1, &[&blocked]).await;
        holder.commit().await.unwrap();
        let again = created(blocked.await);
        assert_eq!(again.recurrence_of, earlier.name);
        assert_eq!(subject_of(&store, &again).await, subject_of(&store, &earlier).await);
        assert_ne!(subject_of(&store, &elsewhere).await, subject_of(&store, &earlier).await);
        pool.close().await;
    }

    /// A batch takes its locks in a single submission's order: request ids, then people, then
    /// references. Waiting for a request id another transaction holds, it holds no person's
    /// lock yet, so that transaction can take it (as a single submission of that request id
    /// would next) rather than deadlock with the batch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_waiting_for_a_request_id_holds_no_persons_lock_yet() {
        let Some(Opened { db: _db, keyring, store, pool }) = opened("a_batch_waiting_for_a_request_id").await else {
            return;
        };
        let new = complaint_of("held", "13911112222");
        let key = phone_lock(&keyring, &new);

        // Another transaction has claimed the request id, and has not ended.
        let mut holder = pool.begin().await.unwrap();
        crate::store::batch::tests::holds_request_id(&mut holder, &keyring, &new).await;
        let submitted = submit(&store, new);
        until_all_waiting(&pool, 1, &[&submitted]).await;
        let free: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)").bind(key).fetch_one(&mut *holder).await.unwrap();
        assert!(free, "the batch waits for the request id holding its person's lock");
        holder.rollback().await.unwrap();
        let done = created(submitted.await);
        assert!(done.recurrence_of.is_empty());
        pool.close().await;
    }

    /// A batch's look-ups of its people descend the indexes even before the tables were first
    /// analysed (a new store, or one filled faster than autovacuum analyses it): without
    /// statistics PostgreSQL took each digest for 0.5 % of the table, read the whole index
    /// table and hashed every subject, at every batch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batchs_look_ups_of_people_descend_indexes_before_any_statistics() {
        let Some(Opened { db: _db, keyring: _, store: _store, pool }) = opened("look_ups_before_statistics").await
        else {
            return;
        };
        for table in ["subjects", "subject_index"] {
            let sql = format!("ALTER TABLE {table} SET (autovacuum_enabled = false)");
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
        }
        // 20,000 people, each known by a phone and a document.
        sqlx::query(
            "INSERT INTO subjects (id, key_id, wrapped_key, create_time_us) \
             SELECT 's' || n, 'k1', '\\x00'::bytea, 0 FROM generate_series(1, 20000) n",
        )
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO subject_index (kind, digest, subject_id) SELECT k, k || '-' || n, 's' || n \
             FROM generate_series(1, 20000) n, (VALUES ('phone'), ('id')) AS v(k)",
        )
        .execute(&pool)
        .await
        .unwrap();
        let statistics: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_stats WHERE tablename = 'subject_index'")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(statistics, 0, "the table was analysed");

        use crate::store::batch::subjects::{BY_DIGESTS, ID_DOCUMENT_CHUNK, WITH_ID_DOCUMENT_POSTGRES};
        let list = |prefix: &str, n: usize| (1..=n).map(|n| format!("'{prefix}{n}'")).collect::<Vec<_>>().join(", ");
        let look_ups = [
            ("subjects by 30 digests", format!("EXPLAIN {BY_DIGESTS}{})", list("phone-", 30))),
            ("subjects by 1 digest", format!("EXPLAIN {BY_DIGESTS}{})", list("phone-", 1))),
            ("1 subject known by a document", format!("EXPLAIN {WITH_ID_DOCUMENT_POSTGRES}{})", list("s", 1))),
            ("5 subjects known by a document", format!("EXPLAIN {WITH_ID_DOCUMENT_POSTGRES}{})", list("s", 5))),
            (
                "a chunk of subjects known by a document",
                format!("EXPLAIN {WITH_ID_DOCUMENT_POSTGRES}{})", list("s", ID_DOCUMENT_CHUNK)),
            ),
        ];
        for (what, explain) in look_ups {
            let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(explain)).fetch_all(&pool).await.unwrap();
            let plan = plan.join("\n");
            assert!(!plan.contains("Seq Scan") && !plan.contains("BitmapAnd"), "{what}:\n{plan}");
        }
        pool.close().await;
    }

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

    /// A complaint by the person with `phone` and identity document number `id_number`.
    fn complaint_with_id(request_id: &str, phone: &str, id_number: &str) -> NewComplaint {
        let mut new = complaint_of(request_id, phone);
        if let Some(Party::Person(p)) = new.complaint.complainant.as_mut().and_then(|c| c.party.as_mut()) {
            p.id_number = id_number.to_owned();
        }
        new
    }

    /// A subject known by two phones and no identity document (left so by corrections) is
    /// taken by the first of two people with documents complaining at once, each through one
    /// of its phones; the second, finding it known by the first one's document, is someone
    /// else, as when the two complain one after the other.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_people_reaching_one_subject_by_different_phones_do_not_both_join_it() {
        let Some(Opened { db: _db, keyring: _, store, pool }) = opened("two_people_reaching_one_subject").await else {
            return;
        };
        let (document, others) =
            (crate::testing::identity(1).1, [crate::testing::identity(2).1, crate::testing::identity(3).1]);
        let access =
            crate::store::PiiAccess { actor: "user:dpo".to_owned(), action: "correct", reason: "x".to_owned() };
        let mut filed = Vec::new();
        for (request, phone) in [("s-1", "13911112222"), ("s-2", "13933334444")] {
            filed.push(created(Ok(store.submit(complaint_with_id(request, phone, &document)).await)));
        }
        let subject = subject_of(&store, &filed[0]).await;
        for c in &filed {
            let mut complainant = c.complainant.clone().unwrap();
            if let Some(Party::Person(p)) = complainant.party.as_mut() {
                p.id_number.clear();
            }
            let id = c.name.strip_prefix("complaints/").unwrap();
            store.correct(id, complainant, &access).await.unwrap().unwrap();
            assert_eq!(subject_of(&store, c).await, subject);
        }
        let documents: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM subject_index WHERE subject_id = $1 AND kind = $2")
                .bind(&subject)
                .bind(crate::domain::subjects::ID_DOCUMENT)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(documents, 0, "the corrections left the subject without a document");

        // Held here, the subject's row keeps both complaints waiting together.
        let mut holder = pool.begin().await.unwrap();
        sqlx::query("SELECT id FROM subjects WHERE id = $1 FOR NO KEY UPDATE")
            .bind(&subject)
            .execute(&mut *holder)
            .await
            .unwrap();
        // Each in a batch of its own: the second is queued once the first waits.
        let first = submit(&store, complaint_with_id("t-1", "13911112222", &others[0]));
        until_all_waiting(&pool, 1, &[&first]).await;
        let second = submit(&store, complaint_with_id("t-2", "13933334444", &others[1]));
        until_all_waiting(&pool, 2, &[&first, &second]).await;
        holder.commit().await.unwrap();
        let (first, second) = (created(first.await), created(second.await));
        let subjects = [subject_of(&store, &first).await, subject_of(&store, &second).await];
        assert_ne!(subjects[0], subjects[1], "two documents, two people");
        assert!(subjects.contains(&subject), "one of them is the subject their phone names");
        pool.close().await;
    }
}
