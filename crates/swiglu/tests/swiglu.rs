//! SwiGLU against the f64 reference on every device this build and machine have, every dtype,
//! awkward sizes (the sweep in `check`); and every kind of bad input.

use yoco_core::testing::{assert_all_passed, test_devices};
use yoco_core::{DType, Device, Error, MemoryCategory, Tensor};
use yoco_swiglu::{check, ffn, silu_mul, FfnWeights};

fn tensor(values: &[f64], shape: &[usize], dtype: DType, device: &Device) -> Tensor {
    Tensor::from_f64(values, shape.to_vec(), dtype, device, MemoryCategory::Activations).unwrap()
}

#[test]
fn silu_mul_and_ffn_match_reference() {
    for device in test_devices("silu_mul_and_ffn_match_reference") {
        assert_all_passed(&check::sweep(&device, check::GATE_SHAPES, check::FFN_SHAPES).unwrap());
    }
}

/// Gates far below 0 give silu·mul's 0 (x · e^x, under 1e-36 in magnitude from −88.5 down), on
/// every device and in every dtype that holds the gate: the CPU's silu once divided them by e^88,
/// the top of its exp, and gave silu(−3e38) = −1.8.
#[test]
fn large_negative_gates_give_zero() {
    for device in test_devices("large_negative_gates_give_zero") {
        for dtype in DType::ALL {
            let gates: Vec<f64> = [-3.0e38, -1e30, -1e20, -1e10, -1e3, -100.0, -88.5].into_iter().filter(|&g| dtype.round(g).is_finite()).collect();
            let ones = vec![1.0; gates.len()];
            let got = silu_mul(&tensor(&gates, &[gates.len()], dtype, &device), &tensor(&ones, &[gates.len()], dtype, &device)).unwrap();
            for (g, got) in gates.iter().zip(got.to_f64_vec().unwrap()) {
                assert!(got.abs() <= 1e-36, "{device:?} {dtype}: silu({g}) · 1 = {got}, want 0");
            }
        }
    }
}

#[test]
fn bad_input_is_a_typed_error() {
    let cpu = Device::cpu();
    let t = |shape: &[usize], dtype| tensor(&vec![0.5; shape.iter().product()], shape, dtype, &cpu);
    let (a, b) = (t(&[2, 4], DType::F32), t(&[2, 5], DType::F32));
    assert!(matches!(silu_mul(&a, &b), Err(Error::ShapeMismatch { what: "up", .. })));
    assert!(matches!(silu_mul(&a, &t(&[2, 4], DType::F16)), Err(Error::DTypeMismatch { what: "up", .. })));
    assert!(matches!(silu_mul(&t(&[0, 4], DType::F32), &t(&[0, 4], DType::F32)), Err(Error::Empty { what: "gate", .. })));

    let x = t(&[3, 8], DType::F32);
    let (w1, w3, w2) = (t(&[16, 8], DType::F32), t(&[16, 8], DType::F32), t(&[8, 16], DType::F32));
    let bad_w2 = t(&[8, 15], DType::F32);
    assert!(matches!(ffn(&x, &FfnWeights { w1: &w1, w3: &w3, w2: &bad_w2 }), Err(Error::ShapeMismatch { what: "w2", .. })));
    let bad_w3 = t(&[16, 7], DType::F32);
    assert!(matches!(ffn(&x, &FfnWeights { w1: &w1, w3: &bad_w3, w2: &w2 }), Err(Error::ShapeMismatch { what: "w3", .. })));
    let x16 = t(&[3, 8], DType::BF16);
    assert!(matches!(ffn(&x16, &FfnWeights { w1: &w1, w3: &w3, w2: &w2 }), Err(Error::DTypeMismatch { what: "w1", .. })));
    // bf16 throughout runs on the CPU too (its values are checked by the sweep).
    let (h1, h3, h2) = (t(&[16, 8], DType::BF16), t(&[16, 8], DType::BF16), t(&[8, 16], DType::BF16));
    assert_eq!(ffn(&x16, &FfnWeights { w1: &h1, w3: &h3, w2: &h2 }).unwrap().dtype(), DType::BF16);
    assert!(matches!(ffn(&t(&[0, 8], DType::F32), &FfnWeights { w1: &w1, w3: &w3, w2: &w2 }), Err(Error::Empty { what: "x", .. })));
    let w1_empty = t(&[0, 8], DType::F32);
    assert!(ffn(&x, &FfnWeights { w1: &w1_empty, w3: &w3, w2: &w2 }).is_err());

    if let Some(gpu) = yoco_core::testing::cuda_device_or_skip("bad_input_is_a_typed_error") {
        let w1_gpu = tensor(&vec![0.5; 128], &[16, 8], DType::F32, &gpu);
        assert!(matches!(ffn(&x, &FfnWeights { w1: &w1_gpu, w3: &w3, w2: &w2 }), Err(Error::DeviceMismatch { what: "w1", .. })));
    }
}
