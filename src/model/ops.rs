//! The operations the models are made of, on one of two backends:
//!
//! * [`Backend::Fast`]: the primitive crates' fast paths, on whatever device the tensors are
//!   (CPU f32, or CUDA in any storage dtype with cuBLAS for the projections);
//! * [`Backend::Reference`]: each operation through its crate's f64 reference, with f32 tensors
//!   between operations, on the CPU. Slow and simple: the oracle of the model tests.
//!
//! Both take and return [`Tensor`]s, so the model code above is written once, and both refuse
//! the same inputs with the same errors: the reference arms run the primitive crates' `check_*`
//! functions (every check of the fast path, without running it) before they compute.

use rayon::prelude::*;
use yoco_core::{DType, Device, Element, Error, MemoryCategory, Result, Tensor};
use yoco_gated_retention::{reference as gret_ref, ChunkSchedule, RetentionOptions};
use yoco_gqa::{AttentionOptions, Dims, KvCache, Mask};
use yoco_rope::Rope;

use super::profile::OpTimer;

/// Which implementation of every operation a model runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// The fast paths on the model's device.
    Fast,
    /// The f64 references (CPU only).
    Reference,
}

impl Backend {
    /// Errors unless this backend runs a model stored in `dtype` on `device`. The references run
    /// on the CPU, in f64 with f32 tensors between operations and in the caches, so they take f32
    /// storage only (bf16 or f16 weights load exactly into f32).
    pub fn check(self, dtype: DType, device: &Device) -> Result<()> {
        match self {
            Backend::Fast => Ok(()),
            Backend::Reference if !device.is_cpu() => Err(Error::invalid("--backend", "backend", "the reference backend runs on the CPU only")),
            Backend::Reference if dtype != DType::F32 => Err(Error::invalid(
                "--backend",
                "backend",
                format!("the reference backend keeps f32 activations and caches, so it runs f32 models only, not {dtype} (a bf16 or f16 weights file loads exactly into f32)"),
            )),
            Backend::Reference => Ok(()),
        }
    }
}

/// The operations, on one backend.
#[derive(Clone, Copy, Debug)]
pub struct Ops {
    pub backend: Backend,
}

fn act(values: &[f64], dims: Vec<usize>, device: &Device) -> Result<Tensor> {
    Tensor::from_f64(values, dims, DType::F32, device, MemoryCategory::Activations)
}

impl Ops {
    pub fn new(backend: Backend) -> Self {
        Ops { backend }
    }

    /// `x [.., in] · w [out, in]ᵀ → [.., out]`.
    pub fn linear(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        let _timer = OpTimer::start("linear", x.device());
        const OP: &str = "linear";
        if x.dims().is_empty() {
            return Err(Error::ShapeMismatch { op: OP, what: "x", expected: "[.., in]".into(), got: x.shape().to_string() });
        }
        let (k, n) = (x.shape().last_dim(), w.dims().first().copied().unwrap_or(0));
        w.expect_dims(OP, "w", &[n, k])?;
        w.expect_dtype(OP, "w", x.dtype())?;
        let mut dims = x.dims().to_vec();
        *dims.last_mut().expect("x has a last dim (checked)") = n;
        match (self.backend, x.device()) {
            (Backend::Reference, _) => act(&yoco_swiglu::reference::linear(&x.to_f64_vec()?, &w.to_f64_vec()?, k), dims, x.device()),
            (Backend::Fast, Device::Cpu(_)) => {
                let mut out = Tensor::zeros(dims, x.dtype(), x.device(), MemoryCategory::Activations)?;
                yoco_core::matmul::linear_into(x, w, &mut out)?;
                Ok(out)
            }
            #[cfg(feature = "cuda")]
            (Backend::Fast, Device::Cuda(d)) => super::cuda_ops::linear(d, x, w, x.shape().rows(), n, k, dims),
        }
    }

    /// RMSNorm over the last dim.
    pub fn rms_norm(&self, x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
        let _timer = OpTimer::start("rms_norm", x.device());
        match self.backend {
            Backend::Reference => {
                yoco_rmsnorm::check_rms_norm(x, None, w, eps as f32)?;
                act(&yoco_rmsnorm::reference::rms_norm(&x.to_f64_vec()?, &w.to_f64_vec()?, eps), x.dims().to_vec(), x.device())
            }
            Backend::Fast => yoco_rmsnorm::rms_norm(x, w, eps as f32),
        }
    }

