//! Keeping the index derived from the store: a rebuild from the published versions when the
//! service starts (unless the index on disk was brought up to a position the feed still has),
//! then the service's own feed, followed: each ArticleChanged re-reads that article's published
//! version from the store, so applying an event twice or late changes nothing.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redress_proto::redress::common::v1::Event;
use tokio_util::sync::CancellationToken;

use super::SearchIndex;
use crate::store::KnowledgeStore;

/// Published versions read from the store per page of a rebuild.
const REBUILD_PAGE: i64 = 2_000;

/// Runs CPU-bound index work away from the async workers.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work).await?
}

/// Brings the index up to date with the store and returns the feed position to follow from:
/// the one the index recorded when the feed still has everything after it, or else the
/// feed's head after a rebuild.
pub async fn prepare(
    index: &Arc<SearchIndex>,
    store: &Arc<dyn KnowledgeStore>,
    recorded: Option<i64>,
) -> anyhow::Result<i64> {
    let feed = store.feed();
    feed.sequence_now().await?;
    let head = feed.head().await?;
    let pruned = feed.pruned_through().await?;
    match recorded {
        Some(position) if position <= head && position >= pruned => {
            tracing::info!(position, head, articles = index.len(), "search index reused; catching up from the feed");
            Ok(position)
        }
        _ => rebuild(index, store, head).await.map(|_| head),
    }
}

/// Rebuilds the index from every published version in the store, as of feed position `head`
/// (events after it are applied again by [`follow`], which is harmless); returns how many
/// articles it indexed.
pub async fn rebuild(index: &Arc<SearchIndex>, store: &Arc<dyn KnowledgeStore>, head: i64) -> anyhow::Result<usize> {
    let started = Instant::now();
    let clearing = index.clone();
    blocking(move || clearing.clear()).await?;
    let mut after = String::new();
    let mut indexed = 0;
    loop {
        let page = store.published_after(&after, REBUILD_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id.clone();
        indexed += page.len();
        let adding = index.clone();
        blocking(move || page.iter().try_for_each(|p| adding.add(p))).await?;
    }
    let committing = index.clone();
    // Not merged into one segment here: a merged rebuild scored ties in another order than the
    // index it replaced, so a lost index directory did not answer the same after the rebuild.
    blocking(move || committing.commit(head)).await?;
    let took = started.elapsed();
    metrics::gauge!("redress_knowledge_index_rebuild_seconds").set(took.as_secs_f64());
    tracing::info!(
        articles = indexed,
        segments = index.segments(),
        seconds = took.as_secs_f64(),
        position = head,
        "search index rebuilt from the store"
    );
    Ok(indexed)
}

/// The article ids a batch of the feed changed.
fn changed_articles(events: &[Event]) -> BTreeSet<String> {
    events.iter().filter_map(|e| e.aggregate.strip_prefix("articles/")).map(str::to_owned).collect()
}

/// Applies a batch: each changed article's published version replaces what the index had (or
/// the article leaves the index), then the batch's last position is committed.
pub async fn apply(index: &Arc<SearchIndex>, store: &Arc<dyn KnowledgeStore>, events: &[Event]) -> anyhow::Result<()> {
    let Some(last) = events.last().map(|e| e.position) else { return Ok(()) };
    let mut changes = Vec::new();
    for id in changed_articles(events) {
        changes.push((store.published(&id).await?, id));
    }
    let index = index.clone();
    blocking(move || {
        for (published, id) in &changes {
            match published {
                Some(p) => index.upsert(p)?,
                None => index.remove(id),
            }
        }
        index.commit(last)
    })
    .await
}

/// Follows the service's own feed from `position` until `stop`, keeping the index up to date;
/// a failed read or write is retried from the last position committed.
pub async fn follow(
    index: Arc<SearchIndex>,
    store: Arc<dyn KnowledgeStore>,
    mut position: i64,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    while !stop.is_cancelled() {
        let mut stream = store.feed().stream(position, stop.clone());
        while let Some(batch) = stream.next().await {
            let outcome = match batch {
                Ok(events) => apply(&index, &store, &events).await.map(|()| events.last().map(|e| e.position)),
                Err(status) => Err(anyhow::anyhow!("reading the feed: {status}")),
            };
            match outcome {
                Ok(Some(last)) => {
                    position = last;
                    backoff = Duration::from_millis(100);
                    metrics::gauge!("redress_knowledge_index_position").set(position as f64);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), position, "search index update failed; retrying");
                    break;
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
