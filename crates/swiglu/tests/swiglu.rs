//! SwiGLU against the f64 reference on every device this build and machine have, every dtype,
//! awkward sizes; and every kind of bad input.

use yoco_core::testing::{case_rng, check_against_plain, check_rel_l2, rounding_floor, run_seed, test_devices, F32_REL_L2_BOUND, HALF_REL_L2_CAP};
use yoco_core::{DType, Device, Error, MemoryCategory, Tensor};
use yoco_swiglu::{ffn, reference, silu_mul, silu_mul_into, FfnWeights};

fn tensor(values: &[f64], shape: &[usize], dtype: DType, device: &Device) -> Tensor {
    Tensor::from_f64(values, shape.to_vec(), dtype, device, MemoryCategory::Activations).unwrap()
}

fn check(label: &str, dtype: DType, out: &[f64], plain: &[f64], reference: &[f64]) {
    let result = match dtype {
        DType::F32 => check_rel_l2(label, out, reference, F32_REL_L2_BOUND),
        _ => check_against_plain(label, out, plain, reference, rounding_floor(dtype), HALF_REL_L2_CAP),
    };
    if let Err(msg) = result {
        panic!("{msg} (YOCO_TEST_SEED={})", run_seed());
    }
}

#[test]
fn silu_mul_matches_reference() {
    // (rows, width): widths 1, 7, 4095, 8193; one row and many.
    let shapes = [(1, 1), (3, 7), (1, 4095), (2, 8193), (64, 8192), (1000, 24)];
    for device in test_devices("silu_mul_matches_reference") {
        for dtype in DType::ALL {
            for &(rows, width) in &shapes {
                let case = format!("silu_mul {device} {dtype} rows={rows} width={width}");
                let mut rng = case_rng(&case);
                // Gates spread over silu's whole range: deep negative, around 0, large positive.
                let g: Vec<f64> = rng.normal_vec(rows * width).into_iter().map(|v| 4.0 * v).collect();
                let u = rng.normal_vec(rows * width);
                let gate = tensor(&g, &[rows, width], dtype, &device);
                let up = tensor(&u, &[rows, width], dtype, &device);
                let mut out = tensor(&vec![f64::NAN; rows * width], &[rows, width], dtype, &device);
                silu_mul_into(&gate, &up, &mut out).unwrap();
                let (g64, u64) = (gate.to_f64_vec().unwrap(), up.to_f64_vec().unwrap());
                let want = reference::silu_mul(&g64, &u64);
                let plain = reference::silu_mul_plain(&g64, &u64, dtype);
                check(&case, dtype, &out.to_f64_vec().unwrap(), &plain, &want);
            }
        }
    }
}

#[test]
fn ffn_matches_reference() {
    // (rows, d, F): a single token, odd sizes, sizes just past GEMM tile multiples.
    let shapes = [(1, 8, 16), (7, 64, 160), (33, 96, 257), (65, 128, 344)];
    for device in test_devices("ffn_matches_reference") {
        // The CPU FFN is f32; CUDA runs every dtype.
        let dtypes: &[DType] = if device.is_cpu() { &[DType::F32] } else { &DType::ALL };
        for &dtype in dtypes {
            for &(rows, d, f) in &shapes {
                let case = format!("ffn {device} {dtype} rows={rows} d={d} F={f}");
                let mut rng = case_rng(&case);
                let scale_in = 1.0 / (d as f64).sqrt();
                let scale_out = 1.0 / (f as f64).sqrt();
                let x = tensor(&rng.normal_vec(rows * d), &[rows, d], dtype, &device);
                let w1 = tensor(&rng.normal_vec(f * d).iter().map(|v| v * scale_in).collect::<Vec<_>>(), &[f, d], dtype, &device);
                let w3 = tensor(&rng.normal_vec(f * d).iter().map(|v| v * scale_in).collect::<Vec<_>>(), &[f, d], dtype, &device);
                let w2 = tensor(&rng.normal_vec(d * f).iter().map(|v| v * scale_out).collect::<Vec<_>>(), &[d, f], dtype, &device);
                let y = ffn(&x, &FfnWeights { w1: &w1, w3: &w3, w2: &w2 }).unwrap();
                assert_eq!(y.dims(), &[rows, d]);
                let [x64, w164, w364, w264] = [&x, &w1, &w3, &w2].map(|t| t.to_f64_vec().unwrap());
                let want = reference::ffn(&x64, &w164, &w364, &w264, d);
                let plain = reference::ffn_plain(&x64, &w164, &w364, &w264, d, dtype);
                check(&case, dtype, &y.to_f64_vec().unwrap(), &plain, &want);
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
    let (h1, h3, h2) = (t(&[16, 8], DType::BF16), t(&[16, 8], DType::BF16), t(&[8, 16], DType::BF16));
    assert!(matches!(ffn(&x16, &FfnWeights { w1: &h1, w3: &h3, w2: &h2 }), Err(Error::Unsupported { .. })));
    assert!(matches!(ffn(&t(&[0, 8], DType::F32), &FfnWeights { w1: &w1, w3: &w3, w2: &w2 }), Err(Error::Empty { what: "x", .. })));
    let w1_empty = t(&[0, 8], DType::F32);
    assert!(ffn(&x, &FfnWeights { w1: &w1_empty, w3: &w3, w2: &w2 }).is_err());

    if let Some(gpu) = yoco_core::testing::cuda_device_or_skip("bad_input_is_a_typed_error") {
        let w1_gpu = tensor(&vec![0.5; 128], &[16, 8], DType::F32, &gpu);
        assert!(matches!(ffn(&x, &FfnWeights { w1: &w1_gpu, w3: &w3, w2: &w2 }), Err(Error::DeviceMismatch { what: "w1", .. })));
    }
}
