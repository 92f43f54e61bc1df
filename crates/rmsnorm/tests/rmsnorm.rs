//! RMSNorm against the f64 reference on every device this build and machine have, every dtype,
//! awkward widths, one row and many (the sweep in `check`); and every kind of bad input.

use yoco_core::testing::{assert_all_passed, case_rng, check_rel_l2, test_devices, F32_REL_L2_BOUND};
use yoco_core::{DType, Device, Error, MemoryCategory, Tensor};
use yoco_rmsnorm::{check, reference, rms_norm, rms_norm_into, rms_norm_residual, DEFAULT_EPS};

fn tensor(values: &[f64], shape: &[usize], dtype: DType, device: &Device) -> Tensor {
    Tensor::from_f64(values, shape.to_vec(), dtype, device, MemoryCategory::Activations).unwrap()
}

#[test]
fn rms_norm_and_residual_variant_match_reference() {
    for device in test_devices("rms_norm_and_residual_variant_match_reference") {
        assert_all_passed(&check::sweep(&device, check::SHAPES).unwrap());
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

/// Rows whose squares overflow f32 (1e20² = 1e40) still normalise to a unit RMS (the sweep
/// `yoco check` runs too), and rows holding an infinity, or an infinity and a NaN, come out as
/// the f64 reference's, in every dtype that can hold them and in the residual variant.
#[test]
fn rows_whose_squares_overflow_f32_still_normalise() {
    for device in test_devices("rows_whose_squares_overflow_f32_still_normalise") {
        assert_all_passed(&check::overflowing_rows(&device).unwrap());
        // Row 0 holds an infinity (zeros and NaN come out), row 1 an infinity and a NaN (all NaN).
        let width = 100;
        let mut vals = vec![1e20; 2 * width];
        vals[7] = f64::INFINITY;
        (vals[width + 3], vals[width + 9]) = (f64::INFINITY, f64::NAN);
        let weight = vec![1.0; width];
        for dtype in [DType::F32, DType::BF16] {
            let (x, r, w) = (tensor(&vals, &[2, width], dtype, &device), tensor(&vec![0.0; 2 * width], &[2, width], dtype, &device), tensor(&weight, &[width], dtype, &device));
            let want = reference::rms_norm(&x.to_f64_vec().unwrap(), &weight, DEFAULT_EPS as f64);
            assert!(want[width..].iter().all(|v| v.is_nan()) && want[..width].iter().filter(|v| v.is_nan()).count() == 1);
            let plain = rms_norm(&x, &w, DEFAULT_EPS).unwrap().to_f64_vec().unwrap();
            let (_, with_residual) = rms_norm_residual(&x, &r, &w, DEFAULT_EPS).unwrap();
            for (label, y) in [("plain", plain), ("residual", with_residual.to_f64_vec().unwrap())] {
                for (got, want) in y.iter().zip(&want) {
                    assert!(got == want || (got.is_nan() && want.is_nan()), "{device} {dtype} {label}: rows with an infinity: {got} vs {want}");
                }
            }
        }
    }
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
