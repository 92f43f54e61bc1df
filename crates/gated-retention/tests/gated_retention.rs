//! Gated retention: the three reference forms agree; the fast paths match the reference on every
//! device (sweep in `check`), over a long sequence, with state handoff and decode; bad input is a
//! typed error.

use yoco_core::testing::{assert_all_passed, case_rng, check_rel_l2, rel_l2, test_devices};
use yoco_core::{DType, Device, Error, MemoryCategory, Tensor};
use yoco_gated_retention::check::{self, problem, Case, Gates, Inputs};
use yoco_gated_retention::{gated_retention, gated_retention_step, reference, ChunkSchedule, RetentionOptions, MAX_CHUNK};

#[test]
fn parallel_recurrent_and_chunkwise_forms_agree_in_f64() {
    for (seq, chunk, with_state) in [(1, 4, false), (17, 4, true), (40, 7, true), (64, 64, false), (65, 16, true)] {
        for gates in [Gates::Model, Gates::NearZero, Gates::NearOne, Gates::Floored] {
            let case = Case { batch: 2, seq, heads: 3, dim: 64, chunk, gates, with_state };
            let mut rng = case_rng(&format!("forms {case:?}"));
            let inputs = Inputs::draw(&mut rng, &case, DType::F32, &Device::cpu()).unwrap();
            let vals = inputs.to_f64().unwrap();
            let p = problem(&case, &vals);
            let (ro, rs) = reference::recurrent(&p);
            let (po, ps) = reference::parallel(&p);
            let (co, cs) = reference::chunkwise(&p, chunk);
            for (what, a, b) in [("parallel o", &po, &ro), ("chunkwise o", &co, &ro), ("parallel state", &ps, &rs), ("chunkwise state", &cs, &rs)] {
                let err = rel_l2(a, b);
                assert!(err < 1e-10, "{what} vs recurrent: {err:e} for {case:?}");
            }
        }
    }
}

#[test]
fn fast_paths_match_reference() {
    for device in test_devices("fast_paths_match_reference") {
        assert_all_passed(&check::sweep(&device, false).unwrap());
    }
}

#[test]
fn long_sequence_matches_recurrent_reference() {
    // 8K tokens through the CPU chunkwise path at the three chunk sizes, against the recurrent form.
    let case = Case { batch: 1, seq: 8192, heads: 1, dim: 64, chunk: 64, gates: Gates::Model, with_state: false };
    let mut rng = case_rng("long");
    let inputs = Inputs::draw(&mut rng, &case, DType::F32, &Device::cpu()).unwrap();
    let vals = inputs.to_f64().unwrap();
    let (want_o, want_s) = reference::recurrent(&problem(&case, &vals));
    for chunk in [64, 128, 256] {
        let options = RetentionOptions { chunk, ..RetentionOptions::default() };
        let (o, s) = gated_retention(&inputs.q, &inputs.k, &inputs.v, &inputs.log_decay, None, &options).unwrap();
        check_rel_l2(&format!("8K chunk {chunk} o"), &o.to_f64_vec().unwrap(), &want_o, 1e-5).unwrap();
        check_rel_l2(&format!("8K chunk {chunk} state"), &s.to_f64_vec().unwrap(), &want_s, 1e-5).unwrap();
    }
}

#[test]
fn prefill_in_pieces_equals_one_prefill() {
    for device in test_devices("prefill_in_pieces_equals_one_prefill") {
        let dtype = if device.is_cpu() { DType::F32 } else { DType::BF16 };
        let case = Case { batch: 2, seq: 150, heads: 2, dim: 64, chunk: 64, gates: Gates::Model, with_state: false };
        let mut rng = case_rng(&format!("pieces {device}"));
        let inputs = Inputs::draw(&mut rng, &case, dtype, &device).unwrap();
        let vals = inputs.to_f64().unwrap();
        let options = RetentionOptions::default();
        let (o_full, s_full) = gated_retention(&inputs.q, &inputs.k, &inputs.v, &inputs.log_decay, None, &options).unwrap();
        // The same tokens in pieces of 70 and 80, the state handed from one to the next.
        let piece = |from: usize, to: usize, width: usize, v: &[f64]| -> Vec<f64> {
            (0..2).flat_map(|b| v[(b * 150 + from) * width..(b * 150 + to) * width].to_vec()).collect()
        };
        let t = |v: Vec<f64>, dims: Vec<usize>, dt| Tensor::from_f64(&v, dims, dt, &device, MemoryCategory::Activations).unwrap();
        let mut state = None;
        let mut outs = Vec::new();
        for (from, to) in [(0, 70), (70, 150)] {
            let len = to - from;
            let q = t(piece(from, to, 128, &vals[0]), vec![2, len, 2, 64], dtype);
            let k = t(piece(from, to, 128, &vals[1]), vec![2, len, 2, 64], dtype);
            let v = t(piece(from, to, 128, &vals[2]), vec![2, len, 2, 64], dtype);
            let g = t(piece(from, to, 2, &vals[3]), vec![2, len, 2], DType::F32);
            let (o, s) = gated_retention(&q, &k, &v, &g, state.as_ref(), &options).unwrap();
            outs.push(o.to_f64_vec().unwrap());
            state = Some(s);
        }
        let full = o_full.to_f64_vec().unwrap();
        let joined: Vec<f64> = (0..2).flat_map(|b| [&outs[0][b * 70 * 128..(b + 1) * 70 * 128], &outs[1][b * 80 * 128..(b + 1) * 80 * 128]].concat()).collect();
        let bound = if dtype == DType::F32 { 1e-5 } else { 1e-2 };
        check_rel_l2(&format!("{device} pieces o"), &joined, &full, bound).unwrap();
        check_rel_l2(&format!("{device} pieces state"), &state.unwrap().to_f64_vec().unwrap(), &s_full.to_f64_vec().unwrap(), bound).unwrap();
    }
}

