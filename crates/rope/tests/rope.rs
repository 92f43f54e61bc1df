//! RoPE against the f64 reference on every device, both variants, every dtype, awkward shapes and
//! offsets deep into a long context (the sweep in `check`); what a rotation must preserve; bad input.

use yoco_core::testing::{assert_all_passed, case_rng, test_devices};
use yoco_core::{DType, Device, Error, MemoryCategory, Tensor};
use yoco_rope::{check, inv_freq, Rope, RopeVariant, DEFAULT_THETA, MAX_HEAD_DIM, MAX_POSITION};

fn tensor(values: &[f64], dims: &[usize], device: &Device) -> Tensor {
    Tensor::from_f64(values, dims.to_vec(), DType::F32, device, MemoryCategory::Activations).unwrap()
}

#[test]
fn both_variants_match_reference() {
    for device in test_devices("both_variants_match_reference") {
        assert_all_passed(&check::sweep(&device, check::SHAPES).unwrap());
    }
}

#[test]
fn frequency_schedules_are_the_spec_ones() {
    let yoco = inv_freq(RopeVariant::Yoco, 8, DEFAULT_THETA).unwrap();
    // Exponents linspace(0, 1, 4): θ^0, θ^-1/3, θ^-2/3, θ^-1.
    let want = [1.0, 1e4f64.powf(-1.0 / 3.0), 1e4f64.powf(-2.0 / 3.0), 1e-4];
    for (g, w) in yoco.iter().zip(want) {
        assert!((*g as f64 - w).abs() <= 1e-7 * w, "{g} vs {w}");
    }
    let llama = inv_freq(RopeVariant::Llama, 8, DEFAULT_THETA).unwrap();
    let want = [1.0, 1e4f64.powf(-0.25), 1e4f64.powf(-0.5), 1e4f64.powf(-0.75)];
    for (g, w) in llama.iter().zip(want) {
        assert!((*g as f64 - w).abs() <= 1e-7 * w, "{g} vs {w}");
    }
}

/// Scores of rotated q and k depend on positions only through their difference, and position 0
/// is the identity: the two properties attention relies on.
#[test]
fn rotation_is_relative_and_zero_is_identity() {
    let cpu = Device::cpu();
    for variant in RopeVariant::ALL {
        let rope = Rope::new(variant, 64, DEFAULT_THETA, &cpu).unwrap();
        let mut rng = case_rng(variant.name());
        let q = tensor(&rng.normal_vec(64), &[1, 1, 1, 64], &cpu);
        let k = tensor(&rng.normal_vec(64), &[1, 1, 1, 64], &cpu);
        assert_eq!(rope.apply(&q, 0).unwrap().to_f64_vec().unwrap(), q.to_f64_vec().unwrap());
        let dot = |m: usize, n: usize| -> f64 {
            let a = rope.apply(&q, m).unwrap().to_f64_vec().unwrap();
            let b = rope.apply(&k, n).unwrap().to_f64_vec().unwrap();
            a.iter().zip(&b).map(|(x, y)| x * y).sum()
        };
        let (d1, d2) = (dot(10, 3), dot(107, 100));
        assert!((d1 - d2).abs() < 1e-4 * d1.abs().max(1.0), "{variant:?}: {d1} vs {d2}");
    }
}

#[test]
fn bad_input_is_a_typed_error() {
    let cpu = Device::cpu();
    assert!(matches!(Rope::new(RopeVariant::Llama, 63, DEFAULT_THETA, &cpu), Err(Error::InvalidArgument { what: "head_dim", .. })));
    assert!(matches!(Rope::new(RopeVariant::Yoco, 2, DEFAULT_THETA, &cpu), Err(Error::InvalidArgument { what: "head_dim", .. })));
    // A head past any table's size (it had panicked on a capacity overflow).
    for huge in [MAX_HEAD_DIM + 2, usize::MAX - 1] {
        assert!(matches!(Rope::new(RopeVariant::Llama, huge, DEFAULT_THETA, &cpu), Err(Error::InvalidArgument { what: "head_dim", .. })), "{huge}");
    }
    assert!(matches!(Rope::new(RopeVariant::Yoco, 64, 0.5, &cpu), Err(Error::InvalidArgument { what: "theta", .. })));
    let rope = Rope::new(RopeVariant::Yoco, 8, DEFAULT_THETA, &cpu).unwrap();
    let wrong_dim = tensor(&[0.0; 16], &[1, 1, 1, 16], &cpu);
    assert!(matches!(rope.apply(&wrong_dim, 0), Err(Error::ShapeMismatch { what: "x", .. })));
    let rank3 = tensor(&[0.0; 16], &[1, 2, 8], &cpu);
    assert!(matches!(rope.apply(&rank3, 0), Err(Error::ShapeMismatch { what: "x", .. })));
    let x = tensor(&[0.0; 16], &[1, 2, 1, 8], &cpu);
    assert!(matches!(rope.apply(&x, MAX_POSITION - 1), Err(Error::InvalidArgument { what: "offset", .. })));
    // An offset whose sum with the length would wrap is refused, not taken modulo 2^64.
    assert!(matches!(rope.apply(&x, usize::MAX), Err(Error::InvalidArgument { what: "offset", .. })));
    let mut out_bf16 = Tensor::zeros([1, 2, 1, 8], DType::BF16, &cpu, MemoryCategory::Activations).unwrap();
    assert!(matches!(rope.apply_into(&x, 0, &mut out_bf16), Err(Error::DTypeMismatch { what: "out", .. })));
    if let Some(gpu) = yoco_core::testing::cuda_device_or_skip("bad_input_is_a_typed_error") {
        let x_gpu = x.to_device(&gpu).unwrap();
        assert!(matches!(rope.apply(&x_gpu, 0), Err(Error::DeviceMismatch { what: "x", .. })));
    }
}
