//! Attention against the f64 reference on every device this build and machine have (the sweeps
//! in `check`), decode against prefill, the growing cache against a full forward, the
//! accounting of the cache, and every kind of bad input.

use yoco_core::testing::{assert_all_passed, check_rel_l2, test_devices, F32_REL_L2_BOUND};
use yoco_core::{DType, Device, Error, MemoryCategory, Tensor};
use yoco_gqa::check::{self, case_of, last_rows, Inputs};
use yoco_gqa::{attention, attention_prefix_into, AttentionOptions, KvCache, Mask};

fn zeros(dims: &[usize], dtype: DType, device: &Device) -> Tensor {
    Tensor::zeros(dims.to_vec(), dtype, device, MemoryCategory::Activations).unwrap()
}

#[test]
fn attention_matches_reference() {
    for device in test_devices("attention_matches_reference") {
        assert_all_passed(&check::sweep(&device, check::SHAPES).unwrap());
    }
}

#[test]
fn rising_scores_match_reference() {
    for device in test_devices("rising_scores_match_reference") {
        assert_all_passed(&check::rising_scores(&device).unwrap());
    }
}

#[test]
fn sliding_windows_match_reference_at_every_edge() {
    for device in test_devices("sliding_windows_match_reference_at_every_edge") {
        assert_all_passed(&check::sweep(&device, &check::window_cases()).unwrap());
    }
}

/// One query over the cache equals the last row of the full prefill, for every mask: on the CPU
/// to f32 accuracy (rows path vs tiles path); on CUDA (decode kernel vs prefill kernel) both are
/// judged against the reference row.
#[test]
fn decode_equals_last_row_of_prefill() {
    for device in test_devices("decode_equals_last_row_of_prefill") {
        let dtype = check::dtypes(&device)[0];
        for mask in [Mask::Causal, Mask::Window(50), Mask::Window(1)] {
            let c = case_of(2, 131, 131, 6, 2, 128, mask);
            let dims = c.dims;
            let label = check::label("decode vs prefill", &device, dtype, &c);
            let x = Inputs::random(&label, dims, dtype, &device).unwrap();
            let full = attention(&x.q, &x.k, &x.v, AttentionOptions { mask, scale: None }).unwrap();
            let q_last = check::slice_positions(&x.q, dims.q_len - 1, 1).unwrap();
            let decode = attention(&q_last, &x.k, &x.v, AttentionOptions { mask, scale: None }).unwrap();
            let (decode, prefill_last) = (decode.to_f64_vec().unwrap(), last_rows(&full.to_f64_vec().unwrap(), dims, 1));
            if dtype == DType::F32 {
                check_rel_l2(&label, &decode, &prefill_last, F32_REL_L2_BOUND).unwrap();
            }
            let (want, plain) = x.expected(dims, mask, dtype);
            let (want, plain) = (last_rows(&want, dims, 1), last_rows(&plain, dims, 1));
            let outcomes = [
                yoco_core::testing::judge(format!("{label} decode"), dtype, &decode, &plain, &want),
                yoco_core::testing::judge(format!("{label} prefill"), dtype, &prefill_last, &plain, &want),
            ];
            assert_all_passed(&outcomes);
        }
    }
}

#[test]
fn cached_prefill_then_decode_equals_full_forward() {
    for device in test_devices("cached_prefill_then_decode_equals_full_forward") {
        for &dtype in check::dtypes(&device) {
            let c = case_of(2, 0, 80, 4, 1, 64, Mask::Causal);
            assert_all_passed(&check::kv_cache_case(&device, dtype, &c, 70).unwrap());
        }
    }
}

#[test]
fn an_explicit_scale_is_used() {
    let cpu = Device::cpu();
    let c = case_of(1, 9, 9, 2, 2, 64, Mask::Causal);
    let x = Inputs::random("explicit scale", c.dims, DType::F32, &cpu).unwrap();
    let out = attention(&x.q, &x.k, &x.v, AttentionOptions::causal().with_scale(0.3)).unwrap();
    let want = yoco_gqa::reference::attention(&x.q64, &x.k64, &x.v64, c.dims, Mask::Causal, 0.3f32 as f64);
    check_rel_l2("scale 0.3", &out.to_f64_vec().unwrap(), &want, F32_REL_L2_BOUND).unwrap();
}

/// Scores past f32's range still give the reference's answer on every device, and a NaN key
/// reaches exactly the rows that see it (`check::overflowing_scores`, which `yoco check` runs
/// too).
#[test]
fn scores_past_f32_range_match_the_reference() {
    for device in test_devices("scores_past_f32_range_match_the_reference") {
        assert_all_passed(&check::overflowing_scores(&device).unwrap());
    }
}

