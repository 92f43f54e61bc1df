//! Element types: f32, bf16 and f16 storage. Arithmetic is always done in f32 (statistics,
//! accumulators) whatever the storage type; [`Element`] is the bridge.

use half::{bf16, f16};
use std::fmt;

#[cfg(feature = "cuda")]
use crate::tensor::CudaStorage;
use crate::aligned::{AlignedVec, ZeroBits};
use crate::tensor::CpuStorage;

/// The storage type of a tensor's elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    BF16,
    F16,
}

impl DType {
    /// Every dtype, for tests and benches that sweep them.
    pub const ALL: [DType; 3] = [DType::F32, DType::BF16, DType::F16];

    /// Bytes per element.
    pub const fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::BF16 | DType::F16 => 2,
        }
    }

    /// Rounds an f64 value to this dtype and back: what storing it would keep.
    pub fn round(self, v: f64) -> f64 {
        match self {
            DType::F32 => v as f32 as f64,
            DType::BF16 => bf16::from_f64(v).to_f64(),
            DType::F16 => f16::from_f64(v).to_f64(),
        }
    }

    /// The short lowercase name used in kernel entry names and bench ids.
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::BF16 => "bf16",
            DType::F16 => "f16",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a tensor element must also be in a build with CUDA: copyable to the device and valid
/// as all-zero bits. Nothing in a CPU-only build.
#[cfg(feature = "cuda")]
pub trait DeviceElement: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits {}
#[cfg(feature = "cuda")]
impl<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits> DeviceElement for T {}
/// What a tensor element must also be in a build with CUDA: nothing in a CPU-only build.
#[cfg(not(feature = "cuda"))]
pub trait DeviceElement {}
#[cfg(not(feature = "cuda"))]
impl<T> DeviceElement for T {}

/// `s` as a slice of `U` when `T` is `U` itself (same `TypeId`), else `None`: how a generic
/// fast path takes the element type it has a special loop for, without a copy.
pub fn as_slice_of<T: 'static, U: 'static>(s: &[T]) -> Option<&[U]> {
    // SAFETY: T and U are the same type (same TypeId), so the slice is reinterpreted as itself.
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<U>()).then(|| unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<U>(), s.len()) })
}

/// [`as_slice_of`], mutably.
pub fn as_mut_slice_of<T: 'static, U: 'static>(s: &mut [T]) -> Option<&mut [U]> {
    // SAFETY: as in as_slice_of.
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<U>()).then(|| unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<U>(), s.len()) })
}

/// A Rust type that can be a tensor element.
pub trait Element: DeviceElement + ZeroBits + Copy + Send + Sync + Default + fmt::Debug + PartialEq + 'static {
    /// The matching [`DType`].
    const DTYPE: DType;
    fn to_f32(self) -> f32;
    fn from_f32(v: f32) -> Self;
    fn to_f64(self) -> f64;
    /// Rounds to nearest even, directly from f64 (no double rounding through f32).
    fn from_f64(v: f64) -> Self;

    /// Wraps a buffer as CPU storage of this type.
    fn into_cpu_storage(v: AlignedVec<Self>) -> CpuStorage;
    /// The elements of `s` if it holds this type.
    fn cpu_slice(s: &CpuStorage) -> Option<&[Self]>;
    /// The elements of `s` if it holds this type, mutably.
    fn cpu_slice_mut(s: &mut CpuStorage) -> Option<&mut [Self]>;
    #[cfg(feature = "cuda")]
    fn into_cuda_storage(v: cudarc::driver::CudaSlice<Self>) -> CudaStorage;
    #[cfg(feature = "cuda")]
    fn cuda_slice(s: &CudaStorage) -> Option<&cudarc::driver::CudaSlice<Self>>;
    #[cfg(feature = "cuda")]
    fn cuda_slice_mut(s: &mut CudaStorage) -> Option<&mut cudarc::driver::CudaSlice<Self>>;
}

