//! The tensor: dense, row-major, on one device, charged to that device's memory tracker.

use half::{bf16, f16};

use crate::aligned::AlignedVec;
use crate::memory::{MemoryCategory, MemoryCharge};
use crate::{DType, Device, Element, Error, Result, Shape};

#[cfg(feature = "cuda")]
fn not_on(kind: crate::DeviceKind, op: &'static str, expected: &str) -> Error {
    Error::DeviceMismatch { op, what: "tensor", expected: expected.into(), got: kind.to_string() }
}

/// Host storage, one buffer per dtype, aligned to a cache line (`crate::aligned`: a `Vec` of
/// this size starts 16 bytes into one, and every 64-byte load of it then spans two lines; the AMX
/// products' tile loads of weights ran several times slower from the cache that way).
#[derive(Clone, Debug)]
pub enum CpuStorage {
    F32(AlignedVec<f32>),
    BF16(AlignedVec<bf16>),
    F16(AlignedVec<f16>),
}

/// Device storage, one buffer per dtype.
#[cfg(feature = "cuda")]
#[derive(Debug)]
pub enum CudaStorage {
    F32(cudarc::driver::CudaSlice<f32>),
    BF16(cudarc::driver::CudaSlice<bf16>),
    F16(cudarc::driver::CudaSlice<f16>),
}

#[derive(Debug)]
enum Storage {
    Cpu(CpuStorage),
    #[cfg(feature = "cuda")]
    Cuda(CudaStorage),
}

/// A dense row-major tensor of f32, bf16 or f16 on the CPU or a CUDA device.
///
/// Its bytes are charged to its device's tracker under its [`MemoryCategory`] for as long as it
/// lives, so the accounting sees every allocation without any bookkeeping at the call sites.
#[derive(Debug)]
pub struct Tensor {
    shape: Shape,
    dtype: DType,
    device: Device,
    storage: Storage,
    charge: MemoryCharge,
}

/// The element count of a tensor of `shape` and `dtype`, refused where its bytes could not be
/// addressed (an overflowing product of dimensions would otherwise wrap to a small buffer).
fn element_count(op: &'static str, shape: &Shape, dtype: DType) -> Result<usize> {
    shape
        .checked_numel()
        .filter(|n| n.checked_mul(dtype.size_in_bytes()).is_some_and(|bytes| bytes <= isize::MAX as usize))
        .ok_or_else(|| Error::OutOfMemory { op, what: format!("a {dtype} tensor of shape {shape}"), reason: "its size in bytes exceeds the address space".into() })
}

/// `n` zeros, zeroed by the allocator (a fresh mapping for large sizes, untouched until first
/// written, so the huge-page advice still applies to every page), or an error where the
/// allocator refuses: a size that cannot be had ends the call, not the process.
fn zeroed_host<T: Element>(op: &'static str, shape: &Shape, n: usize) -> Result<AlignedVec<T>> {
    AlignedVec::try_zeroed(n).ok_or_else(|| Tensor::refused::<T>(op, shape, n))
}

/// `data` converted element by element into a fresh host buffer advised for huge pages, as
/// [`Tensor::zeros`]'s are ([`crate::pages`]): a `to_vec` or `collect` of a large slice faults its
/// pages in 4 KiB at a time, and a tensor built that way (a bench's K/V cache from random draws)
/// then pays a TLB miss per page wherever it is read with a stride of a page, where the models'
/// own caches do not.
fn host_copy<S: Copy, T: Element>(op: &'static str, shape: &Shape, data: &[S], convert: impl Fn(S) -> T) -> Result<AlignedVec<T>> {
    let mut v = zeroed_host::<T>(op, shape, data.len())?;
    for (d, &s) in v.iter_mut().zip(data) {
        *d = convert(s);
    }
    Ok(v)
}