    /// `h = x + r; y = RMSNorm(h)`: returns `(h, y)`.
    pub fn add_rms_norm(&self, x: &Tensor, r: &Tensor, w: &Tensor, eps: f64) -> Result<(Tensor, Tensor)> {
        let _timer = OpTimer::start("add_rms_norm", x.device());
        match self.backend {
            Backend::Reference => {
                yoco_rmsnorm::check_rms_norm(x, Some(r), w, eps as f32)?;
                let (h, y) = yoco_rmsnorm::reference::rms_norm_residual(&x.to_f64_vec()?, &r.to_f64_vec()?, &w.to_f64_vec()?, eps);
                Ok((act(&h, x.dims().to_vec(), x.device())?, act(&y, x.dims().to_vec(), x.device())?))
            }
            Backend::Fast => yoco_rmsnorm::rms_norm_residual(x, r, w, eps as f32),
        }
    }

    /// The SwiGLU FFN.
    pub fn ffn(&self, x: &Tensor, w1: &Tensor, w3: &Tensor, w2: &Tensor) -> Result<Tensor> {
        let _timer = OpTimer::start("ffn", x.device());
        let weights = yoco_swiglu::FfnWeights { w1, w3, w2 };
        match self.backend {
            Backend::Reference => {
                yoco_swiglu::check_ffn(x, &weights)?;
                let d = x.shape().last_dim();
                let y = yoco_swiglu::reference::ffn(&x.to_f64_vec()?, &w1.to_f64_vec()?, &w3.to_f64_vec()?, &w2.to_f64_vec()?, d);
                act(&y, x.dims().to_vec(), x.device())
            }
            Backend::Fast => yoco_swiglu::ffn(x, &weights),
        }
    }

    /// `silu(gate) ⊙ up`.
    pub fn silu_mul(&self, gate: &Tensor, up: &Tensor) -> Result<Tensor> {
        let _timer = OpTimer::start("silu_mul", gate.device());
        match self.backend {
            Backend::Reference => {
                yoco_swiglu::check_silu_mul(gate, up)?;
                act(&yoco_swiglu::reference::silu_mul(&gate.to_f64_vec()?, &up.to_f64_vec()?), gate.dims().to_vec(), gate.device())
            }
            Backend::Fast => yoco_swiglu::silu_mul(gate, up),
        }
    }

    /// RoPE of `x [B, N, H, D]` at positions `offset..offset + N`: `x` itself, rotated in place
    /// (the models' fresh projections; an output of its own was an allocation and a pass more).
    pub fn rope(&self, rope: &Rope, mut x: Tensor, offset: usize) -> Result<Tensor> {
        let device = x.device().clone();
        let _timer = OpTimer::start("rope", &device);
        match self.backend {
            Backend::Reference => {
                rope.check(&x, offset)?;
                let dims: [usize; 4] = x.dims().try_into().expect("x is [batch, seq, heads, head_dim] (checked)");
                act(&yoco_rope::reference::rope(&x.to_f64_vec()?, dims, rope.variant(), rope.inv_freq(), offset), x.dims().to_vec(), x.device())
            }
            Backend::Fast => {
                rope.apply_inplace(&mut x, offset)?;
                Ok(x)
            }
        }
    }

    /// `x0 = √d · E[token]` for `tokens [B, N]`: `[B, N, d]`.
    pub fn embed(&self, table: &Tensor, tokens: &[u32], batch: usize) -> Result<Tensor> {
        let _timer = OpTimer::start("embed", table.device());
        const OP: &str = "embed";
        let [rows, d] = *table.dims() else {
            return Err(Error::invalid(OP, "table", format!("{}: expected [vocab, d]", table.shape())));
        };
        if d == 0 {
            return Err(Error::invalid(OP, "table", format!("{}: expected rows of at least one element", table.shape())));
        }
        if batch == 0 || !tokens.len().is_multiple_of(batch) {
            return Err(Error::invalid(OP, "tokens", format!("{} tokens do not split into {batch} equal sequences", tokens.len())));
        }
        // The models check ids against their config, but this is public: an id past the table
        // would be an out-of-bounds read in the CUDA gather (and a panic on the host).
        if let Some(bad) = tokens.iter().find(|&&t| t as usize >= rows) {
            return Err(Error::invalid(OP, "tokens", format!("token id {bad} is outside the table's {rows} rows")));
        }
        let dims = vec![batch, tokens.len() / batch, d];
        let scale = (d as f64).sqrt();
        match (self.backend, table.device()) {
            #[cfg(feature = "cuda")]
            (Backend::Fast, Device::Cuda(dev)) => super::cuda_ops::embed(dev, table, tokens, dims, scale as f32),
            // On the host: read the rows in place (copying the whole table per step would cost a
            // vocabulary's worth of bytes for every decoded token), straight into the output.
            _ => {
                let mut out = Tensor::for_overwrite(dims, table.dtype(), table.device(), MemoryCategory::Activations)?;
                match table.dtype() {
                    DType::F32 => gather::<f32>(table, tokens, d, scale, &mut out)?,
                    DType::BF16 => gather::<yoco_core::half::bf16>(table, tokens, d, scale, &mut out)?,
                    DType::F16 => gather::<yoco_core::half::f16>(table, tokens, d, scale, &mut out)?,
                }
                Ok(out)
            }
        }
    }

