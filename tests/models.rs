//! The models' equivalences, on the fast CPU paths (and CUDA where present), against each other
//! and against the reference backend.

use std::cell::RefCell;

use yoco::model::{config::ModelConfig, generate, preset, profile, AnyModel, Backend, Ops, Sampler, Transformer, Weights, Yoco};
use yoco_core::rng::Rng;
use yoco_core::testing::{check_rel_l2, rel_l2};
use yoco_core::{DType, Device, Error};

/// A YOCO small enough for debug-mode tests: 2 + 2 layers of width 128.
fn micro() -> ModelConfig {
    let mut c = preset("tiny-yoco").unwrap();
    c.name = "micro-yoco".into();
    c.d_model = 128;
    c.n_layers = 4;
    c.n_heads = 2;
    c.n_kv_heads = 1;
    c.head_dim = 64;
    c.ffn_dim = 256;
    c.vocab_size = 97;
    c.max_seq_len = 256;
    c.architecture = yoco::model::Architecture::Yoco { self_decoder: yoco::model::SelfDecoder::GatedRetention { heads: 2, head_dim: 64 } };
    c
}

fn tokens(seed: u64, n: usize, vocab: usize) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.below(vocab) as u32).collect()
}

fn yoco_model(backend: Backend, device: &Device) -> Yoco {
    let c = micro();
    Yoco::new(&c, Weights::init(&c, 5, DType::F32, device).unwrap(), Ops::new(backend), device).unwrap()
}

/// The micro YOCO with a sliding-window self-decoder of `window` tokens.
fn swa_model(backend: Backend, device: &Device, window: usize) -> Yoco {
    let mut c = micro();
    c.architecture = yoco::model::Architecture::Yoco { self_decoder: yoco::model::SelfDecoder::SlidingWindow { window } };
    Yoco::new(&c, Weights::init(&c, 5, DType::F32, device).unwrap(), Ops::new(backend), device).unwrap()
}

#[test]
fn sliding_window_yoco_matches_its_reference_and_decodes_consistently() {
    // The fast model's ring buffer, prefill spans crossing the window, against the reference
    // model's full cache read through the window mask: windows below, at and above the prompt.
    let cpu = Device::cpu();
    for window in [5, 16, 40] {
        let (fast, reference) = (swa_model(Backend::Fast, &cpu, window), swa_model(Backend::Reference, &cpu, window));
        let (batch, prompt, steps) = (2, 23, 4);
        let all = tokens(7, batch * (prompt + steps), VOCAB);
        let cache = RefCell::new(fast.new_cache(batch, prompt + steps).unwrap());
        continuation_equals_forward(
            &format!("W={window}"),
            &all,
            batch,
            prompt,
            steps,
            1e-4,
            |t| reference.forward_all(&mut reference.new_cache(batch, prompt + steps).unwrap(), t, 16).unwrap().to_f64_vec().unwrap(),
            |t| fast.prefill(&mut cache.borrow_mut(), t, 7, 16).unwrap().to_f64_vec().unwrap(),
            |t| fast.decode(&mut cache.borrow_mut(), t).unwrap().to_f64_vec().unwrap(),
        );
    }
}

fn transformer_model(backend: Backend, device: &Device) -> Transformer {
    let c = micro().transformer_twin();
    Transformer::new(&c, Weights::init(&c, 5, DType::F32, device).unwrap(), Ops::new(backend), device).unwrap()
}

/// Row `pos` of logits `[batch, n, vocab]` for sequence `b`.
fn row(logits: &[f64], b: usize, n: usize, pos: usize, vocab: usize) -> Vec<f64> {
    logits[(b * n + pos) * vocab..(b * n + pos + 1) * vocab].to_vec()
}

const VOCAB: usize = 97;

/// The shared body of the "prefill then decode equals one forward" tests: `forward` gives the
/// logits of every position `[batch, n, vocab]` in one pass; `prefill` the last prompt token's;
/// `decode` one step's. Each step's logits must equal the forward's at that position.
#[allow(clippy::too_many_arguments)]
fn continuation_equals_forward(
    label: &str,
    all: &[u32],
    batch: usize,
    prompt: usize,
    steps: usize,
    bound: f64,
    forward: impl FnOnce(&[u32]) -> Vec<f64>,
    prefill: impl FnOnce(&[u32]) -> Vec<f64>,
    mut decode: impl FnMut(&[u32]) -> Vec<f64>,
) {
    let n = prompt + steps;
    let full = forward(all);
    let prompt_tokens: Vec<u32> = (0..batch).flat_map(|b| all[b * n..b * n + prompt].to_vec()).collect();
    let first = prefill(&prompt_tokens);
    for b in 0..batch {
        check_rel_l2(&format!("{label} prefill"), &row(&first, b, 1, 0, VOCAB), &row(&full, b, n, prompt - 1, VOCAB), bound).unwrap();
    }
    for s in 0..steps {
        let step: Vec<u32> = (0..batch).map(|b| all[b * n + prompt + s]).collect();
        let logits = decode(&step);
        for b in 0..batch {
            check_rel_l2(&format!("{label} decode step {s}"), &row(&logits, b, 1, 0, VOCAB), &row(&full, b, n, prompt + s, VOCAB), bound).unwrap();
        }
    }
}

