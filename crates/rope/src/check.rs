//! Validation against the reference on fresh random inputs, shared by `tests/` and `yoco check`.

use yoco_core::testing::{case_rng, judge, Outcome};
use yoco_core::{DType, Device, MemoryCategory, Result, Tensor};

use crate::{reference, Rope, RopeVariant, DEFAULT_THETA};

/// (batch, seq, heads, head_dim, position offset): one token, odd lengths, a decode step deep
/// into a long context (where the f32 angle's rounding matters), head dims 64/128/256 and small.
pub const SHAPES: &[(usize, usize, usize, usize, usize)] =
    &[(1, 1, 1, 4, 0), (2, 7, 3, 64, 0), (1, 33, 2, 128, 5), (1, 1, 8, 128, 131_071), (3, 5, 1, 256, 1000), (1, 17, 4, 6, 65_536)];

/// GPU-filling: YOCO-3B's query heads over an 8K-token prefill (the reference runs on one host
/// thread inside the GPU call's time), and a batch of decode steps deep into a context.
pub const LARGE_SHAPES: &[(usize, usize, usize, usize, usize)] = &[(1, 8192, 24, 128, 0), (64, 1, 24, 128, 500_000)];

/// One case into a NaN-poisoned output (or in place).
pub fn case(device: &Device, dtype: DType, variant: RopeVariant, shape: (usize, usize, usize, usize, usize), inplace: bool) -> Result<Outcome> {
    let (b, n, h, d, offset) = shape;
    let how = if inplace { " inplace" } else { "" };
    let label = format!("rope {} {device} {dtype}{how} [{b}, {n}, {h}, {d}] offset={offset}", variant.name());
    let mut rng = case_rng(&label);
    let dims = [b, n, h, d];
    let rope = Rope::new(variant, d, DEFAULT_THETA, device)?;
    let mut x = Tensor::from_f64(&rng.normal_vec(b * n * h * d), dims.to_vec(), dtype, device, MemoryCategory::Activations)?;
    let x64 = x.to_f64_vec()?;
    let got = if inplace {
        rope.apply_inplace(&mut x, offset)?;
        x.to_f64_vec()?
    } else {
        let mut out = Tensor::from_f64(&vec![f64::NAN; x64.len()], dims.to_vec(), dtype, device, MemoryCategory::Activations)?;
        rope.apply_into(&x, offset, &mut out)?;
        out.to_f64_vec()?
    };
    let want = reference::rope(&x64, dims, variant, rope.inv_freq(), offset);
    let plain = reference::rope_plain(&x64, dims, variant, rope.inv_freq(), offset, dtype);
    Ok(judge(label, dtype, &got, &plain, &want))
}

/// Every dtype × variant × `shapes`, out of place and in place.
pub fn sweep(device: &Device, shapes: &[(usize, usize, usize, usize, usize)]) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    for dtype in DType::ALL {
        for variant in RopeVariant::ALL {
            for &shape in shapes {
                for inplace in [false, true] {
                    outcomes.push(case(device, dtype, variant, shape, inplace)?);
                }
            }
        }
    }
    Ok(outcomes)
}