/// A key whose score lies far below the maximum (−1.25e29 once scaled) weighs exactly nothing,
/// however large its value: each CPU path (decode, the few-query rows, the tiles) once gave it
/// the weight of exp's clamp, 1.6e-38, which a value of 3e38 turned into up to 4.9 of an output
/// whose exact value is 0.
#[test]
fn a_key_far_below_the_maximum_weighs_nothing() {
    let (device, d) = (Device::cpu(), 64);
    for q_len in [1, 3, 8, 200] {
        let kv_len = q_len.max(2);
        let mut q = vec![0.0; q_len * d];
        q.iter_mut().step_by(d).for_each(|x| *x = 1e15);
        let mut k = vec![0.0; kv_len * d];
        k[0] = -1e15;
        let mut v = vec![0.0; kv_len * d];
        v[..d].fill(3e38);
        let tensor = |values: &[f64], n: usize| Tensor::from_f64(values, [1, n, 1, d], DType::F32, &device, MemoryCategory::Activations).unwrap();
        let out = attention(&tensor(&q, q_len), &tensor(&k, kv_len), &tensor(&v, kv_len), AttentionOptions { mask: Mask::None, scale: None }).unwrap();
        let out = out.to_f64_vec().unwrap();
        assert!(out.iter().all(|&x| x == 0.0), "{q_len} queries: {:?}", &out[..4]);
    }
}

#[test]
fn the_cache_is_charged_as_kv_cache() {
    let cpu = Device::cpu();
    let before = cpu.memory().current(MemoryCategory::KvCache);
    let cache = KvCache::new(2, 16, 2, 64, DType::BF16, &cpu).unwrap();
    assert_eq!(cpu.memory().current(MemoryCategory::KvCache) - before, 2 * (2 * 16 * 2 * 64 * 2));
    assert_eq!(cache.size_in_bytes(), 2 * (2 * 16 * 2 * 64 * 2));
    drop(cache);
    assert_eq!(cpu.memory().current(MemoryCategory::KvCache), before);
}

/// Positions past kv_len hold NaN: attention over a prefix must not read them.
#[test]
fn attention_over_a_prefix_reads_only_the_prefix() {
    for device in test_devices("attention_over_a_prefix_reads_only_the_prefix") {
        let dtype = check::dtypes(&device)[0];
        let c = case_of(2, 3, 70, 4, 2, 64, Mask::Causal);
        let x = Inputs::random("prefix", c.dims, dtype, &device).unwrap();
        let (cap, row) = (100, 2 * 64);
        let mut k = check::poisoned(&[2, cap, 2, 64], dtype, &device).unwrap();
        let mut v = check::poisoned(&[2, cap, 2, 64], dtype, &device).unwrap();
        for b in 0..2 {
            k.copy_range_from(b * cap * row, &x.k, b * 70 * row, 70 * row).unwrap();
            v.copy_range_from(b * cap * row, &x.v, b * 70 * row, 70 * row).unwrap();
        }
        let mut out = check::poisoned(&[2, 3, 4, 64], dtype, &device).unwrap();
        attention_prefix_into(&x.q, &k, &v, 70, AttentionOptions::causal(), &mut out).unwrap();
        let (want, plain) = x.expected(c.dims, c.mask, dtype);
        let o = yoco_core::testing::judge(format!("prefix {device}"), dtype, &out.to_f64_vec().unwrap(), &plain, &want);
        assert!(o.passed(), "{}", o.line());
    }
}

