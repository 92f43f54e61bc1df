//! `yoco check`: every primitive on every chosen device and dtype against the f64 reference, on
//! fresh random inputs (the same cases the test suites run), one line per case.

use yoco_core::testing::{run_seed, Outcome};
use yoco_core::{Device, Result};

/// Which shapes to check at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// The test suites' awkward small shapes: seconds on a CPU.
    Small,
    /// Shapes that fill a GPU (YOCO-3B widths over thousands of tokens) as well.
    Large,
}

/// Runs every case on `device`; returns the outcomes.
pub fn run_device(device: &Device, scale: Scale) -> Result<Vec<Outcome>> {
    let mut outcomes = yoco_rmsnorm::check::sweep(device, yoco_rmsnorm::check::SHAPES)?;
    outcomes.extend(yoco_swiglu::check::sweep(device, yoco_swiglu::check::GATE_SHAPES, yoco_swiglu::check::FFN_SHAPES)?);
    outcomes.extend(yoco_gated_retention::check::sweep(device, scale == Scale::Large)?);
    outcomes.extend(yoco_rope::check::sweep(device, yoco_rope::check::SHAPES)?);
    outcomes.extend(yoco_gqa::check::sweep(device, yoco_gqa::check::SHAPES)?);
    outcomes.extend(yoco_gqa::check::sweep(device, &yoco_gqa::check::window_cases())?);
    outcomes.extend(yoco_swa::check::sweep(device, &yoco_swa::check::ring_cases())?);
    outcomes.extend(yoco_cross_attention::check::sweep(device, yoco_cross_attention::check::CASES)?);
    outcomes.extend(crate::model::check::sweep(device)?);
    if scale == Scale::Large {
        outcomes.extend(yoco_rmsnorm::check::sweep(device, yoco_rmsnorm::check::LARGE_SHAPES)?);
        outcomes.extend(yoco_swiglu::check::sweep(device, yoco_swiglu::check::LARGE_GATE_SHAPES, yoco_swiglu::check::LARGE_FFN_SHAPES)?);
        outcomes.extend(yoco_rope::check::sweep(device, yoco_rope::check::LARGE_SHAPES)?);
        outcomes.extend(yoco_gqa::check::sampled_sweep(device, yoco_gqa::check::LARGE_SHAPES)?);
        outcomes.extend(yoco_gqa::check::sampled_sweep(device, yoco_gqa::check::LARGE_DECODE_SHAPES)?);
        outcomes.extend(yoco_cross_attention::check::sweep(device, yoco_cross_attention::check::LARGE_CASES)?);
    }
    Ok(outcomes)
}

/// Runs and prints every case on every device; returns how many failed.
pub fn run(devices: &[Device], scale: Scale, verbose: bool) -> Result<usize> {
    println!("check: seed {} (YOCO_TEST_SEED replays it)", run_seed());
    let mut failed = 0;
    for device in devices {
        let outcomes = run_device(device, scale)?;
        let bad = outcomes.iter().filter(|o| !o.passed()).count();
        for o in outcomes.iter().filter(|o| verbose || !o.passed()) {
            println!("{}", o.line());
        }
        let worst = outcomes.iter().map(|o| o.error / o.bound).fold(0.0, f64::max);
        println!("check {device}: {} of {} cases passed; worst error/bound {worst:.2}", outcomes.len() - bad, outcomes.len());
        failed += bad;
    }
    Ok(failed)
}
