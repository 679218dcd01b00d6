//! SQLite implementation. Every write goes through the platform's single writer (group
//! commit); submissions queue up and are written in batches of multi-row statements
//! (`batch`), the rest runs the operations of `ops` one write each.

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use redress_platform::db::Sqlite;
use redress_platform::events::Feed;
use redress_platform::host::Supervisor;
use redress_platform::telemetry::TraceContext;
use redress_proto::redress::intake::v1::{Complainant, Complaint, ContentConfirmation, PersonalDataSupplement};
use sqlx::SqliteConnection;

use super::batch::{self, Writer};
use super::tx::{IntakeTx, Reader};
use super::{
    AccessLogVerdict, Erased, Identifier, IntakeStore, NewComplaint, PiiAccess, RequestKey, Restriction, Rewrite,
    StoreError, Submitted, ops,
};
use crate::domain::pii::Keyring;

#[derive(Clone)]
pub struct SqliteIntakeStore {
    db: Sqlite,
    feed: Feed,
    queue: batch::Queue,
    keyring: Arc<Keyring>,
}

impl SqliteIntakeStore {
    pub async fn open(db: Sqlite, keyring: Arc<Keyring>, supervisor: &Supervisor) -> anyhow::Result<Self> {
        redress_platform::db::migrate_sqlite(&db.pool, &super::SQLITE_MIGRATIONS).await?;
        redress_platform::events::migrate_sqlite(&db.pool).await?;
        let feed = Feed::sqlite(db.pool.clone());
        let writer = BatchWriter { db: db.clone(), feed: feed.clone(), keyring: keyring.clone() };
        // One writer: SQLite writes one transaction at a time.
        let queue = batch::start(writer, 1, supervisor);
        let store = Self { db, feed, queue, keyring };
        ops::seal_legacy(|| {
            store.write(|conn, keyring| Box::pin(async move { ops::seal_unsealed(conn, &keyring).await }))
        })
        .await?;
        ops::seal_legacy_free_text(|after| {
            store.write(move |conn, keyring| Box::pin(async move { ops::seal_free_text(conn, &keyring, &after).await }))
        })
        .await?;
        ops::derive_legacy_references(|| {
            store.write(|conn, _| Box::pin(async move { ops::derive_references(conn).await }))
        })
        .await?;
        ops::rewrap_keys(|after| {
            store.write(move |conn, keyring| Box::pin(async move { ops::rewrap_stale(conn, &keyring, &after).await }))
        })
        .await?;
        ops::reindex_subjects(|after| {
            store.write(move |conn, keyring| Box::pin(async move { ops::reindex_stale(conn, &keyring, &after).await }))
        })
        .await?;
        if store.keyring.access_log().chains_legacy() {
            ops::chain_access_log(
                || store.write(|conn, _| Box::pin(async move { conn.first_chained_access().await })),
                |before| {
                    store.write(move |conn, keyring| {
                        Box::pin(async move { ops::chain_unchained(conn, &keyring, before).await })
                    })
                },
            )
            .await?;
        }
        Ok(store)
    }

    /// Runs `f` on the writer's connection, in the next group commit.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection, Arc<Keyring>) -> BoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        let keyring = self.keyring.clone();
        self.db.writer.write(move |conn| f(conn, keyring)).await
    }
}

/// Writes batches of submissions through the store's single writer.
struct BatchWriter {
    db: Sqlite,
    feed: Feed,
    keyring: Arc<Keyring>,
}

#[async_trait]
impl Writer for BatchWriter {
    const ONE_IS_ANOTHER_WAY: bool = false;

    async fn batch(&self, news: Arc<Vec<NewComplaint>>) -> Result<Vec<Result<Submitted, StoreError>>, StoreError> {
        let keyring = self.keyring.clone();
        self.db
            .writer
            .write(move |conn| Box::pin(async move { batch::insert_batch(conn, &keyring, &news).await }))
            .await
    }

    async fn one(&self, new: NewComplaint) -> Result<Submitted, StoreError> {
        self.batch(Arc::new(vec![new]))
            .await?
            .pop()
            .unwrap_or_else(|| Err(anyhow::anyhow!("a batch of one had no outcome").into()))
    }

    fn committed(&self) {
        self.feed.notify_committed();
    }
}

#[async_trait]
impl IntakeStore for SqliteIntakeStore {
    async fn submit(&self, new: NewComplaint) -> Result<Submitted, StoreError> {
        batch::submit(&self.queue, new).await
    }

    async fn reveal(&self, id: &str, access: &PiiAccess) -> Result<Option<Complaint>, StoreError> {
        let (id, access) = (id.to_owned(), access.clone());
        self.write(move |conn, keyring| Box::pin(async move { ops::reveal(conn, &keyring, &id, &access).await })).await
    }

    async fn export(&self, identifier: &Identifier, access: &PiiAccess) -> Result<Vec<Complaint>, StoreError> {
        let (identifier, access) = (identifier.clone(), access.clone());
        self.write(move |conn, keyring| {
            Box::pin(async move { ops::export(conn, &keyring, &identifier, &access).await })
        })
        .await
    }

    async fn correct(&self, id: &str, to: Complainant, access: &PiiAccess) -> Result<Option<Complaint>, StoreError> {
        let (id, access) = (id.to_owned(), access.clone());
        let corrected = self
            .write(move |conn, keyring| Box::pin(async move { ops::correct(conn, &keyring, &id, to, &access).await }))
            .await?;
        // A correction moving the complaint to another subject may announce its restriction.
        self.feed.notify_committed();
        Ok(corrected)
    }

    async fn erase(&self, identifier: &Identifier, access: &PiiAccess) -> Result<Option<Erased>, StoreError> {
        let (identifier, access) = (identifier.clone(), access.clone());
        self.write(move |conn, keyring| Box::pin(async move { ops::erase(conn, &keyring, &identifier, &access).await }))
            .await
    }

    async fn rewrite(&self, id: &str, change: Rewrite) -> Result<(Option<Complaint>, bool), StoreError> {
        let id = id.to_owned();
        self.write(move |conn, _| Box::pin(async move { ops::rewrite(conn, &id, change).await })).await
    }

    async fn confirm(
        &self,
        id: &str,
        request: RequestKey,
        confirmation: ContentConfirmation,
        trace: TraceContext,
    ) -> Result<Option<Complaint>, StoreError> {
        let id = id.to_owned();
        let confirmed = self
            .write(move |conn, keyring| {
                Box::pin(async move { ops::confirm(conn, &keyring, &id, &request, confirmation, trace).await })
            })
            .await?;
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
        let (identifier, access) = (identifier.clone(), access.clone());
        let done = self
            .write(move |conn, keyring| {
                Box::pin(
                    async move { ops::restrict(conn, &keyring, &identifier, restrict, &request, &access, trace).await },
                )
            })
            .await?;
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
        let (id, access) = (id.to_owned(), access.clone());
        self.write(move |conn, keyring| {
            Box::pin(async move { ops::supplement(conn, &keyring, &id, &request, supplement, &access).await })
        })
        .await
    }

    async fn verify_access_log(&self) -> Result<AccessLogVerdict, StoreError> {
        let mut reader = Reader::of(&self.feed).await?;
        ops::verify_access_log(reader.conn(), &self.keyring).await
    }

    fn feed(&self) -> &Feed {
        &self.feed
    }
}
