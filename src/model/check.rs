//! The models on a device against the reference models on the CPU: the same weights (rounded to
//! the device's storage dtype), the same prompt, logits compared at prefill and at each decode
//! step. Shared by `yoco check` (which is how the CUDA model is validated on a GPU machine).

use yoco_core::rng::Rng;
use yoco_core::testing::{rel_l2, Outcome};
use yoco_core::{DType, Device, Result};

use super::config::{preset, Architecture, ModelConfig, SelfDecoder};
use super::{AnyModel, Backend, Ops, Weights};

/// The bound on the logits' relative L2 error: f32 paths, and bf16/f16 paths after four layers.
const F32_BOUND: f64 = 1e-4;
const HALF_BOUND: f64 = 5e-2;

/// The model-sized configs checked: gated-retention YOCO, sliding-window YOCO, the Transformer.
pub fn configs() -> Vec<ModelConfig> {
    let mut c = preset("tiny-yoco").expect("the preset exists");
    c.name = "check-yoco".into();
    c.d_model = 128;
    c.ffn_dim = 384;
    c.n_heads = 2;
    c.n_kv_heads = 1;
    c.vocab_size = 211;
    c.architecture = Architecture::Yoco { self_decoder: SelfDecoder::GatedRetention { heads: 2, head_dim: 64 } };
    let mut swa = c.clone();
    swa.name = "check-swa-yoco".into();
    swa.architecture = Architecture::Yoco { self_decoder: SelfDecoder::SlidingWindow { window: 40 } };
    vec![c.clone(), swa, c.transformer_twin()]
}

/// Prefill of `prompt` tokens then `steps` decode steps, batch 2, on `device` in `dtype` against
/// the reference on the CPU (in f64, from the same weights rounded to `dtype`).
pub fn case(device: &Device, dtype: DType, config: &ModelConfig, prompt: usize, steps: usize) -> Result<Vec<Outcome>> {
    let bound = if dtype == DType::F32 { F32_BOUND } else { HALF_BOUND };
    let cpu = Device::cpu();
    let weights = Weights::init(config, 9, dtype, device)?;
    let reference_weights = weights.converted(DType::F32, &cpu)?;
    let fast = AnyModel::build(config, weights, Ops::new(Backend::Fast), device)?;
    let reference = AnyModel::build(config, reference_weights, Ops::new(Backend::Reference), &cpu)?;
    let batch = 2;
    let mut rng = Rng::new(prompt as u64);
    let tokens: Vec<u32> = (0..batch * prompt).map(|_| rng.below(config.vocab_size) as u32).collect();
    let (mut cf, mut cr) = (fast.new_cache(batch, prompt + steps)?, reference.new_cache(batch, prompt + steps)?);
    let label = |what: String| format!("model {} {device} {dtype} prompt={prompt} {what}", config.name);
    let mut outcomes = Vec::new();
    let mut f = fast.prefill(&mut cf, &tokens, 48)?;
    let mut r = reference.prefill(&mut cr, &tokens, 48)?;
    for step in 0..=steps {
        let error = rel_l2(&f.to_f64_vec()?, &r.to_f64_vec()?);
        outcomes.push(Outcome { label: label(if step == 0 { "prefill logits".into() } else { format!("decode step {step} logits") }), error, plain_error: None, bound });
        if step < steps {
            let next: Vec<u32> = (0..batch).map(|_| rng.below(config.vocab_size) as u32).collect();
            f = fast.decode(&mut cf, &next)?;
            r = reference.decode(&mut cr, &next)?;
        }
    }
    Ok(outcomes)
}

/// Greedy sampling on `device` against the same choice made on the host from the same logits
/// (as `device` stores them): rows of several widths, with planted ties for the top value (the
/// lowest id must win), in every dtype. Its error is the fraction of rows that disagree.
pub fn greedy_case(device: &Device, dtype: DType, width: usize) -> Result<Outcome> {
    let rows = 5;
    let mut rng = Rng::new(width as u64);
    let mut values: Vec<f64> = (0..rows * width).map(|_| rng.normal()).collect();
    for (r, row) in values.chunks_mut(width).enumerate() {
        // Row r: its maximum planted at r + 1 places (a tie for all but row 0).
        for k in 0..=r {
            row[(k * 7919 + r * 31) % width] = 10.0;
        }
    }
    let logits = yoco_core::Tensor::from_f64(&values, vec![rows, 1, width], dtype, device, yoco_core::MemoryCategory::Activations)?;
    let stored = logits.to_f64_vec()?;
    let want: Vec<u32> = stored.chunks(width).map(|row| row.iter().enumerate().fold((0, f64::NEG_INFINITY), |best, (i, &v)| if v > best.1 { (i, v) } else { best }).0 as u32).collect();
    let got = super::Sampler::Greedy.sample(&logits)?;
    let wrong = got.iter().zip(&want).filter(|(g, w)| g != w).count();
    Ok(Outcome { label: format!("greedy sampling {device} {dtype} rows={rows} width={width} (planted ties)"), error: wrong as f64 / rows as f64, plain_error: None, bound: 0.0 })
}

/// The dtypes the models are checked in on `device`: f32 and bf16 on the CPU, bf16 on a GPU (the
/// dtype the comparison runs in).
pub fn dtypes(device: &Device) -> &'static [DType] {
    if device.is_cpu() {
        &[DType::F32, DType::BF16]
    } else {
        &[DType::BF16]
    }
}

/// Every config in every dtype of [`dtypes`], a prompt that spans several prefill spans and
/// crosses the SWA window; and, on a GPU, greedy sampling on the device against the host's choice.
pub fn sweep(device: &Device) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    for &dtype in dtypes(device) {
        for config in configs() {
            outcomes.extend(case(device, dtype, &config, 100, 3)?);
        }
    }
    if !device.is_cpu() {
        for dtype in DType::ALL {
            for width in [1, 255, 32_000, 100_352] {
                outcomes.push(greedy_case(device, dtype, width)?);
            }
        }
    }
    Ok(outcomes)
}
