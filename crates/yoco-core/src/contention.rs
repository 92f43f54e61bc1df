//! How much of the machine other processes, or the hypervisor, took while a measurement ran
//! (Linux): the system's CPU times (`/proc/stat`) less this process's own (`/proc/self/stat`),
//! both in clock ticks. Timings assume the CPUs were theirs; on a shared machine a measurement
//! taken while something else ran reads slow, so the harness's report and the benches' summaries
//! flag it instead of quoting it as if it were clean.

use serde::Serialize;

/// A measurement is flagged when more than this share of all CPUs' time went elsewhere.
pub const CONTENDED: f64 = 0.10;

/// What other work took during an interval, as fractions of all CPUs' time over it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Contention {
    /// Busy time of other processes (and the kernel's work on their behalf).
    pub others: f64,
    /// Time the hypervisor gave this virtual machine's CPUs to other guests.
    pub steal: f64,
}

impl Contention {
    /// The share of all CPUs' time that was not available to this process.
    pub fn elsewhere(&self) -> f64 {
        self.others + self.steal
    }

    /// More than [`CONTENDED`] went elsewhere: this interval's timings read high.
    pub fn is_contended(&self) -> bool {
        self.elsewhere() > CONTENDED
    }
}

/// An interval being watched: opened before a measurement, closed after it.
pub struct Window(Option<Counters>);

impl Window {
    pub fn open() -> Window {
        Window(Counters::now())
    }

    /// What went elsewhere since [`Window::open`]; `None` where the system does not say (not
    /// Linux) or no tick passed.
    pub fn close(&self) -> Option<Contention> {
        self.0?.until(&Counters::now()?)
    }
}

/// The CPU time counters at one instant, in clock ticks.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Counters {
    /// Every CPU's time: busy, idle, waiting and stolen.
    total: u64,
    /// Every CPU's busy time (user, nice, system, interrupts), this process's included.
    busy: u64,
    steal: u64,
    /// This process's user and system time, all its threads.
    own: u64,
}

impl Counters {
    /// The counters now; `None` where `/proc` is not there (not Linux).
    fn now() -> Option<Counters> {
        let (total, busy, steal) = parse_system(&std::fs::read_to_string("/proc/stat").ok()?)?;
        let own = parse_own(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
        Some(Counters { total, busy, steal, own })
    }

    /// What went elsewhere from `self` to `later`; `None` if no tick passed.
    fn until(&self, later: &Counters) -> Option<Contention> {
        let total = later.total.checked_sub(self.total).filter(|&t| t > 0)? as f64;
        let busy = later.busy.saturating_sub(self.busy);
        let own = later.own.saturating_sub(self.own);
        // The two files are read at slightly different instants and tick separately, so this
        // process's time can exceed the busy time it is part of by a tick: clamp at zero.
        Some(Contention { others: busy.saturating_sub(own) as f64 / total, steal: later.steal.saturating_sub(self.steal) as f64 / total })
    }
}

/// (total, busy, steal) from the aggregate `cpu` line of `/proc/stat`: user nice system idle
/// iowait irq softirq steal (guest time is already inside user and nice).
fn parse_system(stat: &str) -> Option<(u64, u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line.split_whitespace().skip(1).take(8).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    let [user, nice, system, idle, iowait, irq, softirq, steal]: [u64; 8] = fields.try_into().ok()?;
    Some((user + nice + system + idle + iowait + irq + softirq + steal, user + nice + system + irq + softirq, steal))
}

/// utime + stime (fields 14 and 15) of `/proc/self/stat`. The command name (field 2) is in
/// parentheses and may hold spaces or parentheses itself, so fields are counted after the last
/// `)`: the state is the first of them, utime the twelfth.
fn parse_own(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_line_splits_into_total_busy_and_steal() {
        let stat = "cpu  100 5 20 800 10 1 2 7 3 0\ncpu0 50 2 10 400 5 0 1 3 1 0\n";
        assert_eq!(parse_system(stat), Some((945, 128, 7)));
        assert_eq!(parse_system("cpu  1 2 3\n"), None, "too few fields");
        assert_eq!(parse_system("intr 5\n"), None, "no cpu line");
    }

    #[test]
    fn own_time_is_counted_after_the_command_name_even_when_it_holds_parentheses() {
        let stat = "4242 (a (b) c) R 1 4242 1 0 -1 4194304 10 0 0 0 300 45 0 0 20 0 3 0 1000 0 0";
        assert_eq!(parse_own(stat), Some(345));
        assert_eq!(parse_own("4242 (x) R 1"), None);
    }

    #[test]
    fn others_are_the_busy_time_this_process_did_not_use() {
        let a = Counters { total: 1000, busy: 300, steal: 10, own: 200 };
        let b = Counters { total: 2000, busy: 1200, steal: 60, own: 900 };
        let c = a.until(&b).unwrap();
        assert!((c.others - 0.2).abs() < 1e-12 && (c.steal - 0.05).abs() < 1e-12, "{c:?}");
        assert!(c.is_contended());
        // A tick of this process counted before the system's busy time caught up: no others.
        let d = Counters { total: 1100, busy: 350, steal: 10, own: 251 };
        assert_eq!(a.until(&d).unwrap().others, 0.0);
        assert_eq!(a.until(&a), None, "no time passed");
    }

    #[test]
    fn this_machine_reports_its_counters() {
        // Linux CI: the files exist and parse; spinning here is this process's time, not others'.
        let Some(start) = Counters::now() else { return };
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed().as_millis() < 200 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let end = Counters::now().unwrap();
        assert!(end.own > start.own, "200 ms of spinning counted no own time");
        let c = start.until(&end).unwrap();
        assert!((0.0..=1.0).contains(&c.others) && (0.0..=1.0).contains(&c.steal), "{c:?}");
    }
}
