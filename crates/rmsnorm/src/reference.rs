//! The f64 reference: plain loops, no optimisation, obviously right. Every other path is tested
//! against it. Slices are dense row-major `[rows, width]`.

use yoco_core::DType;

/// `y = x * (mean(x²) + eps)^-½ * w` per row.
/// x: `[rows, width]`, weight: `[width]` → y: `[rows, width]`.
pub fn rms_norm(x: &[f64], weight: &[f64], eps: f64) -> Vec<f64> {
    let width = weight.len();
    let mut y = vec![0.0; x.len()];
    for (xr, yr) in x.chunks(width).zip(y.chunks_mut(width)) {
        let mean_sq = xr.iter().map(|v| v * v).sum::<f64>() / width as f64;
        let inv_rms = 1.0 / (mean_sq + eps).sqrt();
        for i in 0..width {
            yr[i] = xr[i] * inv_rms * weight[i];
        }
    }
    y
}

/// `h = x + r; y = rms_norm(h)`. x, r: `[rows, width]`, weight: `[width]` → (h, y).
pub fn rms_norm_residual(x: &[f64], residual: &[f64], weight: &[f64], eps: f64) -> (Vec<f64>, Vec<f64>) {
    let h: Vec<f64> = x.iter().zip(residual).map(|(a, b)| a + b).collect();
    let y = rms_norm(&h, weight, eps);
    (h, y)
}

/// What a plain implementation in `dtype` storage computes (PyTorch's unfused RMSNorm): h is
/// rounded after the add; `x * inv_rms` is rounded to the storage type before the weight
/// multiply, and the product is rounded again. The yardstick of the reduced-precision tests.
pub fn rms_norm_residual_plain(x: &[f64], residual: Option<&[f64]>, weight: &[f64], eps: f64, dtype: DType) -> (Vec<f64>, Vec<f64>) {
    let width = weight.len();
    let h: Vec<f64> = match residual {
        Some(r) => x.iter().zip(r).map(|(a, b)| dtype.round(a + b)).collect(),
        None => x.to_vec(),
    };
    let mut y = vec![0.0; h.len()];
    for (hr, yr) in h.chunks(width).zip(y.chunks_mut(width)) {
        let mean_sq = hr.iter().map(|v| (*v as f32) * (*v as f32)).sum::<f32>() / width as f32;
        let inv_rms = 1.0 / (mean_sq + eps as f32).sqrt();
        for i in 0..width {
            let normed = dtype.round(hr[i] * inv_rms as f64);
            yr[i] = dtype.round(normed * weight[i]);
        }
    }
    (h, y)
}