impl Tensor {
    /// A tensor of zeros.
    pub fn zeros(shape: impl Into<Shape>, dtype: DType, device: &Device, category: MemoryCategory) -> Result<Tensor> {
        const OP: &str = "Tensor::zeros";
        let shape = shape.into();
        let n = element_count(OP, &shape, dtype)?;
        match device {
            Device::Cpu(_) => {
                let storage = match dtype {
                    DType::F32 => CpuStorage::F32(zeroed_host(OP, &shape, n)?),
                    DType::BF16 => CpuStorage::BF16(zeroed_host(OP, &shape, n)?),
                    DType::F16 => CpuStorage::F16(zeroed_host(OP, &shape, n)?),
                };
                Ok(Self::assemble(shape, dtype, device, Storage::Cpu(storage), category))
            }
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => {
                let stream = d.stream();
                let err = |e| Error::cuda("Tensor::zeros", e);
                // cuMemAlloc refuses zero bytes; an empty tensor still gets a (one-element) buffer.
                let len = n.max(1);
                let storage = match dtype {
                    DType::F32 => CudaStorage::F32(stream.alloc_zeros::<f32>(len).map_err(err)?),
                    DType::BF16 => CudaStorage::BF16(stream.alloc_zeros::<bf16>(len).map_err(err)?),
                    DType::F16 => CudaStorage::F16(stream.alloc_zeros::<f16>(len).map_err(err)?),
                };
                Ok(Self::assemble(shape, dtype, device, Storage::Cuda(storage), category))
            }
        }
    }

    /// A tensor whose every element the caller is about to overwrite: an op's output that its
    /// kernel writes in full. Zeros on the CPU (where a fresh allocation's pages are mapped
    /// zeroed on first touch, so zeroing costs nothing); on CUDA its contents are left as the
    /// allocator hands them over, sparing a memset of the whole buffer (a launch and a write
    /// pass) before a kernel that writes it anyway. Reading an element before it is written
    /// reads whatever the memory held: never do that.
    pub fn for_overwrite(shape: impl Into<Shape>, dtype: DType, device: &Device, category: MemoryCategory) -> Result<Tensor> {
        match device {
            Device::Cpu(_) => Tensor::zeros(shape, dtype, device, category),
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => {
                let shape = shape.into();
                let stream = d.stream();
                let err = |e| Error::cuda("Tensor::for_overwrite", e);
                let len = element_count("Tensor::for_overwrite", &shape, dtype)?.max(1);
                // SAFETY: f32, bf16 and f16 have no invalid bit patterns, and the memory is only
                // ever used through device pointers; the contract above is the caller's.
                let storage = unsafe {
                    match dtype {
                        DType::F32 => CudaStorage::F32(stream.alloc::<f32>(len).map_err(err)?),
                        DType::BF16 => CudaStorage::BF16(stream.alloc::<bf16>(len).map_err(err)?),
                        DType::F16 => CudaStorage::F16(stream.alloc::<f16>(len).map_err(err)?),
                    }
                };
                Ok(Self::assemble(shape, dtype, device, Storage::Cuda(storage), category))
            }
        }
    }

    /// `data` as a tensor: copied into aligned host storage (CPU; see [`CpuStorage`]) or uploaded
    /// (CUDA).
    pub fn from_vec<T: Element>(data: Vec<T>, shape: impl Into<Shape>, device: &Device, category: MemoryCategory) -> Result<Tensor> {
        Self::from_host_slice("Tensor::from_vec", &data, shape.into(), device, category)
    }

    /// `data` as a tensor, checked against `shape`: a copy in aligned host storage, or uploaded.
    fn from_host_slice<T: Element>(op: &'static str, data: &[T], shape: Shape, device: &Device, category: MemoryCategory) -> Result<Tensor> {
        Self::check_count(data.len(), &shape)?;
        match device {
            Device::Cpu(_) => {
                let host = AlignedVec::try_from_slice(data).ok_or_else(|| Self::refused::<T>(op, &shape, data.len()))?;
                Ok(Self::assemble(shape, T::DTYPE, device, Storage::Cpu(T::into_cpu_storage(host)), category))
            }
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => {
                // A zero-length upload is refused by the driver: one element stands in for none.
                let one = [T::default()];
                let data = if data.is_empty() { &one[..] } else { data };
                let slice = d.stream().clone_htod(data).map_err(|e| Error::cuda(op, e))?;
                Ok(Self::assemble(shape, T::DTYPE, device, Storage::Cuda(T::into_cuda_storage(slice)), category))
            }
        }
    }