    /// The gRet decay: `log γ = logsigmoid(z) / 16` elementwise, as f32 (gates stay in f32).
    pub fn log_decay(&self, z: &Tensor) -> Result<Tensor> {
        let _timer = OpTimer::start("log_decay", z.device());
        match (self.backend, z.device()) {
            #[cfg(feature = "cuda")]
            (Backend::Fast, Device::Cuda(dev)) => super::cuda_ops::log_decay(dev, z),
            _ => {
                let v: Vec<f64> = z.to_f64_vec()?.into_iter().map(log_sigmoid_over_16).collect();
                act(&v, z.dims().to_vec(), z.device())
            }
        }
    }

    /// Gated retention over a span, carrying `state` (replaced by the outgoing state).
    pub fn gated_retention(&self, q: &Tensor, k: &Tensor, v: &Tensor, log_decay: &Tensor, state: &mut Tensor, chunk: usize) -> Result<Tensor> {
        let _timer = OpTimer::start("gated_retention", q.device());
        if q.dims().len() != 4 {
            return Err(Error::ShapeMismatch { op: "gated_retention", what: "q", expected: "[batch, seq, heads, head_dim]".into(), got: q.shape().to_string() });
        }
        let one_token = q.dims()[1] == 1;
        match (self.backend, one_token) {
            // One token per sequence: the recurrent step, updating the state in place.
            (Backend::Fast, true) => {
                let options = RetentionOptions { check_gates: gates_checked_on(q.device()), ..RetentionOptions::default() };
                yoco_gated_retention::gated_retention_step(q, k, v, log_decay, state, &options)
            }
            (Backend::Fast, false) => {
                let options = prefill_retention_options(q.device(), chunk)?;
                let (o, s) = yoco_gated_retention::gated_retention(q, k, v, log_decay, Some(state), &options)?;
                *state = s;
                Ok(o)
            }
            (Backend::Reference, _) => {
                let options = RetentionOptions { chunk, ..RetentionOptions::default() };
                if one_token {
                    yoco_gated_retention::check_gated_retention_step(q, k, v, log_decay, state, &options)?;
                } else {
                    yoco_gated_retention::check_gated_retention(q, k, v, log_decay, Some(state), &options)?;
                }
                let [batch, seq, heads, dim]: [usize; 4] = q.dims().try_into().expect("q has 4 dims (checked)");
                let (qv, kv, vv, gv, sv) = (q.to_f64_vec()?, k.to_f64_vec()?, v.to_f64_vec()?, log_decay.to_f64_vec()?, state.to_f64_vec()?);
                let p = gret_ref::Problem { q: &qv, k: &kv, v: &vv, log_decay: &gv, state: Some(&sv), batch, seq, heads, dim, scale: 1.0 / (dim as f64).sqrt() };
                let (o, s) = gret_ref::recurrent(&p);
                let mut new_state = Tensor::from_f64(&s, state.dims().to_vec(), DType::F32, state.device(), MemoryCategory::RecurrentState)?;
                std::mem::swap(state, &mut new_state);
                act(&o, q.dims().to_vec(), q.device())
            }
        }
    }

    /// Attention of `q` over the first `cache.len()` positions of `cache`.
    pub fn attend(&self, cache: &KvCache, q: &Tensor, mask: Mask) -> Result<Tensor> {
        let _timer = OpTimer::start("attention", q.device());
        match self.backend {
            Backend::Fast => cache.attend(q, AttentionOptions { mask, scale: None }),
            Backend::Reference => {
                cache.check_attend(q, AttentionOptions { mask, scale: None })?;
                let [batch, q_len, heads, head_dim]: [usize; 4] = q.dims().try_into().expect("q has 4 dims (checked)");
                let kv_heads = cache.keys().dims()[2];
                let (cap, len) = (cache.capacity(), cache.len());
                // The first `len` positions of each sequence of the [B, capacity, Hkv, D] buffers.
                let take = |t: &Tensor| -> Result<Vec<f64>> {
                    let all = t.to_f64_vec()?;
                    let row = kv_heads * head_dim;
                    Ok((0..batch).flat_map(|b| all[b * cap * row..(b * cap + len) * row].to_vec()).collect())
                };
                let dims = Dims { batch, q_len, kv_len: len, heads, kv_heads, head_dim };
                let out = yoco_gqa::reference::attention(&q.to_f64_vec()?, &take(cache.keys())?, &take(cache.values())?, dims, mask, 1.0 / (head_dim as f64).sqrt());
                act(&out, q.dims().to_vec(), q.device())
            }
        }
    }
}