/// Implements the storage accessors of [`Element`] for one type and its storage variant.
macro_rules! storage_access {
    ($variant:ident) => {
        fn into_cpu_storage(v: AlignedVec<Self>) -> CpuStorage {
            CpuStorage::$variant(v)
        }
        fn cpu_slice(s: &CpuStorage) -> Option<&[Self]> {
            match s {
                CpuStorage::$variant(v) => Some(v),
                _ => None,
            }
        }
        fn cpu_slice_mut(s: &mut CpuStorage) -> Option<&mut [Self]> {
            match s {
                CpuStorage::$variant(v) => Some(v),
                _ => None,
            }
        }
        #[cfg(feature = "cuda")]
        fn into_cuda_storage(v: cudarc::driver::CudaSlice<Self>) -> CudaStorage {
            CudaStorage::$variant(v)
        }
        #[cfg(feature = "cuda")]
        fn cuda_slice(s: &CudaStorage) -> Option<&cudarc::driver::CudaSlice<Self>> {
            match s {
                CudaStorage::$variant(v) => Some(v),
                _ => None,
            }
        }
        #[cfg(feature = "cuda")]
        fn cuda_slice_mut(s: &mut CudaStorage) -> Option<&mut cudarc::driver::CudaSlice<Self>> {
            match s {
                CudaStorage::$variant(v) => Some(v),
                _ => None,
            }
        }
    };
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        v
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    storage_access!(F32);
}

/// f32 → bf16, rounded to nearest even, NaN kept a (quiet) NaN: the same results as
/// `bf16::from_f32`, written with a select instead of the `half` crate's branches so that a loop
/// of them can vectorise.
#[inline(always)]
fn bf16_from_f32(v: f32) -> bf16 {
    let bits = v.to_bits();
    let rounded = (bits.wrapping_add(0x7FFF + ((bits >> 16) & 1)) >> 16) as u16;
    let quiet_nan = ((bits >> 16) | 0x0040) as u16;
    bf16::from_bits(if (bits & 0x7FFF_FFFF) > 0x7F80_0000 { quiet_nan } else { rounded })
}

/// bf16 → f32 (exact; a NaN's quiet bit set), as `bf16::to_f32` but without a branch.
#[inline(always)]
fn bf16_to_f32(v: bf16) -> f32 {
    let bits = v.to_bits();
    let quieted = if (bits & 0x7FFF) > 0x7F80 { bits | 0x0040 } else { bits };
    f32::from_bits((quieted as u32) << 16)
}

macro_rules! half_element {
    ($t:ty, $d:expr, $variant:ident, $to_f32:expr, $from_f32:expr) => {
        impl Element for $t {
            const DTYPE: DType = $d;
            #[inline(always)]
            fn to_f32(self) -> f32 {
                $to_f32(self)
            }
            #[inline(always)]
            fn from_f32(v: f32) -> Self {
                $from_f32(v)
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                <$t>::to_f64(self)
            }
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                <$t>::from_f64(v)
            }
            storage_access!($variant);
        }
    };
}
half_element!(bf16, DType::BF16, BF16, bf16_to_f32, bf16_from_f32);
half_element!(f16, DType::F16, F16, f16::to_f32, f16::from_f32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branchless_bf16_conversions_equal_the_half_crates() {
        // Every rounding case around each bf16 step (ties both ways, carries into the exponent),
        // the extremes, NaNs with and without payload, and a spread of random bit patterns.
        let mut patterns: Vec<u32> = vec![0, 0x8000_0000, 0x7F80_0000, 0xFF80_0000, 0x7F7F_FFFF, 0xFF7F_FFFF, 0x7FC0_0000, 0x7F80_0001, 0xFFFF_FFFF, 0x0000_0001];
        for base in [0x3F80_0000u32, 0x3F81_0000, 0xBF80_0000, 0x0080_0000, 0x3FFF_0000, 0x7F7F_0000] {
            for low in [0u32, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF] {
                patterns.push(base | low);
            }
        }
        let mut rng = crate::rng::Rng::new(7);
        patterns.extend((0..200_000).map(|_| rng.next_u64() as u32));
        for bits in patterns {
            let v = f32::from_bits(bits);
            assert_eq!(bf16_from_f32(v).to_bits(), bf16::from_f32(v).to_bits(), "{bits:#010x}");
        }
        for bits in 0..=u16::MAX {
            let v = bf16::from_bits(bits);
            assert_eq!(bf16_to_f32(v).to_bits(), v.to_f32().to_bits(), "{bits:#06x}");
        }
    }
}
