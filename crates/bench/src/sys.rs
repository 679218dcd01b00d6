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

/// CPU time used so far, in seconds: by this process (every thread) and by the whole machine
/// (every core's busy time, this process's included), from `/proc` in clock ticks of 10 ms.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub process: f64,
    pub machine: f64,
}

/// `/proc`'s clock tick (`USER_HZ`), fixed at 100 per second in its interface.
const TICKS_PER_SECOND: f64 = 100.0;

impl Cpu {
    pub fn now() -> Self {
        Self {
            process: std::fs::read_to_string("/proc/self/stat").map_or(0.0, |stat| process_ticks(&stat)),
            machine: std::fs::read_to_string("/proc/stat").map_or(0.0, |stat| machine_ticks(&stat)),
        } / TICKS_PER_SECOND
    }

    /// What was used between `earlier` and now (`self`).
    pub fn since(self, earlier: Self) -> Self {
        Self { process: self.process - earlier.process, machine: self.machine - earlier.machine }
    }
}

impl std::ops::Div<f64> for Cpu {
    type Output = Self;
    fn div(self, by: f64) -> Self {
        Self { process: self.process / by, machine: self.machine / by }
    }
}

impl std::ops::AddAssign for Cpu {
    fn add_assign(&mut self, other: Self) {
        self.process += other.process;
        self.machine += other.machine;
    }
}

/// User and system ticks of a process from its `/proc/<pid>/stat` line (fields 14 and 15; the
/// command name before them is in parentheses and may hold spaces).
fn process_ticks(stat: &str) -> f64 {
    let fields: Vec<&str> = stat.rsplit_once(')').map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    field(14) + field(15)
}

/// Busy ticks of every core from `/proc/stat`'s `cpu` line: all but idle and I/O wait (guest
/// time is already counted in user time).
fn machine_ticks(stat: &str) -> f64 {
    let Some(line) = stat.lines().find(|line| line.starts_with("cpu ")) else { return 0.0 };
    let values: Vec<f64> = line.split_whitespace().skip(1).map(|v| v.parse().unwrap_or(0.0)).collect();
    let at = |i: usize| values.get(i).copied().unwrap_or(0.0);
    // user nice system idle iowait irq softirq steal
    at(0) + at(1) + at(2) + at(5) + at(6) + at(7)
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

#[cfg(test)]
mod tests {
    use super::{machine_ticks, process_ticks};

    #[test]
    fn a_process_s_ticks_are_its_user_and_system_time_whatever_its_name() {
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 567 0 0 20 0 9 0 100 0 0";
        assert_eq!(process_ticks(stat), 1801.0);
        assert_eq!(process_ticks("garbage"), 0.0);
    }

    #[test]
    fn the_machine_s_busy_ticks_leave_out_idle_and_io_wait() {
        let stat = "cpu  100 2 30 5000 40 5 6 7 0 0\ncpu0 50 1 15 2500 20 2 3 3 0 0\n";
        assert_eq!(machine_ticks(stat), 150.0);
        assert_eq!(machine_ticks("intr 1 2 3"), 0.0);
    }
}
