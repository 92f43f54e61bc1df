//! RMSNorm against the f64 reference on every device this build and machine have, every dtype,
//! awkward widths, one row and many; and every kind of bad input.

use yoco_core::testing::{case_rng, check_against_plain, check_rel_l2, rounding_floor, run_seed, test_devices, F32_REL_L2_BOUND, HALF_REL_L2_CAP};
use yoco_core::{DType, Device, Error, MemoryCategory, Tensor};
use yoco_rmsnorm::{reference, rms_norm, rms_norm_into, rms_norm_residual, rms_norm_residual_into, DEFAULT_EPS};

/// (rows, width): widths 1, 7, 4095 and 8193 (odd, just past pack and block multiples), the
/// model widths, one row and many.
const SHAPES: &[(usize, usize)] = &[(1, 1), (3, 7), (1, 4095), (5, 4095), (2, 8193), (1, 3072), (33, 768), (1000, 64), (257, 128), (4, 8192)];

fn tensor(values: &[f64], shape: &[usize], dtype: DType, device: &Device) -> Tensor {
    Tensor::from_f64(values, shape.to_vec(), dtype, device, MemoryCategory::Activations).unwrap()
}

/// A tensor full of NaN, so that an element the kernel fails to write fails the comparison.
fn poisoned(shape: &[usize], dtype: DType, device: &Device) -> Tensor {
    tensor(&vec![f64::NAN; shape.iter().product()], shape, dtype, device)
}

/// The check for a path in `dtype`: the f32 bound, or the same-precision rule for bf16/f16.
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
fn rms_norm_matches_reference() {
    for device in test_devices("rms_norm_matches_reference") {
        for dtype in DType::ALL {
            for &(rows, width) in SHAPES {
                let case = format!("rms_norm {device} {dtype} rows={rows} width={width}");
                let mut rng = case_rng(&case);
                // Scales away from 1 so the normalisation is doing something.
                let scale = rng.uniform_in(0.1, 10.0);
                let x_vals: Vec<f64> = rng.normal_vec(rows * width).into_iter().map(|v| v * scale).collect();
                let w_vals: Vec<f64> = (0..width).map(|_| 1.0 + 0.2 * rng.normal()).collect();
                let x = tensor(&x_vals, &[rows, width], dtype, &device);
                let w = tensor(&w_vals, &[width], dtype, &device);
                let mut y = poisoned(&[rows, width], dtype, &device);
                rms_norm_into(&x, &w, DEFAULT_EPS, &mut y).unwrap();

                // The reference sees the inputs as the path saw them: already rounded to dtype.
                let (x64, w64) = (x.to_f64_vec().unwrap(), w.to_f64_vec().unwrap());
                let want = reference::rms_norm(&x64, &w64, DEFAULT_EPS as f64);
                let (_, plain) = reference::rms_norm_residual_plain(&x64, None, &w64, DEFAULT_EPS as f64, dtype);
                check(&case, dtype, &y.to_f64_vec().unwrap(), &plain, &want);
            }
        }
    }
}

#[test]
fn rms_norm_residual_matches_reference() {
    for device in test_devices("rms_norm_residual_matches_reference") {
        for dtype in DType::ALL {
            for &(rows, width) in SHAPES {
                let case = format!("rms_norm_residual {device} {dtype} rows={rows} width={width}");
                let mut rng = case_rng(&case);
                let x_vals = rng.normal_vec(rows * width);
                let r_vals: Vec<f64> = rng.normal_vec(rows * width).into_iter().map(|v| 3.0 * v).collect();
                let w_vals: Vec<f64> = (0..width).map(|_| 1.0 + 0.2 * rng.normal()).collect();
                let x = tensor(&x_vals, &[rows, width], dtype, &device);
                let r = tensor(&r_vals, &[rows, width], dtype, &device);
                let w = tensor(&w_vals, &[width], dtype, &device);
                let mut h = poisoned(&[rows, width], dtype, &device);
                let mut y = poisoned(&[rows, width], dtype, &device);
                rms_norm_residual_into(&x, &r, &w, DEFAULT_EPS, &mut h, &mut y).unwrap();

                let (x64, r64, w64) = (x.to_f64_vec().unwrap(), r.to_f64_vec().unwrap(), w.to_f64_vec().unwrap());
                let (want_h, want_y) = reference::rms_norm_residual(&x64, &r64, &w64, DEFAULT_EPS as f64);
                let (plain_h, plain_y) = reference::rms_norm_residual_plain(&x64, Some(&r64), &w64, DEFAULT_EPS as f64, dtype);
                check(&format!("{case} h"), dtype, &h.to_f64_vec().unwrap(), &plain_h, &want_h);
                check(&format!("{case} y"), dtype, &y.to_f64_vec().unwrap(), &plain_y, &want_y);
            }
        }
    }
}