#[test]
fn yoco_prefill_then_decode_equals_one_forward() {
    // The prefill's logits are early exit's: equal to running the whole cross-decoder.
    let cpu = Device::cpu();
    let m = yoco_model(Backend::Fast, &cpu);
    let (batch, prompt, steps) = (2, 37, 6);
    let all = tokens(1, batch * (prompt + steps), VOCAB);
    let cache = RefCell::new(m.new_cache(batch, prompt + steps).unwrap());
    continuation_equals_forward(
        "yoco",
        &all,
        batch,
        prompt,
        steps,
        1e-5,
        |t| m.forward_all(&mut m.new_cache(batch, prompt + steps).unwrap(), t, 16).unwrap().to_f64_vec().unwrap(),
        |t| m.prefill(&mut cache.borrow_mut(), t, 10, 16).unwrap().to_f64_vec().unwrap(),
        |t| m.decode(&mut cache.borrow_mut(), t).unwrap().to_f64_vec().unwrap(),
    );
}

#[test]
fn transformer_prefill_then_decode_equals_one_forward() {
    let cpu = Device::cpu();
    let m = transformer_model(Backend::Fast, &cpu);
    let (batch, prompt, steps) = (2, 29, 5);
    let all = tokens(2, batch * (prompt + steps), VOCAB);
    let cache = RefCell::new(m.new_cache(batch, prompt + steps).unwrap());
    continuation_equals_forward(
        "transformer",
        &all,
        batch,
        prompt,
        steps,
        1e-5,
        |t| m.forward_all(&mut m.new_cache(batch, prompt + steps).unwrap(), t).unwrap().to_f64_vec().unwrap(),
        |t| m.prefill(&mut cache.borrow_mut(), t, 8).unwrap().to_f64_vec().unwrap(),
        |t| m.decode(&mut cache.borrow_mut(), t).unwrap().to_f64_vec().unwrap(),
    );
}

#[test]
fn chunked_prefill_equals_one_shot_prefill() {
    let cpu = Device::cpu();
    let (y, t) = (yoco_model(Backend::Fast, &cpu), transformer_model(Backend::Fast, &cpu));
    let prompt = tokens(3, 2 * 50, VOCAB);
    let mut cy = y.new_cache(2, 50).unwrap();
    let one_y = y.prefill(&mut cy, &prompt, 50, 64).unwrap().to_f64_vec().unwrap();
    let mut ct = t.new_cache(2, 50).unwrap();
    let one_t = t.prefill(&mut ct, &prompt, 50).unwrap().to_f64_vec().unwrap();
    for (chunk, retention_chunk) in [(1, 1), (7, 3), (16, 64), (49, 8)] {
        let mut cy = y.new_cache(2, 50).unwrap();
        let got = y.prefill(&mut cy, &prompt, chunk, retention_chunk).unwrap().to_f64_vec().unwrap();
        check_rel_l2(&format!("yoco chunk {chunk}"), &got, &one_y, 1e-5).unwrap();
        let mut ct = t.new_cache(2, 50).unwrap();
        let got = t.prefill(&mut ct, &prompt, chunk).unwrap().to_f64_vec().unwrap();
        check_rel_l2(&format!("transformer chunk {chunk}"), &got, &one_t, 1e-5).unwrap();
    }
}

