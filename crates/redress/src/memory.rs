//! The process's memory as the services need it.

/// Turns transparent huge pages off for this process, where the kernel offers them.
///
/// mimalloc asks for huge pages (`madvise`) on the arenas it reserves, so a thread that touches
/// a few kilobytes of a fresh 2 MiB range holds all of it resident: the embedded suite sat at
/// about 215 MB idle, 150 MB of it huge pages, against about 155 MB without them. A complaint
/// service holds many small, short-lived objects on many threads, which huge pages do not
/// speed up measurably (`redress-bench` shows the same throughput either way). A kernel
/// without the setting (or another system) leaves the process as it is.
pub fn without_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!(%error, "transparent huge pages stay as the kernel sets them");
    }
}
