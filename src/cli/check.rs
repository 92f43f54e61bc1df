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

/// One named group of cases, run when called.
type Sweep<'a> = (&'static str, Box<dyn Fn() -> Result<Vec<Outcome>> + 'a>);

/// Every group of cases on `device`, in order: the small shapes, then (at [`Scale::Large`]) the
/// GPU-filling ones.
fn sweeps(device: &Device, scale: Scale) -> Vec<Sweep<'_>> {
    let mut sweeps: Vec<Sweep<'_>> = vec![
        ("rmsnorm", Box::new(move || yoco_rmsnorm::check::sweep(device, yoco_rmsnorm::check::SHAPES))),
        ("rmsnorm overflowing rows", Box::new(move || yoco_rmsnorm::check::overflowing_rows(device))),
        ("swiglu", Box::new(move || yoco_swiglu::check::sweep(device, yoco_swiglu::check::GATE_SHAPES, yoco_swiglu::check::FFN_SHAPES))),
        ("gated retention", Box::new(move || yoco_gated_retention::check::sweep(device, scale == Scale::Large))),
        ("rope", Box::new(move || yoco_rope::check::sweep(device, yoco_rope::check::SHAPES))),
        ("attention", Box::new(move || yoco_gqa::check::sweep(device, yoco_gqa::check::SHAPES))),
        ("attention windows", Box::new(move || yoco_gqa::check::sweep(device, &yoco_gqa::check::window_cases()))),
        ("swa ring", Box::new(move || yoco_swa::check::sweep(device, &yoco_swa::check::ring_cases()))),
        ("cross-attention", Box::new(move || yoco_cross_attention::check::sweep(device, yoco_cross_attention::check::CASES))),
        ("models", Box::new(move || crate::model::check::sweep(device))),
    ];
    if scale == Scale::Large {
        sweeps.extend::<[Sweep<'_>; 6]>([
            ("rmsnorm large", Box::new(move || yoco_rmsnorm::check::sweep(device, yoco_rmsnorm::check::LARGE_SHAPES))),
            ("swiglu large", Box::new(move || yoco_swiglu::check::sweep(device, yoco_swiglu::check::LARGE_GATE_SHAPES, yoco_swiglu::check::LARGE_FFN_SHAPES))),
            ("rope large", Box::new(move || yoco_rope::check::sweep(device, yoco_rope::check::LARGE_SHAPES))),
            ("attention large", Box::new(move || yoco_gqa::check::sampled_sweep(device, yoco_gqa::check::LARGE_SHAPES))),
            ("decode large", Box::new(move || yoco_gqa::check::sampled_sweep(device, yoco_gqa::check::LARGE_DECODE_SHAPES))),
            ("cross-attention large", Box::new(move || yoco_cross_attention::check::sweep(device, yoco_cross_attention::check::LARGE_CASES))),
        ]);
    }
    sweeps
}

/// Runs and prints every case on every device; returns how many failed. Each group's lines are
/// printed as soon as it finishes, with its time, so that a run stopped from outside (a GPU call's
/// time limit) still shows the groups it finished.
pub fn run(devices: &[Device], scale: Scale, verbose: bool) -> Result<usize> {
    println!("check: seed {} (YOCO_TEST_SEED replays it)", run_seed());
    let mut failed = 0;
    for device in devices {
        let (mut passed, mut total, mut worst) = (0, 0, 0.0f64);
        for (name, sweep) in sweeps(device, scale) {
            let started = std::time::Instant::now();
            let outcomes = sweep()?;
            for o in outcomes.iter().filter(|o| verbose || !o.passed()) {
                println!("{}", o.line());
            }
            let bad = outcomes.iter().filter(|o| !o.passed()).count();
            println!("check {device} {name}: {} of {} passed in {:.1} s", outcomes.len() - bad, outcomes.len(), started.elapsed().as_secs_f64());
            passed += outcomes.len() - bad;
            total += outcomes.len();
            worst = outcomes.iter().map(|o| o.error / o.bound).fold(worst, f64::max);
            failed += bad;
        }
        println!("check {device}: {passed} of {total} cases passed; worst error/bound {worst:.2}");
    }
    Ok(failed)
}