#[test]
fn a_batch_equals_each_prompt_alone() {
    let cpu = Device::cpu();
    let m = yoco_model(Backend::Fast, &cpu);
    let t = transformer_model(Backend::Fast, &cpu);
    let (batch, n) = (3, 21);
    let prompts = tokens(4, batch * n, VOCAB);
    let mut c = m.new_cache(batch, n).unwrap();
    let together = m.prefill(&mut c, &prompts, 8, 16).unwrap().to_f64_vec().unwrap();
    let mut ct = t.new_cache(batch, n).unwrap();
    let together_t = t.prefill(&mut ct, &prompts, 8).unwrap().to_f64_vec().unwrap();
    for b in 0..batch {
        let alone = &prompts[b * n..(b + 1) * n];
        let mut c = m.new_cache(1, n).unwrap();
        let got = m.prefill(&mut c, alone, 8, 16).unwrap().to_f64_vec().unwrap();
        check_rel_l2("yoco batch row", &row(&together, b, 1, 0, VOCAB), &got, 1e-5).unwrap();
        let mut c = t.new_cache(1, n).unwrap();
        let got = t.prefill(&mut c, alone, 8).unwrap().to_f64_vec().unwrap();
        check_rel_l2("transformer batch row", &row(&together_t, b, 1, 0, VOCAB), &got, 1e-5).unwrap();
    }
}

#[test]
fn fast_models_match_the_reference_models() {
    let cpu = Device::cpu();
    let prompt = tokens(5, 2 * 24, VOCAB);
    let (fast, reference) = (yoco_model(Backend::Fast, &cpu), yoco_model(Backend::Reference, &cpu));
    let mut cf = fast.new_cache(2, 26).unwrap();
    let mut cr = reference.new_cache(2, 26).unwrap();
    let f = fast.prefill(&mut cf, &prompt, 10, 8).unwrap().to_f64_vec().unwrap();
    let r = reference.prefill(&mut cr, &prompt, 10, 8).unwrap().to_f64_vec().unwrap();
    check_rel_l2("yoco fast vs reference prefill", &f, &r, 1e-4).unwrap();
    let f = fast.decode(&mut cf, &[3, 4]).unwrap().to_f64_vec().unwrap();
    let r = reference.decode(&mut cr, &[3, 4]).unwrap().to_f64_vec().unwrap();
    check_rel_l2("yoco fast vs reference decode", &f, &r, 1e-4).unwrap();

    let (fast, reference) = (transformer_model(Backend::Fast, &cpu), transformer_model(Backend::Reference, &cpu));
    let mut cf = fast.new_cache(2, 24).unwrap();
    let mut cr = reference.new_cache(2, 24).unwrap();
    let f = fast.prefill(&mut cf, &prompt, 10).unwrap().to_f64_vec().unwrap();
    let r = reference.prefill(&mut cr, &prompt, 10).unwrap().to_f64_vec().unwrap();
    check_rel_l2("transformer fast vs reference", &f, &r, 1e-4).unwrap();
    // Not trivially equal: the logits vary across the vocabulary.
    assert!(rel_l2(&f, &vec![f[0]; f.len()]) > 0.1);
}

#[test]
fn profiling_names_each_models_operations_within_the_wall_time() {
    // What the harness's per-phase table rests on: every operation of each model is seen, each
    // call counted once (the FFN's inner projections count toward the FFN), inside the wall time.
    let cpu = Device::cpu();
    let prompt = tokens(9, 40, VOCAB);
    let yoco_config = micro();
    let models = [
        (AnyModel::build(&yoco_config, Weights::init(&yoco_config, 5, DType::F32, &cpu).unwrap(), Ops::new(Backend::Fast), &cpu).unwrap(), "gated_retention"),
        (AnyModel::build(&yoco_config.transformer_twin(), Weights::init(&yoco_config.transformer_twin(), 5, DType::F32, &cpu).unwrap(), Ops::new(Backend::Fast), &cpu).unwrap(), "attention"),
    ];
    for (model, mixer) in &models {
        profile::begin();
        let g = generate(model, &prompt, 1, 4, &mut Sampler::Greedy, 16).unwrap();
        assert!(profile::end().is_empty(), "generate takes each phase's times");
        let layers = model.config().n_layers as u64;
        for (phase, wall, ops) in [("prefill", g.prefill_seconds, &g.prefill_ops), ("decode", g.decode_seconds, &g.decode_ops)] {
            let calls = |op: &str| ops.iter().find(|t| t.op == op).map_or(0, |t| t.calls);
            assert!(calls(mixer) > 0 && calls("ffn") > 0 && calls("sample") > 0, "{phase}: {ops:?}");
            // 3 spans of prefill (40 tokens, span 16) or 3 decode steps, each through every FFN;
            // but YOCO's prefill runs its cross-decoder (half the layers) once, for the last
            // token (early exit).
            let ffn_calls = if phase == "prefill" && model.config().is_yoco() { 3 * layers / 2 + layers / 2 } else { 3 * layers };
            assert_eq!(calls("ffn"), ffn_calls, "{phase} of {}: {ops:?}", model.config().name);
            let sum: f64 = ops.iter().map(|t| t.seconds).sum();
            assert!(sum <= wall * 1.001 + 1e-4, "{phase}: operations {sum} s in a wall time of {wall} s");
        }
    }
    // Off again: a plain generation records nothing.
    let g = generate(&models[0].0, &prompt, 1, 2, &mut Sampler::Greedy, 16).unwrap();
    assert!(g.prefill_ops.is_empty() && g.decode_ops.is_empty());
}

