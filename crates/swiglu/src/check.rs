//! Validation against the reference on fresh random inputs, shared by `tests/` (every device the
//! build and machine have) and `yoco check` (which runs it on a GPU machine at larger shapes).

use yoco_core::testing::{case_rng, judge, Outcome};
use yoco_core::{DType, Device, MemoryCategory, Result, Tensor};

use crate::{ffn, reference, silu_mul_into, FfnWeights};

/// silu_mul (rows, width): widths 1, 7, 4095, 8193; one row and many.
pub const GATE_SHAPES: &[(usize, usize)] = &[(1, 1), (3, 7), (1, 4095), (2, 8193), (64, 8192), (1000, 24)];
/// FFN shapes (rows, d, F): one token, odd sizes, sizes just past GEMM tile multiples; few rows
/// (decode; on the CPU, 16-bit weights widened block by block) and many (prefill; widened whole;
/// in f32 from 192 rows the gate made inside the packed GEMM, here over two slices of its
/// reduction and past its groups' and panels' edges).
pub const FFN_SHAPES: &[(usize, usize, usize)] = &[(1, 8, 16), (7, 64, 160), (33, 96, 257), (65, 128, 344), (130, 64, 96), (203, 300, 130)];

/// GPU-filling shapes: YOCO-3B's FFN width over 4K tokens (the gate's reference runs on one
/// host thread inside the GPU call's time), and odd sizes.
pub const LARGE_GATE_SHAPES: &[(usize, usize)] = &[(4096, 8192), (4097, 8193)];
pub const LARGE_FFN_SHAPES: &[(usize, usize, usize)] = &[(512, 3072, 8192), (129, 1024, 2731)];

fn tensor(values: &[f64], shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
    Tensor::from_f64(values, shape.to_vec(), dtype, device, MemoryCategory::Activations)
}

/// `silu(gate) ⊙ up` on fresh inputs, into a NaN-poisoned output.
pub fn gate_case(device: &Device, dtype: DType, rows: usize, width: usize) -> Result<Outcome> {
    let label = format!("silu_mul {device} {dtype} rows={rows} width={width}");
    let mut rng = case_rng(&label);
    // Gates over silu's whole range: deep negative, around 0, large positive.
    let g: Vec<f64> = rng.normal_vec(rows * width).into_iter().map(|v| 4.0 * v).collect();
    let gate = tensor(&g, &[rows, width], dtype, device)?;
    let up = tensor(&rng.normal_vec(rows * width), &[rows, width], dtype, device)?;
    let mut out = tensor(&vec![f64::NAN; rows * width], &[rows, width], dtype, device)?;
    silu_mul_into(&gate, &up, &mut out)?;
    let (g64, u64) = (gate.to_f64_vec()?, up.to_f64_vec()?);
    let want = reference::silu_mul(&g64, &u64);
    let plain = reference::silu_mul_plain(&g64, &u64, dtype);
    Ok(judge(label, dtype, &out.to_f64_vec()?, &plain, &want))
}

/// The whole FFN on fresh inputs with weights scaled as initialisation would (1/√fan-in).
pub fn ffn_case(device: &Device, dtype: DType, rows: usize, d: usize, f: usize) -> Result<Outcome> {
    let label = format!("ffn {device} {dtype} rows={rows} d={d} F={f}");
    let mut rng = case_rng(&label);
    let mut scaled = |n: usize, fan_in: usize| -> Vec<f64> { rng.normal_vec(n).into_iter().map(|v| v / (fan_in as f64).sqrt()).collect() };
    let x = tensor(&scaled(rows * d, 1), &[rows, d], dtype, device)?;
    let w1 = tensor(&scaled(f * d, d), &[f, d], dtype, device)?;
    let w3 = tensor(&scaled(f * d, d), &[f, d], dtype, device)?;
    let w2 = tensor(&scaled(d * f, f), &[d, f], dtype, device)?;
    let y = ffn(&x, &FfnWeights { w1: &w1, w3: &w3, w2: &w2 })?;
    let (x64, w164, w364, w264) = (x.to_f64_vec()?, w1.to_f64_vec()?, w3.to_f64_vec()?, w2.to_f64_vec()?);
    let want = reference::ffn(&x64, &w164, &w364, &w264, d);
    let plain = reference::ffn_plain(&x64, &w164, &w364, &w264, d, dtype);
    Ok(judge(label, dtype, &y.to_f64_vec()?, &plain, &want))
}

/// The gate and the FFN in every dtype.
pub fn sweep(device: &Device, gate_shapes: &[(usize, usize)], ffn_shapes: &[(usize, usize, usize)]) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    for dtype in DType::ALL {
        for &(rows, width) in gate_shapes {
            outcomes.push(gate_case(device, dtype, rows, width)?);
        }
        for &(rows, d, f) in ffn_shapes {
            outcomes.push(ffn_case(device, dtype, rows, d, f)?);
        }
    }
    Ok(outcomes)
}