    /// `data` (already host storage) as a tensor on `device`: kept as it is on the CPU.
    #[cfg_attr(not(feature = "cuda"), allow(unused_variables))]
    fn from_host<T: Element>(op: &'static str, data: AlignedVec<T>, shape: Shape, device: &Device, category: MemoryCategory) -> Result<Tensor> {
        match device {
            Device::Cpu(_) => {
                Self::check_count(data.len(), &shape)?;
                Ok(Self::assemble(shape, T::DTYPE, device, Storage::Cpu(T::into_cpu_storage(data)), category))
            }
            #[cfg(feature = "cuda")]
            Device::Cuda(_) => Self::from_host_slice(op, &data, shape, device, category),
        }
    }

    fn check_count(len: usize, shape: &Shape) -> Result<()> {
        if shape.checked_numel() != Some(len) {
            return Err(Error::ElementCount { len, shape: shape.to_string(), expected: shape.checked_numel().unwrap_or(usize::MAX) });
        }
        Ok(())
    }

    fn refused<T: Element>(op: &'static str, shape: &Shape, n: usize) -> Error {
        Error::OutOfMemory { op, what: format!("a {} tensor of shape {shape}", T::DTYPE), reason: format!("the allocator refused {} bytes", n * std::mem::size_of::<T>()) }
    }

    /// Rounds f64 values to `dtype` (directly, no double rounding) and places them on `device`.
    pub fn from_f64(data: &[f64], shape: impl Into<Shape>, dtype: DType, device: &Device, category: MemoryCategory) -> Result<Tensor> {
        const OP: &str = "Tensor::from_f64";
        let shape = shape.into();
        match dtype {
            DType::F32 => Self::from_host(OP, host_copy(OP, &shape, data, f32::from_f64)?, shape, device, category),
            DType::BF16 => Self::from_host(OP, host_copy(OP, &shape, data, bf16::from_f64)?, shape, device, category),
            DType::F16 => Self::from_host(OP, host_copy(OP, &shape, data, f16::from_f64)?, shape, device, category),
        }
    }

    /// Rounds f32 values to `dtype` and places them on `device`.
    pub fn from_f32(data: &[f32], shape: impl Into<Shape>, dtype: DType, device: &Device, category: MemoryCategory) -> Result<Tensor> {
        const OP: &str = "Tensor::from_f32";
        let shape = shape.into();
        match dtype {
            DType::F32 => Self::from_host(OP, host_copy(OP, &shape, data, |v| v)?, shape, device, category),
            DType::BF16 => Self::from_host(OP, host_copy(OP, &shape, data, bf16::from_f32)?, shape, device, category),
            DType::F16 => Self::from_host(OP, host_copy(OP, &shape, data, f16::from_f32)?, shape, device, category),
        }
    }

