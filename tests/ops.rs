//! The two backends of `Ops` refuse the same inputs with the same errors: the reference backend
//! is public, and before it ran the fast path's checks it panicked on a ragged input (or read
//! past a row) and took gates that grow the state.

use yoco::model::{Backend, Ops};
use yoco_core::rng::Rng;
use yoco_core::{DType, Device, MemoryCategory, Result, Tensor};
use yoco_gqa::{KvCache, Mask};
use yoco_rope::{Rope, RopeVariant};

const BACKENDS: [Backend; 2] = [Backend::Fast, Backend::Reference];

/// An f32 CPU tensor of standard normal values.
fn normal(rng: &mut Rng, dims: &[usize]) -> Tensor {
    let values = rng.normal_vec(dims.iter().product());
    Tensor::from_f64(&values, dims.to_vec(), DType::F32, &Device::cpu(), MemoryCategory::Activations).unwrap()
}

/// A tensor of `dims` holding `value` everywhere.
fn filled(dims: &[usize], value: f64) -> Tensor {
    Tensor::from_f64(&vec![value; dims.iter().product()], dims.to_vec(), DType::F32, &Device::cpu(), MemoryCategory::Activations).unwrap()
}

/// A cache of `len` random positions of `[batch, capacity, kv_heads, head_dim]`.
fn cache(rng: &mut Rng, [batch, capacity, kv_heads, head_dim]: [usize; 4], len: usize) -> KvCache {
    let mut cache = KvCache::new(batch, capacity, kv_heads, head_dim, DType::F32, &Device::cpu()).unwrap();
    if len > 0 {
        let dims = [batch, len, kv_heads, head_dim];
        cache.append(&normal(rng, &dims), &normal(rng, &dims)).unwrap();
    }
    cache
}

/// Runs `call` on both backends: both must refuse it, with the same message.
fn both_refuse(name: &str, call: impl Fn(&Ops) -> Result<()>) {
    let [fast, reference] = BACKENDS.map(|backend| call(&Ops::new(backend)));
    let (Err(fast), Err(reference)) = (&fast, &reference) else {
        panic!("{name}: expected both backends to refuse, got fast {fast:?}, reference {reference:?}");
    };
    assert_eq!(fast.to_string(), reference.to_string(), "{name}: the backends refuse with different errors");
}

/// Runs `call` on both backends: both must accept it (the refusals above are of the bad input,
/// not of every input).
fn both_accept(name: &str, call: impl Fn(&Ops) -> Result<()>) {
    for backend in BACKENDS {
        if let Err(error) = call(&Ops::new(backend)) {
            panic!("{name} on {backend:?}: expected the call to be accepted, got {error}");
        }
    }
}

#[test]
fn projections_norms_and_ffn_refuse_mismatched_shapes_on_both_backends() {
    let rng = &mut Rng::new(71);
    let (x, x7) = (normal(rng, &[2, 3, 8]), normal(rng, &[2, 3, 7]));
    let (w8, w7) = (normal(rng, &[8]), normal(rng, &[7]));
    let (w1, w3, w2) = (normal(rng, &[16, 8]), normal(rng, &[16, 8]), normal(rng, &[8, 16]));
    both_accept("linear", |ops| ops.linear(&x, &w1).map(drop));
    both_refuse("linear, w of another depth", |ops| ops.linear(&x, &normal(&mut Rng::new(1), &[16, 7])).map(drop));
    both_accept("rms_norm", |ops| ops.rms_norm(&x, &w8, 1e-5).map(drop));
    both_refuse("rms_norm, weight of another width", |ops| ops.rms_norm(&x, &w7, 1e-5).map(drop));
    both_refuse("rms_norm, eps 0", |ops| ops.rms_norm(&x, &w8, 0.0).map(drop));
    both_accept("add_rms_norm", |ops| ops.add_rms_norm(&x, &x, &w8, 1e-5).map(drop));
    both_refuse("add_rms_norm, residual of another width", |ops| ops.add_rms_norm(&x, &x7, &w8, 1e-5).map(drop));
    both_accept("ffn", |ops| ops.ffn(&x, &w1, &w3, &w2).map(drop));
    both_refuse("ffn, w2 transposed", |ops| ops.ffn(&x, &w1, &w3, &normal(&mut Rng::new(2), &[16, 8])).map(drop));
    both_refuse("ffn, x of another width", |ops| ops.ffn(&x7, &w1, &w3, &w2).map(drop));
    both_accept("silu_mul", |ops| ops.silu_mul(&x, &x).map(drop));
    both_refuse("silu_mul, up of another shape", |ops| ops.silu_mul(&x, &x7).map(drop));
}