#[test]
fn decode_steps_continue_a_prefill() {
    for device in test_devices("decode_steps_continue_a_prefill") {
        let dtype = if device.is_cpu() { DType::F32 } else { DType::BF16 };
        let case = Case { batch: 3, seq: 40, heads: 2, dim: 128, chunk: 64, gates: Gates::Model, with_state: false };
        assert_all_passed(&check::decode_case(&device, dtype, &case, 8).unwrap());
        // The single-token step is also the whole story for a one-token prompt.
        let one = Case { seq: 1, ..case };
        assert_all_passed(&check::decode_case(&device, dtype, &one, 1).unwrap());
    }
}

#[test]
fn bad_input_is_a_typed_error() {
    let cpu = Device::cpu();
    let t = |dims: &[usize], dt, val: f64| Tensor::from_f64(&vec![val; dims.iter().product()], dims.to_vec(), dt, &cpu, MemoryCategory::Activations).unwrap();
    let q = t(&[1, 4, 2, 64], DType::F32, 0.1);
    let g = t(&[1, 4, 2], DType::F32, -0.1);
    let o = RetentionOptions::default();
    let run = |q: &Tensor, k: &Tensor, v: &Tensor, g: &Tensor, s: Option<&Tensor>, o: &RetentionOptions| gated_retention(q, k, v, g, s, o).map(|_| ());

    assert!(matches!(run(&q, &q, &q, &t(&[1, 4, 2], DType::F32, 0.5), None, &o), Err(Error::InvalidArgument { what: "log_decay", .. })));
    assert!(matches!(run(&q, &q, &q, &t(&[1, 4, 2], DType::F32, f64::NAN), None, &o), Err(Error::InvalidArgument { what: "log_decay", .. })));
    assert!(matches!(run(&q, &q, &q, &t(&[1, 4, 2], DType::F32, f64::NEG_INFINITY), None, &o), Err(Error::InvalidArgument { what: "log_decay", .. })));
    assert!(matches!(run(&q, &t(&[1, 4, 2, 32], DType::F32, 0.1), &q, &g, None, &o), Err(Error::ShapeMismatch { what: "k", .. })));
    assert!(matches!(run(&q, &q, &t(&[1, 4, 2, 64], DType::BF16, 0.1), &g, None, &o), Err(Error::DTypeMismatch { what: "v", .. })));
    assert!(matches!(run(&q, &q, &q, &t(&[1, 4, 2], DType::BF16, -0.1), None, &o), Err(Error::DTypeMismatch { what: "log_decay", .. })));
    assert!(matches!(run(&q, &q, &q, &g, Some(&t(&[1, 2, 64, 32], DType::F32, 0.0)), &o), Err(Error::ShapeMismatch { what: "state", .. })));
    for chunk in [0, MAX_CHUNK + 1] {
        assert!(matches!(run(&q, &q, &q, &g, None, &RetentionOptions { chunk, ..RetentionOptions::default() }), Err(Error::InvalidArgument { what: "chunk", .. })), "{chunk}");
    }
    let q48 = t(&[1, 4, 2, 48], DType::F32, 0.1);
    let err = run(&q48, &q48, &q48, &g, None, &o).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }) && err.to_string().contains("[64, 128, 256]"), "{err}");
    assert!(matches!(run(&t(&[1, 0, 2, 64], DType::F32, 0.0), &q, &q, &g, None, &o), Err(Error::Empty { .. })));
    let mut state = t(&[1, 2, 64, 64], DType::F32, 0.0);
    assert!(matches!(gated_retention_step(&q, &q, &q, &g, &mut state, &RetentionOptions::default()), Err(Error::ShapeMismatch { what: "q", .. })));
    let msg = run(&q, &q, &q, &t(&[1, 4, 2], DType::F32, 0.5), None, &o).unwrap_err().to_string();
    assert!(msg.contains("[0, 0, 0]") && msg.contains("<= 0"), "{msg}");
    // With the gate check off (as a model whose gates are ≤ 0 by construction runs it), the same
    // bad gates are not read, and show up in the results instead.
    let unchecked = RetentionOptions { check_gates: false, ..RetentionOptions::default() };
    let (out, _) = gated_retention(&q, &q, &q, &t(&[1, 4, 2], DType::F32, f64::NAN), None, &unchecked).unwrap();
    assert!(out.to_f64_vec().unwrap().iter().all(|v| v.is_nan()));
    let one = t(&[1, 1, 2, 64], DType::F32, 0.1);
    let out = gated_retention_step(&one, &one, &one, &t(&[1, 1, 2], DType::F32, f64::NAN), &mut state, &unchecked).unwrap();
    assert!(out.to_f64_vec().unwrap().iter().all(|v| v.is_nan()));
}

