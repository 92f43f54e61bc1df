//! The memory accounting of a real prefill equals the analytic model, category by category.

use yoco::model::memory::{predict, Workload};
use yoco::model::{preset, Architecture, Backend, ModelConfig, Ops, SelfDecoder, Transformer, Weights, Yoco};
use yoco_core::{DType, Device, MemoryCategory};

fn measure(config: &ModelConfig, dtype: DType, batch: usize, prompt: usize, span: usize, capacity: usize) -> [usize; 4] {
    let device = Device::cpu();
    let weights = Weights::init(config, 3, dtype, &device).unwrap();
    let tokens: Vec<u32> = (0..batch * prompt).map(|i| (i * 7 % config.vocab_size) as u32).collect();
    let ops = Ops::new(Backend::Fast);
    if config.is_yoco() {
        let m = Yoco::new(config, weights, ops, &device).unwrap();
        let mut cache = m.new_cache(batch, capacity).unwrap();
        drop(m.prefill(&mut cache, &tokens, span, 64).unwrap());
    } else {
        let m = Transformer::new(config, weights, ops, &device).unwrap();
        let mut cache = m.new_cache(batch, capacity).unwrap();
        drop(m.prefill(&mut cache, &tokens, span).unwrap());
    }
    let s = device.memory();
    MemoryCategory::ALL.map(|c| s.peak(c))
}

#[test]
fn measured_peaks_equal_the_analytic_model() {
    let tiny = preset("tiny-yoco").unwrap();
    let mut swa = tiny.clone();
    swa.architecture = yoco::model::Architecture::Yoco { self_decoder: yoco::model::SelfDecoder::SlidingWindow { window: 24 } };
    swa.name = "tiny-swa-yoco".into();
    for config in [tiny.clone(), tiny.transformer_twin(), swa] {
        for dtype in [DType::F32, DType::BF16] {
            // One span; whole spans and a short last one; one whole span and a short one (the
            // peak is the first span's, which carries no token from an earlier one); a capacity
            // below the window (the rings then hold only that many slots).
            for (batch, prompt, span, capacity) in [(1, 64, 64, 80), (2, 100, 32, 128), (3, 40, 16, 40), (2, 60, 32, 64), (2, 12, 8, 16)] {
                let measured = measure(&config, dtype, batch, prompt, span, capacity);
                let p = predict(&config, &Workload { batch, capacity, prompt, span, elem: dtype.size_in_bytes(), retention_chunk_states: false, ffn_intermediates: yoco_swiglu::ffn_intermediates(dtype, &Device::cpu()) }).unwrap();
                let predicted = [p.weights, p.kv_cache, p.recurrent_state, p.activations];
                assert_eq!(measured, predicted, "{} {dtype} batch {batch} prompt {prompt} span {span}: [weights, kv, state, activations]", config.name);
            }
        }
    }
}

/// A batch whose bytes pass `usize::MAX` predicts `usize::MAX` (which no budget fits), not a
/// wrapped-round small number that the harness's batch search would take for one that fits.
#[test]
fn a_prediction_past_the_address_space_saturates() {
    let config = preset("yoco-3b").unwrap();
    let workload = |batch| Workload { batch, capacity: 1 << 20, prompt: (1 << 20) - 1024, span: 32_768, elem: 2, retention_chunk_states: true, ffn_intermediates: 2 };
    let one = predict(&config, &workload(1)).unwrap();
    let huge = predict(&config, &workload(usize::MAX / 1024)).unwrap();
    assert_eq!(huge.weights, one.weights);
    assert_eq!([huge.kv_cache, huge.recurrent_state, huge.activations, huge.total()], [usize::MAX; 4]);
    let two = predict(&config, &workload(2)).unwrap();
    assert_eq!([two.kv_cache, two.activations], [2 * one.kv_cache, 2 * one.activations]);
}

/// The memory model is public and `ModelConfig`'s fields are too: a config that skipped
/// `validate` (a window of 0, no self-decoder layers) or a workload past the cache gets an error
/// naming what is wrong, where it used to wrap round (`window - 1`) or divide by zero.
#[test]
fn a_prediction_refuses_invalid_configs_and_workloads() {
    let tiny = preset("tiny-yoco").unwrap();
    let workload = Workload { batch: 1, capacity: 64, prompt: 48, span: 16, elem: 4, retention_chunk_states: false, ffn_intermediates: 1 };
    assert!(predict(&tiny, &workload).is_ok());
    let no_window = ModelConfig { architecture: Architecture::Yoco { self_decoder: SelfDecoder::SlidingWindow { window: 0 } }, ..tiny.clone() };
    let no_layers = ModelConfig { n_layers: 0, ..tiny.clone() };
    for (config, field) in [(&no_window, "self_decoder.window"), (&no_layers, "n_layers")] {
        let error = predict(config, &workload).unwrap_err().to_string();
        assert!(error.contains(field), "{field}: {error}");
    }
    for (bad, field) in [(Workload { prompt: 65, ..workload }, "prompt"), (Workload { capacity: usize::MAX, ..workload }, "capacity")] {
        let error = predict(&tiny, &bad).unwrap_err().to_string();
        assert!(error.contains(field), "{field}: {error}");
    }
}
