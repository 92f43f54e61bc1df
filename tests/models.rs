//! The models' equivalences, on the fast CPU paths (and CUDA where present), against each other
//! and against the reference backend.

use yoco::model::{config::ModelConfig, preset, Backend, Ops, Transformer, Weights, Yoco};
use yoco_core::rng::Rng;
use yoco_core::testing::{check_rel_l2, rel_l2};
use yoco_core::{DType, Device, Error, Tensor};

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
    let cpu = Device::cpu();
    // Windows below, at and above the prompt length; prefill spans that cross the window.
    for window in [5, 16, 40] {
        let (fast, reference) = (swa_model(Backend::Fast, &cpu, window), swa_model(Backend::Reference, &cpu, window));
        let (batch, prompt, steps) = (2, 23, 4);
        let n = prompt + steps;
        let all = tokens(7, batch * n, VOCAB);
        let mut full_cache = reference.new_cache(batch, n).unwrap();
        let full = reference.forward_all(&mut full_cache, &all, 16).unwrap().to_f64_vec().unwrap();
        let prompt_tokens: Vec<u32> = (0..batch).flat_map(|b| all[b * n..b * n + prompt].to_vec()).collect();
        let mut cache = fast.new_cache(batch, n).unwrap();
        let first = fast.prefill(&mut cache, &prompt_tokens, 7, 16).unwrap().to_f64_vec().unwrap();
        for b in 0..batch {
            check_rel_l2(&format!("W={window} prefill"), &row(&first, b, 1, 0, VOCAB), &row(&full, b, n, prompt - 1, VOCAB), 1e-4).unwrap();
        }
        for s in 0..steps {
            let step: Vec<u32> = (0..batch).map(|b| all[b * n + prompt + s]).collect();
            let logits = fast.decode(&mut cache, &step).unwrap().to_f64_vec().unwrap();
            for b in 0..batch {
                check_rel_l2(&format!("W={window} decode {s}"), &row(&logits, b, 1, 0, VOCAB), &row(&full, b, n, prompt + s, VOCAB), 1e-4).unwrap();
            }
        }
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

#[test]
fn yoco_prefill_then_decode_equals_one_forward() {
    let cpu = Device::cpu();
    let m = yoco_model(Backend::Fast, &cpu);
    let (batch, prompt, steps) = (2, 37, 6);
    let all = tokens(1, batch * (prompt + steps), VOCAB);
    let n = prompt + steps;
    let mut full_cache = m.new_cache(batch, n).unwrap();
    let full = m.forward_all(&mut full_cache, &all, 16).unwrap().to_f64_vec().unwrap();

    let mut cache = m.new_cache(batch, n).unwrap();
    let prompt_tokens: Vec<u32> = (0..batch).flat_map(|b| all[b * n..b * n + prompt].to_vec()).collect();
    let first = m.prefill(&mut cache, &prompt_tokens, 10, 16).unwrap().to_f64_vec().unwrap();
    for b in 0..batch {
        // Early exit: the last prompt token's logits equal running the whole cross-decoder.
        check_rel_l2("early exit", &row(&first, b, 1, 0, VOCAB), &row(&full, b, n, prompt - 1, VOCAB), 1e-5).unwrap();
    }
    for s in 0..steps {
        let step: Vec<u32> = (0..batch).map(|b| all[b * n + prompt + s]).collect();
        let logits = m.decode(&mut cache, &step).unwrap().to_f64_vec().unwrap();
        for b in 0..batch {
            check_rel_l2(&format!("decode step {s}"), &row(&logits, b, 1, 0, VOCAB), &row(&full, b, n, prompt + s, VOCAB), 1e-5).unwrap();
        }
    }
}

#[test]
fn transformer_prefill_then_decode_equals_one_forward() {
    let cpu = Device::cpu();
    let m = transformer_model(Backend::Fast, &cpu);
    let (batch, prompt, steps) = (2, 29, 5);
    let n = prompt + steps;
    let all = tokens(2, batch * n, VOCAB);
    let mut full_cache = m.new_cache(batch, n).unwrap();
    let full = m.forward_all(&mut full_cache, &all).unwrap().to_f64_vec().unwrap();
    let mut cache = m.new_cache(batch, n).unwrap();
    let prompt_tokens: Vec<u32> = (0..batch).flat_map(|b| all[b * n..b * n + prompt].to_vec()).collect();
    let first = m.prefill(&mut cache, &prompt_tokens, 8).unwrap().to_f64_vec().unwrap();
    for b in 0..batch {
        check_rel_l2("prefill", &row(&first, b, 1, 0, VOCAB), &row(&full, b, n, prompt - 1, VOCAB), 1e-5).unwrap();
    }
    for s in 0..steps {
        let step: Vec<u32> = (0..batch).map(|b| all[b * n + prompt + s]).collect();
        let logits = m.decode(&mut cache, &step).unwrap().to_f64_vec().unwrap();
        for b in 0..batch {
            check_rel_l2(&format!("decode step {s}"), &row(&logits, b, 1, 0, VOCAB), &row(&full, b, n, prompt + s, VOCAB), 1e-5).unwrap();
        }
    }
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
    assert!(matches!(m.decode(&mut c, &[1]), Err(Error::InvalidArgument { .. })));
    let cfg = micro().transformer_twin();
    assert!(Yoco::new(&cfg, Weights::init(&cfg, 1, DType::F32, &cpu).unwrap(), Ops::new(Backend::Fast), &cpu).is_err());
    let _ = Tensor::zeros([1], DType::F32, &cpu, yoco_core::MemoryCategory::Activations);
}