#[test]
fn outputs_are_accounted() {
    let cpu = Device::cpu();
    let case = Case { batch: 1, seq: 8, heads: 2, dim: 64, chunk: 64, gates: Gates::Model, with_state: false };
    let inputs = Inputs::draw(&mut case_rng("acct"), &case, DType::F32, &cpu).unwrap();
    let (_o, _s) = gated_retention(&inputs.q, &inputs.k, &inputs.v, &inputs.log_decay, None, &RetentionOptions::default()).unwrap();
    assert_eq!(cpu.memory().current(MemoryCategory::RecurrentState), 2 * 64 * 64 * 4);
}

#[test]
fn schedules_parse_by_name() {
    for schedule in [ChunkSchedule::Parallel, ChunkSchedule::Sequential] {
        assert_eq!(ChunkSchedule::parse(schedule.name()).unwrap(), schedule);
    }
    let err = ChunkSchedule::parse("fast").unwrap_err().to_string();
    assert!(err.contains("\"fast\"") && err.contains("sequential"), "{err}");
}

/// After a run of floored gates a chunk's cumulative sum is near −6,000, where an f32 sum keeps
/// steps of 2⁻¹¹ only: the decays between the ordinary gates after it must still be as exact as
/// the plain implementation's. Tighter than the sweep's 2× bound: the CUDA kernels' former f32
/// cumsum gave f16 states 1.3–2.4× the plain implementation's error (emulated, 6 seeds); the f64
/// scan gives 1.00–1.01×. (The CPU path computes in f32 from f64 sums, far inside the bound.)
#[test]
fn decays_after_floored_gates_keep_their_digits() {
    for device in test_devices("decays_after_floored_gates_keep_their_digits") {
        let (dtypes, schedules): (&[DType], &[ChunkSchedule]) =
            if device.is_cpu() { (&[DType::BF16], &[ChunkSchedule::Parallel]) } else { (&[DType::BF16, DType::F16], &[ChunkSchedule::Parallel, ChunkSchedule::Sequential]) };
        for &dtype in dtypes {
            let case = Case { batch: 2, seq: 192, heads: 2, dim: 64, chunk: 64, gates: Gates::Floored, with_state: true };
            for outcome in check::prefill_case(&device, dtype, &case, schedules).unwrap() {
                let plain = outcome.plain_error.expect("16-bit outcomes have a plain error");
                assert!(outcome.error <= 1.2 * plain, "{}: error {:.3e}, more than 1.2x the plain implementation's {plain:.3e}", outcome.label, outcome.error);
            }
        }
    }
}