    fn assemble(shape: Shape, dtype: DType, device: &Device, storage: Storage, category: MemoryCategory) -> Tensor {
        let bytes = shape.numel() * dtype.size_in_bytes();
        let charge = device.tracker().charge(category, bytes);
        Tensor { shape, dtype, device: device.clone(), storage, charge }
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    pub fn numel(&self) -> usize {
        self.shape.numel()
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn category(&self) -> MemoryCategory {
        self.charge.category()
    }

    /// Bytes of element storage (what the tracker is charged).
    pub fn size_in_bytes(&self) -> usize {
        self.charge.bytes()
    }

    /// Moves this tensor's bytes to another accounting category.
    pub fn set_category(&mut self, category: MemoryCategory) {
        self.charge.recategorize(category);
    }

    /// The same elements under another shape with the same element count.
    pub fn reshape(mut self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape.checked_numel() != Some(self.numel()) {
            let count = shape.checked_numel().map_or("more than usize::MAX".to_string(), |n| n.to_string());
            return Err(Error::ShapeMismatch { op: "Tensor::reshape", what: "new shape", expected: format!("{} elements", self.numel()), got: format!("{shape} ({count} elements)") });
        }
        self.shape = shape;
        Ok(self)
    }

    /// The host elements, if this tensor is on the CPU and holds `T`.
    pub fn as_slice<T: Element>(&self) -> Result<&[T]> {
        self.expect_dtype("Tensor::as_slice", "tensor", T::DTYPE)?;
        match &self.storage {
            Storage::Cpu(s) => Ok(T::cpu_slice(s).expect("dtype checked above")),
            #[cfg(feature = "cuda")]
            Storage::Cuda(_) => Err(not_on(self.device.kind(), "Tensor::as_slice", "cpu")),
        }
    }

    /// The host elements, mutably, if this tensor is on the CPU and holds `T`.
    pub fn as_mut_slice<T: Element>(&mut self) -> Result<&mut [T]> {
        self.expect_dtype("Tensor::as_mut_slice", "tensor", T::DTYPE)?;
        #[cfg(feature = "cuda")]
        let kind = self.device.kind();
        match &mut self.storage {
            Storage::Cpu(s) => Ok(T::cpu_slice_mut(s).expect("dtype checked above")),
            #[cfg(feature = "cuda")]
            Storage::Cuda(_) => Err(not_on(kind, "Tensor::as_mut_slice", "cpu")),
        }
    }

    /// The device buffer, if this tensor is on a CUDA device and holds `T`. It may be longer than
    /// [`numel`](Self::numel) (an empty tensor keeps a one-element buffer).
    #[cfg(feature = "cuda")]
    pub fn cuda_slice<T: Element>(&self) -> Result<&cudarc::driver::CudaSlice<T>> {
        self.expect_dtype("Tensor::cuda_slice", "tensor", T::DTYPE)?;
        match &self.storage {
            Storage::Cuda(s) => Ok(T::cuda_slice(s).expect("dtype checked above")),
            Storage::Cpu(_) => Err(not_on(self.device.kind(), "Tensor::cuda_slice", "cuda")),
        }
    }

    /// The device buffer, mutably.
    #[cfg(feature = "cuda")]
    pub fn cuda_slice_mut<T: Element>(&mut self) -> Result<&mut cudarc::driver::CudaSlice<T>> {
        self.expect_dtype("Tensor::cuda_slice_mut", "tensor", T::DTYPE)?;
        let kind = self.device.kind();
        match &mut self.storage {
            Storage::Cuda(s) => Ok(T::cuda_slice_mut(s).expect("dtype checked above")),
            Storage::Cpu(_) => Err(not_on(kind, "Tensor::cuda_slice_mut", "cuda")),
        }
    }

    /// The raw device address of this tensor's buffer, for a kernel's parameter struct, whatever
    /// the dtype. The buffer stays valid while the tensor lives; all work is on the device's one
    /// stream, so a kernel queued with this address is ordered before the buffer's release.
    #[cfg(feature = "cuda")]
    pub fn device_ptr(&self) -> Result<*const std::ffi::c_void> {
        use cudarc::driver::DevicePtr;
        let d = self.device.as_cuda("Tensor::device_ptr")?;
        let stream = d.stream();
        let ptr = match &self.storage {
            Storage::Cuda(CudaStorage::F32(s)) => s.device_ptr(stream).0,
            Storage::Cuda(CudaStorage::BF16(s)) => s.device_ptr(stream).0,
            Storage::Cuda(CudaStorage::F16(s)) => s.device_ptr(stream).0,
            Storage::Cpu(_) => return Err(not_on(self.device.kind(), "Tensor::device_ptr", "cuda")),
        };
        Ok(ptr as usize as *const std::ffi::c_void)
    }

    /// The raw device address of this tensor's buffer, for a kernel that writes it.
    #[cfg(feature = "cuda")]
    pub fn device_ptr_mut(&mut self) -> Result<*mut std::ffi::c_void> {
        Ok(self.device_ptr()? as *mut std::ffi::c_void)
    }

    /// The elements as `T`, copied to the host; the dtype must match.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        self.expect_dtype("Tensor::to_vec", "tensor", T::DTYPE)?;
        match &self.storage {
            Storage::Cpu(s) => Ok(T::cpu_slice(s).expect("dtype checked above").to_vec()),
            #[cfg(feature = "cuda")]
            Storage::Cuda(_) => {
                let mut host = vec![T::default(); self.numel()];
                self.download_into("Tensor::to_vec", &mut host)?;
                Ok(host)
            }
        }
    }

    /// A CUDA tensor's elements (the dtype checked by the caller) copied into `host` (`numel`
    /// long), in one transfer of exactly those elements: the device buffer may hold more (an
    /// empty tensor's holds one), and a zero-length copy is not made.
    #[cfg(feature = "cuda")]
    fn download_into<T: Element>(&self, op: &'static str, host: &mut [T]) -> Result<()> {
        let Storage::Cuda(s) = &self.storage else { return Err(not_on(self.device.kind(), op, "cuda")) };
        debug_assert_eq!(host.len(), self.numel());
        if host.is_empty() {
            return Ok(());
        }
        let d = self.device.as_cuda(op)?;
        let slice = T::cuda_slice(s).expect("the dtype's storage");
        d.stream().memcpy_dtoh(&slice.slice(..host.len()), host).map_err(|e| Error::cuda(op, e))
    }

    /// The elements widened to f64, copied to the host: what tests compare against references.
    pub fn to_f64_vec(&self) -> Result<Vec<f64>> {
        fn widen<T: Element>(t: &Tensor) -> Result<Vec<f64>> {
            Ok(t.to_vec::<T>()?.into_iter().map(T::to_f64).collect())
        }
        match self.dtype {
            DType::F32 => widen::<f32>(self),
            DType::BF16 => widen::<bf16>(self),
            DType::F16 => widen::<f16>(self),
        }
    }

    /// The elements widened to f32, copied to the host.
    pub fn to_f32_vec(&self) -> Result<Vec<f32>> {
        Ok(self.to_f64_vec()?.into_iter().map(|v| v as f32).collect())
    }

    /// A copy on `device`, charged to its tracker under this tensor's category. On the same
    /// device (kind and ordinal) it is one device-side copy, never a trip through the host.
    pub fn to_device(&self, device: &Device) -> Result<Tensor> {
        if device.kind() == self.device.kind() {
            let mut out = Tensor::for_overwrite(self.shape.clone(), self.dtype, device, self.category())?;
            out.copy_range_from(0, self, 0, self.numel())?;
            return Ok(out);
        }
        const OP: &str = "Tensor::to_device";
        // One copy each way: uploaded from where the host elements lie, downloaded straight
        // into the new tensor's own (aligned) storage.
        fn copy<T: Element>(t: &Tensor, device: &Device) -> Result<Tensor> {
            match &t.storage {
                Storage::Cpu(s) => Tensor::from_host_slice(OP, T::cpu_slice(s).expect("the dtype's storage"), t.shape.clone(), device, t.category()),
                #[cfg(feature = "cuda")]
                Storage::Cuda(_) => {
                    let mut host = zeroed_host::<T>(OP, &t.shape, t.numel())?;
                    t.download_into(OP, &mut host)?;
                    Tensor::from_host(OP, host, t.shape.clone(), device, t.category())
                }
            }
        }
        match self.dtype {
            DType::F32 => copy::<f32>(self, device),
            DType::BF16 => copy::<bf16>(self, device),
            DType::F16 => copy::<f16>(self, device),
        }
    }

    /// A copy in `dtype` on the same device (rounded to nearest even). On CUDA this goes through
    /// the host: it is for loading and tests, not for hot paths.
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        Tensor::from_f64(&self.to_f64_vec()?, self.shape.clone(), dtype, &self.device, self.category())
    }