#[test]
fn rope_refuses_another_head_dim_and_positions_past_its_range_on_both_backends() {
    let rope = Rope::new(RopeVariant::Yoco, 64, 10_000.0, &Device::cpu()).unwrap();
    let x = || normal(&mut Rng::new(2), &[1, 3, 2, 64]);
    both_accept("rope", |ops| ops.rope(&rope, x(), 5).map(drop));
    both_refuse("rope, head dim 32", |ops| ops.rope(&rope, normal(&mut Rng::new(3), &[1, 3, 2, 32]), 0).map(drop));
    both_refuse("rope, 3 dims", |ops| ops.rope(&rope, normal(&mut Rng::new(4), &[3, 2, 64]), 0).map(drop));
    both_refuse("rope, positions past the range", |ops| ops.rope(&rope, x(), usize::MAX - 1).map(drop));
}

#[test]
fn gated_retention_refuses_mismatched_shapes_and_growing_gates_on_both_backends() {
    let rng = &mut Rng::new(73);
    for seq in [1, 5] {
        let (q, k, v) = (normal(rng, &[2, seq, 2, 64]), normal(rng, &[2, seq, 2, 64]), normal(rng, &[2, seq, 2, 64]));
        let decaying = filled(&[2, seq, 2], -0.1);
        let state = normal(rng, &[2, 2, 64, 64]);
        let run = |ops: &Ops, k: &Tensor, log_decay: &Tensor, state: &Tensor, chunk: usize| {
            let mut state = state.to_device(&Device::cpu())?;
            ops.gated_retention(&q, k, &v, log_decay, &mut state, chunk).map(drop)
        };
        both_accept(&format!("gated_retention, {seq} tokens"), |ops| run(ops, &k, &decaying, &state, 4));
        both_refuse(&format!("gated_retention, {seq} tokens, k of another head dim"), |ops| run(ops, &normal(&mut Rng::new(5), &[2, seq, 2, 128]), &decaying, &state, 4));
        both_refuse(&format!("gated_retention, {seq} tokens, gates per sequence only"), |ops| run(ops, &k, &filled(&[2, seq], -0.1), &state, 4));
        both_refuse(&format!("gated_retention, {seq} tokens, state of one head"), |ops| run(ops, &k, &decaying, &normal(&mut Rng::new(6), &[2, 1, 64, 64]), 4));
        // A positive log-decay is a gate above 1: the state would grow without bound.
        both_refuse(&format!("gated_retention, {seq} tokens, a positive log-decay"), |ops| run(ops, &k, &filled(&[2, seq, 2], 0.5), &state, 4));
        both_refuse(&format!("gated_retention, {seq} tokens, a NaN log-decay"), |ops| run(ops, &k, &filled(&[2, seq, 2], f64::NAN), &state, 4));
    }
    let (q, kv) = (normal(rng, &[1, 5, 2, 64]), normal(rng, &[1, 5, 2, 64]));
    both_refuse("gated_retention, chunk 0", |ops| ops.gated_retention(&q, &kv, &kv, &filled(&[1, 5, 2], -0.1), &mut filled(&[1, 2, 64, 64], 0.0), 0).map(drop));
}

#[test]
fn attention_refuses_what_the_cache_cannot_answer_on_both_backends() {
    let rng = &mut Rng::new(74);
    let held = cache(rng, [2, 8, 1, 64], 6);
    both_accept("attend", |ops| ops.attend(&held, &normal(&mut Rng::new(7), &[2, 3, 2, 64]), Mask::Causal).map(drop));
    both_refuse("attend, q of another head dim", |ops| ops.attend(&held, &normal(&mut Rng::new(8), &[2, 3, 2, 128]), Mask::Causal).map(drop));
    both_refuse("attend, q of another batch", |ops| ops.attend(&held, &normal(&mut Rng::new(9), &[1, 3, 2, 64]), Mask::Causal).map(drop));
    both_refuse("attend, more causal queries than keys", |ops| ops.attend(&held, &normal(&mut Rng::new(10), &[2, 7, 2, 64]), Mask::Causal).map(drop));
    both_refuse("attend, a window of 0", |ops| ops.attend(&held, &normal(&mut Rng::new(11), &[2, 3, 2, 64]), Mask::Window(0)).map(drop));
    let empty = cache(rng, [2, 8, 1, 64], 0);
    both_refuse("attend, an empty cache", |ops| ops.attend(&empty, &normal(&mut Rng::new(12), &[2, 1, 2, 64]), Mask::Causal).map(drop));
    let grouped = cache(rng, [1, 8, 2, 64], 4);
    both_refuse("attend, 3 query heads over 2 K/V heads", |ops| ops.attend(&grouped, &normal(&mut Rng::new(13), &[1, 1, 3, 64]), Mask::Causal).map(drop));
}
