//! `yoco check`: every primitive on every chosen device and dtype against the f64 reference, on
//! fresh random inputs (the same cases the test suites run), one line per case.

use yoco_core::testing::{run_seed, seed_from_env, Outcome};
use yoco_core::{Device, Error, Result};

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
        ("attention overflowing scores", Box::new(move || yoco_gqa::check::overflowing_scores(device))),
        ("attention rising scores", Box::new(move || yoco_gqa::check::rising_scores(device))),
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

/// The groups of [`sweeps`] that `only` selects, or all of them when it is empty. Each word
/// selects the group it names exactly, or else every group whose name begins with it. A word
/// that selects no group is an error that lists the names.
fn selected<'a>(sweeps: Vec<Sweep<'a>>, only: &[String]) -> Result<Vec<Sweep<'a>>> {
    let names: Vec<&'static str> = sweeps.iter().map(|(name, _)| *name).collect();
    let picks = |word: &str, name: &str| if names.contains(&word) { name == word } else { name.starts_with(word) };
    if let Some(word) = only.iter().find(|w| !names.iter().any(|name| picks(w, name))) {
        return Err(Error::invalid("yoco check", "--only", format!("{word:?}: expected a group's name or its beginning, one of {names:?}")));
    }
    Ok(sweeps.into_iter().filter(|(name, _)| only.is_empty() || only.iter().any(|w| picks(w, name))).collect())
}

/// Runs and prints every case of the groups `only` selects (all, when empty) on every device;
/// returns how many failed. Each group's lines are printed as soon as it finishes, with its
/// time, so that a run stopped from outside (a GPU call's time limit) still shows the groups it
/// finished; a group with failures is followed by the command that replays it.
pub fn run(devices: &[Device], scale: Scale, verbose: bool, only: &[String]) -> Result<usize> {
    // An error here, rather than `run_seed`'s panic.
    seed_from_env()?;
    println!("check: seed {} (YOCO_TEST_SEED replays it)", run_seed());
    let mut failed = 0;
    for device in devices {
        let (mut passed, mut total, mut worst) = (0, 0, 0.0f64);
        for (name, sweep) in selected(sweeps(device, scale), only)? {
            let started = std::time::Instant::now();
            let outcomes = sweep()?;
            for o in outcomes.iter().filter(|o| verbose || !o.passed()) {
                println!("{}", o.line());
            }
            let bad = outcomes.iter().filter(|o| !o.passed()).count();
            println!("check {device} {name}: {} of {} passed in {:.1} s", outcomes.len() - bad, outcomes.len(), started.elapsed().as_secs_f64());
            if bad > 0 {
                let kind = if device.is_cpu() { "cpu" } else { "cuda" };
                let large = if scale == Scale::Large { " --large" } else { "" };
                println!("replay: YOCO_TEST_SEED={} yoco check --device {kind}{large} --only '{name}' -v", run_seed());
            }
            passed += outcomes.len() - bad;
            total += outcomes.len();
            worst = outcomes.iter().map(|o| o.error / o.bound).fold(worst, f64::max);
            failed += bad;
        }
        println!("check {device}: {passed} of {total} cases passed; worst error/bound {worst:.2}");
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(only: &[&str], scale: Scale) -> Result<Vec<&'static str>> {
        let cpu = Device::cpu();
        let only: Vec<String> = only.iter().map(|w| w.to_string()).collect();
        let chosen = selected(sweeps(&cpu, scale), &only)?;
        Ok(chosen.into_iter().map(|(name, _)| name).collect())
    }

    #[test]
    fn only_selects_the_group_a_word_names_or_those_it_begins() {
        assert_eq!(names(&[], Scale::Small).unwrap().len(), sweeps(&Device::cpu(), Scale::Small).len());
        // A whole name selects that group alone (the replay line's case); a beginning, every
        // group it begins.
        assert_eq!(names(&["attention"], Scale::Large).unwrap(), ["attention"]);
        assert_eq!(names(&["rmsnorm"], Scale::Small).unwrap(), ["rmsnorm"]);
        assert_eq!(names(&["attention "], Scale::Small).unwrap(), ["attention windows", "attention overflowing scores", "attention rising scores"]);
        assert_eq!(names(&["attention "], Scale::Large).unwrap(), ["attention windows", "attention overflowing scores", "attention rising scores", "attention large"]);
        assert_eq!(names(&["swiglu", "ro"], Scale::Small).unwrap(), ["swiglu", "rope"]);
    }

    #[test]
    fn a_word_that_selects_nothing_is_an_error_naming_the_groups() {
        let err = names(&["rope", "softmax"], Scale::Small).unwrap_err().to_string();
        assert!(err.contains("\"softmax\"") && err.contains("cross-attention"), "{err}");
    }
}