    /// Copies elements `src_start .. src_start + len` of `src` (flat, row-major) over elements
    /// `dst_start ..` of this tensor: same dtype, same device (a device-to-device copy on CUDA,
    /// queued on the device's stream). How caches write new positions into their buffers.
    pub fn copy_range_from(&mut self, dst_start: usize, src: &Tensor, src_start: usize, len: usize) -> Result<()> {
        const OP: &str = "Tensor::copy_range_from";
        src.expect_dtype(OP, "src", self.dtype)?;
        src.expect_device_of(OP, "src", self)?;
        let fits = |start: usize, numel: usize| start.checked_add(len).is_some_and(|end| end <= numel);
        if !fits(src_start, src.numel()) || !fits(dst_start, self.numel()) {
            return Err(Error::invalid(
                OP,
                "range",
                format!("{len} elements from {src_start} of {} into {dst_start} of {}", src.numel(), self.numel()),
            ));
        }
        if len == 0 {
            return Ok(());
        }
        fn copy<T: Element>(dst: &mut Tensor, dst_start: usize, src: &Tensor, src_start: usize, len: usize) -> Result<()> {
            match (&mut dst.storage, &src.storage) {
                (Storage::Cpu(d), Storage::Cpu(s)) => {
                    let (d, s) = (T::cpu_slice_mut(d).expect("dtype checked above"), T::cpu_slice(s).expect("dtype checked above"));
                    d[dst_start..dst_start + len].copy_from_slice(&s[src_start..src_start + len]);
                    Ok(())
                }
                #[cfg(feature = "cuda")]
                (Storage::Cuda(d), Storage::Cuda(s)) => {
                    let stream = dst.device.as_cuda(OP)?.stream().clone();
                    let s = T::cuda_slice(s).expect("dtype checked above").slice(src_start..src_start + len);
                    let mut d = T::cuda_slice_mut(d).expect("dtype checked above").slice_mut(dst_start..dst_start + len);
                    stream.memcpy_dtod(&s, &mut d).map_err(|e| Error::cuda(OP, e))
                }
                #[cfg(feature = "cuda")]
                _ => Err(Error::DeviceMismatch { op: OP, what: "src", expected: dst.device.to_string(), got: src.device.to_string() }),
            }
        }
        match self.dtype {
            DType::F32 => copy::<f32>(self, dst_start, src, src_start, len),
            DType::BF16 => copy::<bf16>(self, dst_start, src, src_start, len),
            DType::F16 => copy::<f16>(self, dst_start, src, src_start, len),
        }
    }