/// The fast models in bf16 on the CPU (16-bit weights, activations and caches; f32 products)
/// against the f64 reference from the same rounded weights, as `yoco check` runs them.
#[test]
fn bf16_models_on_the_cpu_match_the_reference() {
    let cpu = Device::cpu();
    for config in yoco::model::check::configs() {
        let outcomes = yoco::model::check::case(&cpu, DType::BF16, &config, 70, 2).unwrap();
        for o in &outcomes {
            assert!(o.error <= o.bound, "{}: {:.3e} > {:.1e}", o.label, o.error, o.bound);
        }
        // Not vacuous: the half-precision bound is far above what f32 reaches, and bf16 is not f32.
        assert!(outcomes.iter().any(|o| o.error > 1e-4), "bf16 logits as exact as f32's? {outcomes:?}");
    }
}

#[test]
fn bad_input_is_a_typed_error() {
    let cpu = Device::cpu();
    let m = yoco_model(Backend::Fast, &cpu);
    let mut c = m.new_cache(2, 16).unwrap();
    assert!(matches!(m.prefill(&mut c, &[1, 2, 3], 4, 4), Err(Error::InvalidArgument { what: "tokens", .. })));
    let err = m.prefill(&mut c, &[1, 2, 97, 4], 4, 4).unwrap_err().to_string();
    assert!(err.contains("97") && err.contains("vocabulary"), "{err}");
    // 2 × 17 tokens do not fit a cache of 16 positions: an error, not a truncation.
    let long = tokens(6, 2 * 17, VOCAB);
    assert!(m.prefill(&mut c, &long, 8, 8).is_err());
    assert!(m.new_cache(1, 257).is_err(), "beyond max_seq_len");
    // Neither a refused prefill nor a refused decode changes the cache: every check comes before
    // the first state is written.
    assert_eq!(c.len(), 0);
    let mut small = m.new_cache(1, 4).unwrap();
    let err = m.prefill(&mut small, &tokens(8, 8, VOCAB), 4, 4).unwrap_err().to_string();
    assert!(err.contains("capacity of 4"), "{err}");
    assert_eq!(small.len(), 0);
    let prompt = tokens(9, 3, VOCAB);
    let after_refusal = m.prefill(&mut small, &prompt, 4, 4).unwrap().to_f64_vec().unwrap();
    let fresh = m.prefill(&mut m.new_cache(1, 4).unwrap(), &prompt, 4, 4).unwrap().to_f64_vec().unwrap();
    assert_eq!(after_refusal, fresh);
    m.decode(&mut small, &[5]).unwrap();
    assert!(m.decode(&mut small, &[5]).is_err(), "a full cache");
    let t = transformer_model(Backend::Fast, &cpu);
    let mut tc = t.new_cache(1, 4).unwrap();
    assert!(t.prefill(&mut tc, &tokens(8, 8, VOCAB), 4).is_err());
    assert_eq!(tc.len(), 0);
    // generate's cache size is counted, not wrapped.
    let any = AnyModel::Yoco(yoco_model(Backend::Fast, &cpu));
    let err = generate(&any, &[1, 2], 1, usize::MAX, &mut Sampler::new(0.0, 0).unwrap(), 4).err().unwrap().to_string();
    assert!(err.contains("new_tokens"), "{err}");
    // Logits with no row or no vocabulary are refused by the sampler.
    let empty = yoco_core::Tensor::zeros([1, 1, 0], DType::F32, &cpu, yoco_core::MemoryCategory::Activations).unwrap();
    assert!(matches!(Sampler::new(0.0, 0).unwrap().sample(&empty), Err(Error::ShapeMismatch { what: "logits", .. })));
    assert!(matches!(m.decode(&mut c, &[1]), Err(Error::InvalidArgument { .. })));
    let cfg = micro().transformer_twin();
    assert!(Yoco::new(&cfg, Weights::init(&cfg, 1, DType::F32, &cpu).unwrap(), Ops::new(Backend::Fast), &cpu).is_err());
}
