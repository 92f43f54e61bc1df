//! Where a model's time goes, by operation: the harness's per-phase breakdown.
//!
//! Off by default and then free (one thread-local flag read per operation). While on, for the
//! calling thread only, every [`Ops`](super::Ops) operation synchronises its device before and
//! after itself and adds the elapsed time to its name. The synchronisation removes the overlap of
//! host work with queued GPU work, so a profiled run is slower than a plain one: the harness
//! profiles a run of its own and quotes the shares, not these seconds, beside its timings.
//! Operations called inside another (the projections inside the FFN) count toward the outer one.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;
use yoco_core::Device;

/// Time spent in one operation.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct OpTime {
    pub op: String,
    pub seconds: f64,
    pub calls: u64,
}

#[derive(Default)]
struct State {
    active: bool,
    depth: usize,
    times: BTreeMap<&'static str, (f64, u64)>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// Starts profiling on this thread, from empty.
pub fn begin() {
    STATE.with(|s| *s.borrow_mut() = State { active: true, ..State::default() });
}

/// The times since [`begin`] or the last `take`, most time first; profiling stays on.
pub fn take() -> Vec<OpTime> {
    STATE.with(|s| {
        let mut times: Vec<OpTime> = std::mem::take(&mut s.borrow_mut().times).into_iter().map(|(op, (seconds, calls))| OpTime { op: op.to_string(), seconds, calls }).collect();
        times.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        times
    })
}

/// Stops profiling on this thread and returns what [`take`] would.
pub fn end() -> Vec<OpTime> {
    let times = take();
    STATE.with(|s| *s.borrow_mut() = State::default());
    times
}

/// Whether this thread is profiling.
pub fn is_active() -> bool {
    STATE.with(|s| s.borrow().active)
}

/// Times one operation from its creation to its drop (when profiling, and outermost).
pub struct OpTimer<'a> {
    running: Option<(&'static str, &'a Device, Instant)>,
}

impl<'a> OpTimer<'a> {
    /// Starts timing `op` on `device`: waits for the device's queued work first, so that the
    /// time is this operation's alone.
    pub fn start(op: &'static str, device: &'a Device) -> OpTimer<'a> {
        let outermost = STATE.with(|s| {
            let mut s = s.borrow_mut();
            if !s.active {
                return false;
            }
            s.depth += 1;
            s.depth == 1
        });
        if outermost {
            // A failed synchronisation surfaces in the operation itself; the timer only measures.
            let _ = device.synchronize();
            OpTimer { running: Some((op, device, Instant::now())) }
        } else {
            OpTimer { running: None }
        }
    }
}

impl Drop for OpTimer<'_> {
    fn drop(&mut self) {
        let elapsed = self.running.take().map(|(op, device, started)| {
            let _ = device.synchronize();
            (op, started.elapsed().as_secs_f64())
        });
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            if !s.active {
                return;
            }
            s.depth = s.depth.saturating_sub(1);
            if let Some((op, seconds)) = elapsed {
                let entry = s.times.entry(op).or_default();
                entry.0 += seconds;
                entry.1 += 1;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_only_the_outermost_operation_and_only_while_on() {
        let cpu = Device::cpu();
        {
            let _off = OpTimer::start("ignored", &cpu);
        }
        begin();
        {
            let _outer = OpTimer::start("ffn", &cpu);
            let _inner = OpTimer::start("linear", &cpu);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        {
            let _again = OpTimer::start("ffn", &cpu);
        }
        let times = end();
        assert_eq!(times.len(), 1, "{times:?}");
        assert_eq!((times[0].op.as_str(), times[0].calls), ("ffn", 2));
        assert!(times[0].seconds >= 0.002);
        assert!(!is_active());
        assert!(take().is_empty());
    }
}