    // ---- checks the public APIs run before any work -----------------------------------------

    /// Errors unless this tensor holds `dtype`.
    pub fn expect_dtype(&self, op: &'static str, what: &'static str, dtype: DType) -> Result<()> {
        if self.dtype == dtype {
            Ok(())
        } else {
            Err(Error::DTypeMismatch { op, what, expected: dtype, got: self.dtype })
        }
    }

    /// Errors unless this tensor has exactly `dims`.
    pub fn expect_dims(&self, op: &'static str, what: &'static str, dims: &[usize]) -> Result<()> {
        if self.dims() == dims {
            Ok(())
        } else {
            Err(Error::ShapeMismatch { op, what, expected: Shape::from(dims).to_string(), got: self.shape.to_string() })
        }
    }

    /// Errors unless this tensor is on the same device as `other` (same kind and ordinal).
    pub fn expect_device_of(&self, op: &'static str, what: &'static str, other: &Tensor) -> Result<()> {
        if self.device.kind() == other.device.kind() {
            Ok(())
        } else {
            Err(Error::DeviceMismatch { op, what, expected: other.device.to_string(), got: self.device.to_string() })
        }
    }

    /// Errors if this tensor has no elements or no dimensions.
    pub fn expect_nonempty(&self, op: &'static str, what: &'static str) -> Result<()> {
        if self.numel() == 0 || self.shape.rank() == 0 {
            Err(Error::Empty { op, what, shape: self.shape.to_string() })
        } else {
            Ok(())
        }
    }
}
