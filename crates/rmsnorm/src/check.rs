//! Validation against the reference on fresh random inputs, shared by `tests/` (every device the
//! build and machine have) and `yoco check` (which runs it on a GPU machine at larger shapes).

use yoco_core::testing::{case_rng, judge, once_rounded_bound, rel_l2, Outcome};
use yoco_core::{DType, Device, MemoryCategory, Result, Tensor};

use crate::{reference, rms_norm_into, rms_norm_residual_into, DEFAULT_EPS};

/// (rows, width): widths 1, 7, 4095 and 8193 (odd, just past pack and block multiples), the
/// model widths, one row and many.
pub const SHAPES: &[(usize, usize)] = &[(1, 1), (3, 7), (1, 4095), (5, 4095), (2, 8193), (1, 3072), (33, 768), (1000, 64), (257, 128), (4, 8192)];

/// Shapes that fill a GPU many times over (thousands of blocks): YOCO-3B's width over an
/// 8K-token prefill, wide odd rows, and many narrow ones. Not larger: the f64 reference runs on
/// the GPU machine's host, on one thread, inside the GPU call's time.
pub const LARGE_SHAPES: &[(usize, usize)] = &[(8192, 3072), (4096, 8193), (16384, 768)];

fn tensor(values: &[f64], shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
    Tensor::from_f64(values, shape.to_vec(), dtype, device, MemoryCategory::Activations)
}

/// A tensor full of NaN: an element the kernel fails to write fails the comparison.
fn poisoned(shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
    tensor(&vec![f64::NAN; shape.iter().product()], shape, dtype, device)
}

/// One case: RMSNorm (and, with `residual`, the fused variant: outcomes for h and y) on fresh
/// random inputs, compared with the reference run on the same rounded inputs.
pub fn case(device: &Device, dtype: DType, rows: usize, width: usize, residual: bool) -> Result<Vec<Outcome>> {
    let name = if residual { "rms_norm_residual" } else { "rms_norm" };
    let label = format!("{name} {device} {dtype} rows={rows} width={width}");
    let mut rng = case_rng(&label);
    // Scales away from 1 so that the normalisation does something.
    let scale = rng.uniform_in(0.1, 10.0);
    let x_vals: Vec<f64> = rng.normal_vec(rows * width).into_iter().map(|v| v * scale).collect();
    let r_vals: Vec<f64> = rng.normal_vec(rows * width).into_iter().map(|v| v * scale).collect();
    let w_vals: Vec<f64> = (0..width).map(|_| 1.0 + 0.2 * rng.normal()).collect();
    let x = tensor(&x_vals, &[rows, width], dtype, device)?;
    let w = tensor(&w_vals, &[width], dtype, device)?;
    let mut y = poisoned(&[rows, width], dtype, device)?;
    // The reference sees the inputs as the path saw them: already rounded to dtype.
    let (x64, w64) = (x.to_f64_vec()?, w.to_f64_vec()?);
    let eps = DEFAULT_EPS as f64;
    if residual {
        let r = tensor(&r_vals, &[rows, width], dtype, device)?;
        let mut h = poisoned(&[rows, width], dtype, device)?;
        rms_norm_residual_into(&x, &r, &w, DEFAULT_EPS, &mut h, &mut y)?;
        let r64 = r.to_f64_vec()?;
        let (want_h, want_y) = reference::rms_norm_residual(&x64, &r64, &w64, eps);
        let (plain_h, plain_y) = reference::rms_norm_residual_plain(&x64, Some(&r64), &w64, eps, dtype);
        Ok(vec![
            judge(format!("{label} h"), dtype, &h.to_f64_vec()?, &plain_h, &want_h),
            judge(format!("{label} y"), dtype, &y.to_f64_vec()?, &plain_y, &want_y),
        ])
    } else {
        rms_norm_into(&x, &w, DEFAULT_EPS, &mut y)?;
        let want = reference::rms_norm(&x64, &w64, eps);
        let (_, plain) = reference::rms_norm_residual_plain(&x64, None, &w64, eps, dtype);
        Ok(vec![judge(label, dtype, &y.to_f64_vec()?, &plain, &want)])
    }
}

/// Every dtype × `shapes` × {plain, residual} on `device`.
pub fn sweep(device: &Device, shapes: &[(usize, usize)]) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    for dtype in DType::ALL {
        for &(rows, width) in shapes {
            for residual in [false, true] {
                outcomes.extend(case(device, dtype, rows, width, residual)?);
            }
        }
    }
    Ok(outcomes)
}

/// Rows whose squares overflow f32 (elements ~1e20: 1e40 past f32's 3.4e38), which f32 and
/// bf16 can hold: they must still normalise to a unit RMS, against the f64 reference, in both
/// variants (the warp kernel at width 100, the block kernel at 8193 on a GPU).
pub fn overflowing_rows(device: &Device) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    for dtype in [DType::F32, DType::BF16] {
        for width in [100, 8193] {
            for residual in [false, true] {
                let name = if residual { "rms_norm_residual" } else { "rms_norm" };
                let label = format!("{name} {device} {dtype} rows=2 width={width} elements ~1e20");
                let mut rng = case_rng(&label);
                let x = tensor(&rng.normal_vec(2 * width).iter().map(|v| v * 1e20).collect::<Vec<_>>(), &[2, width], dtype, device)?;
                let w = tensor(&(0..width).map(|_| 1.0 + 0.2 * rng.normal()).collect::<Vec<_>>(), &[width], dtype, device)?;
                let mut y = poisoned(&[2, width], dtype, device)?;
                if residual {
                    let r = tensor(&vec![0.0; 2 * width], &[2, width], dtype, device)?;
                    let mut h = poisoned(&[2, width], dtype, device)?;
                    rms_norm_residual_into(&x, &r, &w, DEFAULT_EPS, &mut h, &mut y)?;
                } else {
                    rms_norm_into(&x, &w, DEFAULT_EPS, &mut y)?;
                }
                let want = reference::rms_norm(&x.to_f64_vec()?, &w.to_f64_vec()?, DEFAULT_EPS as f64);
                // bf16: one rounding of each output, the most a path that normalises exactly can
                // be off by. (The sweep's yardstick, a plain implementation's error, is no use
                // here: the plain one sums squares in f32 and overflows.) Half of it, tried first,
                // failed one run in a few: 200 once-rounded outputs reached 1.96e-3 against 1.95e-3.
                let bound = once_rounded_bound(dtype);
                outcomes.push(Outcome { error: rel_l2(&y.to_f64_vec()?, &want), label, plain_error: None, bound });
            }
        }
    }
    Ok(outcomes)
}
