//! Noticing that the files of a directory changed, by polling: a file added, removed or
//! rewritten (its size or modification time differs). Operators drop data files (a year's
//! holiday arrangement) into a mounted directory; polling works on every filesystem a
//! ConfigMap or volume gives, where change notifications may not be delivered.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

/// What is compared between polls: each regular file directly inside the directory or one of
/// its subdirectories (a calendar's own year files), by name, with its size and modification
/// time.
pub type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// The [`Fingerprint`] of `dir` now.
pub fn fingerprint(dir: &Path) -> std::io::Result<Fingerprint> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_file() {
            files.push((entry.path(), meta.len(), meta.modified().ok()));
        } else if meta.is_dir() {
            for inner in std::fs::read_dir(entry.path())? {
                let inner = inner?;
                let meta = inner.metadata()?;
                if meta.is_file() {
                    files.push((inner.path(), meta.len(), meta.modified().ok()));
                }
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Polls `dir` every `interval` until `shutdown` and calls `changed` after each poll that finds
/// its files different from the last time `changed` succeeded. A failing `changed` (a file
/// caught half written, say) is logged and tried again at the next poll.
pub async fn watch_dir<F, Fut>(dir: PathBuf, interval: Duration, shutdown: CancellationToken, mut changed: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let read = |dir: &Path| match fingerprint(dir) {
        Ok(files) => Some(files),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot read the watched directory");
            None
        }
    };
    let mut seen = read(&dir);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let now = read(&dir);
        if now.is_none() || now == seen {
            continue;
        }
        match changed().await {
            Ok(()) => seen = now,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = format!("{e:#}"), "acting on changed files failed; trying again")
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_new_or_rewritten_file_changes_the_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let empty = fingerprint(dir.path()).unwrap();
        std::fs::write(dir.path().join("2027.toml"), "year = 2027\n").unwrap();
        let one = fingerprint(dir.path()).unwrap();
        assert_ne!(empty, one);
        std::fs::write(dir.path().join("2027.toml"), "year = 2027\nsource = \"x\"\n").unwrap();
        assert_ne!(one, fingerprint(dir.path()).unwrap());
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert_eq!(fingerprint(dir.path()).unwrap().len(), 1, "only files directly inside count");
    }
}