/// The options the fast backend runs a span of gated retention with on `device`, in chunks of
/// `chunk` tokens (the harness's calibration times the op with them too).
pub fn prefill_retention_options(device: &Device, chunk: usize) -> Result<RetentionOptions> {
    Ok(RetentionOptions { chunk, check_gates: gates_checked_on(device), schedule: ChunkSchedule::from_env()?, ..RetentionOptions::default() })
}

/// Whether the fast backend checks the gates' values (finite, ≤ 0) on `device`: on the CPU,
/// where that is a pass over `[batch, seq, heads]` floats beside the retention's heads·dim² work
/// per token. On CUDA it would be a copy to the host and a wait for the device at every call;
/// there the gates come from [`Ops::log_decay`] (logsigmoid / 16: ≤ 0), and a non-finite one
/// would make the logits non-finite, which sampling refuses.
fn gates_checked_on(device: &Device) -> bool {
    device.is_cpu()
}

/// Rows `tokens` of `table` `[vocab, d]` times `scale` into `out` `[.., d]`, in the table's dtype:
/// each product in f64, rounded once (as `Tensor::from_f64` would round it). Tokens in parallel
/// from a few blocks of them (a decode step's one stays on this thread).
fn gather<T: Element>(table: &Tensor, tokens: &[u32], d: usize, scale: f64, out: &mut Tensor) -> Result<()> {
    let rows = table.as_slice::<T>()?;
    out.as_mut_slice::<T>()?.par_chunks_mut(d).zip(tokens.par_iter()).with_min_len(64).for_each(|(to, &id)| {
        for (to, v) in to.iter_mut().zip(&rows[id as usize * d..][..d]) {
            *to = T::from_f64(v.to_f64() * scale);
        }
    });
    Ok(())
}

/// `logsigmoid(z) / 16`, computed without overflow: `min(z, 0) − log1p(e^−|z|)`.
pub fn log_sigmoid_over_16(z: f64) -> f64 {
    (z.min(0.0) - (-z.abs()).exp().ln_1p()) / 16.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use yoco_core::rng::Rng;

    /// The host gather against the f64 products rounded once, bit for bit, in every dtype: two
    /// sequences of 150 tokens (past the parallel split), ids repeated and the table's last row
    /// among them; then the typed errors.
    #[test]
    fn embed_gathers_scaled_rows_rounded_once() {
        let mut rng = Rng::new(17);
        let (vocab, d, batch, len) = (37, 24, 2, 150);
        let values: Vec<f64> = (0..vocab * d).map(|_| rng.normal()).collect();
        let mut tokens: Vec<u32> = (0..batch * len).map(|_| (rng.uniform_in(0.0, vocab as f64) as u32).min(vocab as u32 - 1)).collect();
        tokens[7] = vocab as u32 - 1;
        let device = Device::cpu();
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            let table = Tensor::from_f64(&values, vec![vocab, d], dtype, &device, MemoryCategory::Weights).unwrap();
            let stored = table.to_f64_vec().unwrap();
            let want: Vec<f64> = tokens.iter().flat_map(|&id| stored[id as usize * d..][..d].iter().map(|v| v * (d as f64).sqrt())).collect();
            let want = Tensor::from_f64(&want, vec![batch, len, d], dtype, &device, MemoryCategory::Activations).unwrap().to_f64_vec().unwrap();
            for backend in [Backend::Fast, Backend::Reference] {
                let got = Ops::new(backend).embed(&table, &tokens, batch).unwrap();
                assert_eq!(got.dims(), &[batch, len, d]);
                let got = got.to_f64_vec().unwrap();
                let first_wrong = got.iter().zip(&want).position(|(g, w)| g.to_bits() != w.to_bits());
                assert_eq!(first_wrong, None, "{dtype:?} {backend:?}: element {first_wrong:?}");
            }
        }
        let table = Tensor::from_f64(&values, vec![vocab, d], DType::F32, &device, MemoryCategory::Weights).unwrap();
        let ops = Ops::new(Backend::Fast);
        let err = |r: Result<Tensor>| r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err(ops.embed(&table, &[0, vocab as u32], 1)).contains("outside the table's 37 rows"));
        assert!(err(ops.embed(&table, &[0, 1, 2], 2)).contains("do not split into 2"));
        let empty_rows = Tensor::zeros([vocab, 0], DType::F32, &device, MemoryCategory::Weights).unwrap();
        assert!(err(ops.embed(&empty_rows, &[0], 1)).contains("at least one element"));
    }
}
