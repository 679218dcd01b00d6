//! What the machine and a process look like while a benchmark runs: the load average (other
//! work on a shared machine shows there) and a process's resident memory.

use hdrhistogram::Histogram;

/// The 1, 5 and 15 minute load averages as `/proc/loadavg` gives them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Prints the load average under `label` ("start", "end").
pub fn print_load(label: &str) {
    println!("load average at {label}: {} ({} cores)", load_average(), cores());
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Resident memory of process `pid` (`None`: this process), now and at its peak, in KiB.
///
/// `rss_kib` counts the pages of files mapped into the process (SQLite reads its stores
/// through memory maps) once per mapping that touched them: each store connection maps its
/// file, so the same page of the page cache can count many times. `anon_kib` is what the
/// process itself allocated (heaps, stacks, SQLite's own page caches), the memory a burst
/// could grow without bound.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub anon_kib: u64,
    pub file_kib: u64,
}

impl Memory {
    pub fn of(pid: Option<u32>) -> Self {
        let path = pid.map_or_else(|| "/proc/self/status".to_owned(), |pid| format!("/proc/{pid}/status"));
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let field = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kib| kib.parse().ok())
                .unwrap_or(0)
        };
        Self {
            rss_kib: field("VmRSS:"),
            hwm_kib: field("VmHWM:"),
            anon_kib: field("RssAnon:"),
            file_kib: field("RssFile:"),
        }
    }

    pub fn anon_mib(&self) -> f64 {
        self.anon_kib as f64 / 1024.0
    }

    pub fn file_mib(&self) -> f64 {
        self.file_kib as f64 / 1024.0
    }

    pub fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }

    pub fn hwm_mib(&self) -> f64 {
        self.hwm_kib as f64 / 1024.0
    }
}

/// A latency histogram in microseconds, from 1 µs to a minute.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| unreachable!("valid bounds"))
}

/// Quantile `q` of `h` in milliseconds.
pub fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// "met" or "NOT MET".
pub fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT MET" }
}