/// Gates near f32's lowest value are valid log-decays (decays of 0): the chunkwise form's
/// cumulative sums stay finite (GATE_FLOOR) and the outputs match the recurrent form, which
/// takes e^g of each gate alone, instead of turning NaN.
#[test]
fn extreme_gates_decay_to_zero_without_nan() {
    let case = Case { batch: 1, seq: 200, heads: 2, dim: 64, chunk: 64, gates: Gates::Model, with_state: false };
    let mut rng = case_rng("extreme gates");
    let inputs = Inputs::draw(&mut rng, &case, DType::F32, &Device::cpu()).unwrap();
    let mut vals = inputs.to_f64().unwrap();
    for (i, g) in vals[3].iter_mut().enumerate() {
        match i % 37 {
            0 => *g = f32::MIN as f64,
            18 => *g = -1e5,
            _ => {}
        }
    }
    let gates = Tensor::from_f64(&vals[3], [1, 200, 2], DType::F32, &Device::cpu(), MemoryCategory::Activations).unwrap();
    let (want_o, want_s) = reference::recurrent(&problem(&case, &vals));
    let (o, s) = gated_retention(&inputs.q, &inputs.k, &inputs.v, &gates, None, &RetentionOptions::default()).unwrap();
    check_rel_l2("extreme gates o", &o.to_f64_vec().unwrap(), &want_o, 1e-5).unwrap();
    check_rel_l2("extreme gates state", &s.to_f64_vec().unwrap(), &want_s, 1e-5).unwrap();
}

/// A non-finite key reaches its own token's outputs and later ones only, as in the recurrence:
/// the chunkwise forms mask later keys' scores to exactly 0 instead of multiplying them by 0 (an
/// infinite score times 0 is NaN), on every device and, on CUDA, with both schedules.
#[test]
fn a_non_finite_key_reaches_no_earlier_token() {
    const SEQ: usize = 100;
    const DIM: usize = 64;
    const BAD_TOKEN: usize = 40; // inside the first chunk, after some of its tokens
    let case = Case { batch: 1, seq: SEQ, heads: 1, dim: DIM, chunk: 64, gates: Gates::Model, with_state: false };
    for device in test_devices("a_non_finite_key_reaches_no_earlier_token") {
        let (dtypes, schedules): (&[DType], &[ChunkSchedule]) = if device.is_cpu() {
            (&[DType::F32, DType::BF16], &[ChunkSchedule::Parallel])
        } else {
            (&[DType::BF16, DType::F16], &[ChunkSchedule::Parallel, ChunkSchedule::Sequential])
        };
        for &dtype in dtypes {
            let mut rng = case_rng("non-finite key");
            let inputs = Inputs::draw(&mut rng, &case, dtype, &device).unwrap();
            let mut k = inputs.k.to_f64_vec().unwrap();
            k[BAD_TOKEN * DIM + 3] = f64::INFINITY;
            let k = Tensor::from_f64(&k, [1, SEQ, 1, DIM], dtype, &device, MemoryCategory::Activations).unwrap();
            for &schedule in schedules {
                let options = RetentionOptions { schedule, ..RetentionOptions::default() };
                let (o, _) = gated_retention(&inputs.q, &k, &inputs.v, &inputs.log_decay, None, &options).unwrap();
                let o = o.to_f64_vec().unwrap();
                let label = format!("{device:?} {dtype:?} {}", schedule.name());
                assert!(o[..BAD_TOKEN * DIM].iter().all(|x| x.is_finite()), "{label}: an output before the infinite key is not finite");
                assert!(o[BAD_TOKEN * DIM..].iter().any(|x| !x.is_finite()), "{label}: the infinite key reached no output");
            }
        }
    }
}

/// On CUDA the two schedules run the same pieces (the gate scan, the state in registers, a warp
/// per 16 tokens' outputs) in a different order, and every output and state element is computed
/// by the same operations on the same values: they must agree bit for bit, not only within the
/// reference's bound.
#[test]
fn cuda_schedules_agree_exactly() {
    for device in test_devices("cuda_schedules_agree_exactly").into_iter().filter(|d| !d.is_cpu()) {
        for (dim, dtype) in [(64, DType::BF16), (128, DType::F16)] {
            let case = Case { batch: 2, seq: 200, heads: 3, dim, chunk: 64, gates: Gates::Model, with_state: true };
            let mut rng = case_rng(&format!("schedules {case:?}"));
            let inputs = Inputs::draw(&mut rng, &case, dtype, &device).unwrap();
            let run = |schedule| {
                let options = RetentionOptions { schedule, ..RetentionOptions::default() };
                let (o, s) = gated_retention(&inputs.q, &inputs.k, &inputs.v, &inputs.log_decay, inputs.state.as_ref(), &options).unwrap();
                (o.to_f64_vec().unwrap(), s.to_f64_vec().unwrap())
            };
            let (parallel, sequential) = (run(ChunkSchedule::Parallel), run(ChunkSchedule::Sequential));
            let differing = |a: &[f64], b: &[f64]| a.iter().zip(b).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
            assert_eq!(differing(&parallel.0, &sequential.0), 0, "D {dim} {dtype:?}: outputs differ between the schedules");
            assert_eq!(differing(&parallel.1, &sequential.1), 0, "D {dim} {dtype:?}: states differ between the schedules");
        }
    }
}