#[test]
fn higher_rank_inputs_normalise_the_last_dimension() {
    let device = Device::cpu();
    let mut rng = case_rng("rank3");
    let vals = rng.normal_vec(2 * 3 * 5);
    let x = tensor(&vals, &[2, 3, 5], DType::F32, &device);
    let w = tensor(&[1.0; 5], &[5], DType::F32, &device);
    let y = rms_norm(&x, &w, DEFAULT_EPS).unwrap();
    assert_eq!(y.dims(), &[2, 3, 5]);
    let want = reference::rms_norm(&x.to_f64_vec().unwrap(), &[1.0; 5], DEFAULT_EPS as f64);
    check_rel_l2("rank 3", &y.to_f64_vec().unwrap(), &want, F32_REL_L2_BOUND).unwrap();
}

#[test]
fn bad_input_is_a_typed_error() {
    let cpu = Device::cpu();
    let x = tensor(&[1.0; 12], &[3, 4], DType::F32, &cpu);
    let w = tensor(&[1.0; 4], &[4], DType::F32, &cpu);
    let w5 = tensor(&[1.0; 5], &[5], DType::F32, &cpu);
    let w_bf16 = tensor(&[1.0; 4], &[4], DType::BF16, &cpu);
    let empty = tensor(&[], &[0, 4], DType::F32, &cpu);
    let r_bad = tensor(&[1.0; 8], &[2, 4], DType::F32, &cpu);

    assert!(matches!(rms_norm(&x, &w5, DEFAULT_EPS), Err(Error::ShapeMismatch { what: "weight", .. })));
    assert!(matches!(rms_norm(&x, &w_bf16, DEFAULT_EPS), Err(Error::DTypeMismatch { what: "weight", .. })));
    assert!(matches!(rms_norm(&empty, &w, DEFAULT_EPS), Err(Error::Empty { what: "x", .. })));
    for eps in [0.0, -1e-5, f32::NAN, f32::INFINITY] {
        assert!(matches!(rms_norm(&x, &w, eps), Err(Error::InvalidArgument { what: "eps", .. })), "eps {eps}");
    }
    assert!(matches!(rms_norm_residual(&x, &r_bad, &w, DEFAULT_EPS), Err(Error::ShapeMismatch { what: "residual", .. })));
    let mut y_bad = tensor(&[0.0; 8], &[2, 4], DType::F32, &cpu);
    assert!(matches!(rms_norm_into(&x, &w, DEFAULT_EPS, &mut y_bad), Err(Error::ShapeMismatch { what: "y", .. })));
    // The messages say what was expected.
    let msg = rms_norm(&x, &w5, DEFAULT_EPS).unwrap_err().to_string();
    assert!(msg.contains("expected [4]") && msg.contains("got [5]"), "{msg}");

    if let Some(gpu) = yoco_core::testing::cuda_device_or_skip("bad_input_is_a_typed_error") {
        let w_gpu = tensor(&[1.0; 4], &[4], DType::F32, &gpu);
        assert!(matches!(rms_norm(&x, &w_gpu, DEFAULT_EPS), Err(Error::DeviceMismatch { what: "weight", .. })));
    }
}

#[test]
fn outputs_are_charged_as_activations() {
    let cpu = Device::cpu();
    let x = tensor(&[1.0; 64], &[4, 16], DType::BF16, &cpu);
    let w = tensor(&[1.0; 16], &[16], DType::BF16, &cpu);
    let before = cpu.memory().current(MemoryCategory::Activations);
    let (h, y) = rms_norm_residual(&x, &x, &w, DEFAULT_EPS).unwrap();
    let after = cpu.memory().current(MemoryCategory::Activations);
    assert_eq!(after - before, 2 * 64 * 2);
    drop((h, y));
    assert_eq!(cpu.memory().current(MemoryCategory::Activations), before);
}