#[test]
fn bad_input_is_a_typed_error() {
    let cpu = Device::cpu();
    let t = |dims: &[usize], dtype: DType| zeros(dims, dtype, &cpu);
    let q = t(&[1, 4, 6, 64], DType::F32);
    let k = t(&[1, 4, 4, 64], DType::F32);
    let k2 = t(&[1, 4, 2, 64], DType::F32);
    // H not a multiple of H_kv.
    assert!(matches!(attention(&q, &k, &k, AttentionOptions::causal()), Err(Error::InvalidArgument { what: "kv_heads", .. })));
    // Unsupported head dim: the message lists the supported ones.
    let q96 = t(&[1, 4, 2, 96], DType::F32);
    let k96 = t(&[1, 4, 2, 96], DType::F32);
    let err = attention(&q96, &k96, &k96, AttentionOptions::causal()).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }) && err.to_string().contains("[64, 128, 256]"), "{err}");
    // dtype mismatch.
    let k_bf16 = t(&[1, 4, 2, 64], DType::BF16);
    assert!(matches!(attention(&q, &k_bf16, &k_bf16, AttentionOptions::causal()), Err(Error::DTypeMismatch { what: "k", .. })));
    assert!(matches!(attention(&q, &k2, &k_bf16, AttentionOptions::causal()), Err(Error::ShapeMismatch { .. }) | Err(Error::DTypeMismatch { what: "v", .. })));
    // Window of 0.
    assert!(matches!(attention(&q, &k2, &k2, AttentionOptions::window(0)), Err(Error::InvalidArgument { what: "window", .. })));
    // Causal with more queries than keys.
    let q_long = t(&[1, 5, 6, 64], DType::F32);
    assert!(matches!(attention(&q_long, &k2, &k2, AttentionOptions::causal()), Err(Error::InvalidArgument { what: "q", .. })));
    // Shapes: batch, head dim, rank.
    assert!(matches!(attention(&q, &t(&[2, 4, 2, 64], DType::F32), &k2, AttentionOptions::causal()), Err(Error::ShapeMismatch { what: "k", .. })));
    assert!(matches!(attention(&t(&[4, 6, 64], DType::F32), &k2, &k2, AttentionOptions::causal()), Err(Error::ShapeMismatch { what: "q", .. })));
    // Bad scale, bad kv_len, wrong output.
    assert!(matches!(attention(&q, &k2, &k2, AttentionOptions::causal().with_scale(f32::NAN)), Err(Error::InvalidArgument { what: "scale", .. })));
    let mut out = t(&[1, 4, 6, 64], DType::F32);
    assert!(matches!(attention_prefix_into(&q, &k2, &k2, 5, AttentionOptions::causal(), &mut out), Err(Error::InvalidArgument { what: "kv_len", .. })));
    let mut out_bad = t(&[1, 4, 6, 128], DType::F32);
    assert!(matches!(attention_prefix_into(&q, &k2, &k2, 4, AttentionOptions::causal(), &mut out_bad), Err(Error::ShapeMismatch { what: "out", .. })));
    // A cache that would overflow refuses, and keeps what it had.
    let mut cache = KvCache::new(1, 6, 2, 64, DType::F32, &cpu).unwrap();
    cache.append(&k2, &k2).unwrap();
    assert!(matches!(cache.append(&k2, &k2), Err(Error::InvalidArgument { what: "k", .. })));
    assert_eq!(cache.len(), 4);
    assert!(matches!(cache.append(&t(&[1, 1, 3, 64], DType::F32), &t(&[1, 1, 3, 64], DType::F32)), Err(Error::ShapeMismatch { what: "k", .. })));
    assert!(matches!(KvCache::new(1, 0, 2, 64, DType::F32, &cpu), Err(Error::InvalidArgument { .. })));
    // A step that attention refuses (3 query heads over 2 K/V heads) appends nothing.
    let k1 = t(&[1, 1, 2, 64], DType::F32);
    assert!(matches!(cache.append_and_attend(&t(&[1, 1, 3, 64], DType::F32), &k1, &k1, AttentionOptions::causal()), Err(Error::InvalidArgument { what: "kv_heads", .. })));
    assert_eq!(cache.len(), 4);
    // Fewer keys than queries: the first queries see no key under a causal mask.
    assert_eq!(Mask::Causal.visible_pairs(5, 2), 1 + 2);
    if let Some(gpu) = yoco_core::testing::cuda_device_or_skip("bad_input_is_a_typed_error") {
        let k_gpu = k2.to_device(&gpu).unwrap();
        assert!(matches!(attention(&q, &k_gpu, &k_gpu, AttentionOptions::causal()), Err(Error::DeviceMismatch { what: "k", .. })));
        // The CUDA kernels are bf16/f16 on tensor cores: f32 is refused, not silently converted.
        let q_gpu = q.to_device(&gpu).unwrap();
        let k2_gpu = t(&[1, 4, 3, 64], DType::F32).to_device(&gpu).unwrap();
        assert!(matches!(attention(&q_gpu, &k2_gpu, &k2_gpu, AttentionOptions::causal()), Err(Error::Unsupported { .. })));
    }
}

/// The sampled-row check that `yoco check --large` runs on long sequences.
#[test]
fn sampled_rows_check_agrees() {
    let cpu = Device::cpu();
    let cases = [case_of(2, 300, 300, 2, 1, 64, Mask::Causal), case_of(1, 200, 260, 4, 2, 128, Mask::Window(70))];
    assert_all_passed(&check::sampled_sweep(&cpu, &cases).unwrap());
    assert_eq!(check::sample_rows(5, "x"), vec![0, 1, 2, 3, 4]);
}
