//! The CUDA device: context, the one stream all work goes on, loaded modules, cuBLAS handle.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cudarc::cublas::CudaBlas;
use cudarc::driver::result::mem_pool;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream};

use super::module::KernelModule;
use crate::memory::MemoryTracker;
use crate::{Error, Result};

/// A CUDA device with its primary context and one stream. Cheap to clone (an `Arc`).
///
/// All work goes on one stream, so kernels, copies and cuBLAS calls are ordered without events.
#[derive(Clone)]
pub struct CudaDevice {
    inner: Arc<Inner>,
    tracker: Arc<MemoryTracker>,
}

struct Inner {
    ordinal: usize,
    name: String,
    compute_capability: (i32, i32),
    sms: usize,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    /// Kernels looked up so far, by (module, entry), with the dynamic shared memory each was
    /// allowed: a model's decode step launches a few hundred kernels, and each lookup, attribute
    /// and occupancy query is a driver call on the host, paid again on every launch otherwise.
    functions: Mutex<HashMap<(&'static str, &'static str), LoadedFunction>>,
    /// Resident blocks per SM, by (function handle, threads, dynamic shared memory).
    occupancy: Mutex<HashMap<(usize, u32, usize), usize>>,
    blas: Mutex<Option<Arc<CudaBlas>>>,
}

/// A kernel handle and the most dynamic shared memory it has been allowed so far (0 until its
/// first launch that uses any: without an opt-in a kernel gets 48 KiB less its static shared
/// memory, which differs by kernel, so every size is set explicitly once).
struct LoadedFunction {
    func: CudaFunction,
    dynamic_smem_allowed: usize,
}

impl CudaDevice {
    /// Opens device `ordinal`. `CudaContext::new` panics when libcuda is missing, so its presence
    /// is checked first; every other failure is a [`Error::CudaUnavailable`] with the reason.
    pub fn new(ordinal: usize) -> Result<Self> {
        // SAFETY: only tries to dlopen libcuda; no CUDA call is made.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(Error::CudaUnavailable("no CUDA driver found (libcuda.so could not be loaded)".into()));
        }
        let count = CudaContext::device_count()
            .map_err(|e| Error::CudaUnavailable(format!("the driver could not list devices: {e}")))?;
        if ordinal >= count.max(0) as usize {
            return Err(Error::CudaUnavailable(format!("device {ordinal} requested, {count} present")));
        }
        let ctx = CudaContext::new(ordinal)
            .map_err(|e| Error::CudaUnavailable(format!("could not create a context on device {ordinal}: {e}")))?;
        let name = ctx.name().map_err(|e| Error::cuda("CudaDevice::new", e))?;
        let compute_capability = ctx.compute_capability().map_err(|e| Error::cuda("CudaDevice::new", e))?;
        let sms = ctx
            .attribute(cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(|e| Error::cuda("CudaDevice::new", e))?
            .max(1) as usize;
        let stream = ctx.default_stream();
        keep_freed_memory_pooled(&ctx);
        Ok(CudaDevice {
            inner: Arc::new(Inner {
                ordinal,
                name,
                compute_capability,
                sms,
                ctx,
                stream,
                modules: Mutex::new(HashMap::new()),
                functions: Mutex::new(HashMap::new()),
                occupancy: Mutex::new(HashMap::new()),
                blas: Mutex::new(None),
            }),
            tracker: MemoryTracker::new(),
        })
    }

    pub fn ordinal(&self) -> usize {
        self.inner.ordinal
    }

    /// The card's name as the driver reports it.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The driver's CUDA version (major, minor), e.g. (13, 0); `None` if the driver does not say.
    pub fn driver_version(&self) -> Option<(i32, i32)> {
        let mut version = 0;
        // SAFETY: writes one int; the driver library is loaded (this device was opened through it).
        let ok = unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut version) } == cudarc::driver::sys::CUresult::CUDA_SUCCESS;
        ok.then_some((version / 1000, version % 1000 / 10))
    }

    /// Whether this is the CPU emulator of `emulator/` (it names its device so, in
    /// `emulator/src/driver.cpp`), not a GPU.
    pub fn is_emulated(&self) -> bool {
        self.inner.name.starts_with("yoco CPU emulator")
    }

    pub fn compute_capability(&self) -> (i32, i32) {
        self.inner.compute_capability
    }

    /// Streaming multiprocessors (132 on an H100 SXM or H200).
    pub fn sm_count(&self) -> usize {
        self.inner.sms
    }

    /// Blocks of `func` (`block_threads` threads, `dynamic_smem` bytes of dynamic shared memory
    /// each) the whole GPU holds at once: the driver's occupancy calculator (registers, shared
    /// memory, launch bounds) per SM, times the SMs; at least 1. A grid of equal blocks runs in
    /// ceil(blocks / this) waves, and a last wave that is only partly full runs the GPU partly
    /// idle for as long as a full one: launchers size grids (or cut work) to whole waves.
    /// Asked of the driver once per (kernel, threads, shared memory), then remembered.
    pub fn resident_blocks(&self, func: &CudaFunction, block_threads: u32, dynamic_smem: usize) -> Result<usize> {
        let key = (func.cu_function() as usize, block_threads, dynamic_smem);
        if let Some(&per_sm) = self.inner.occupancy.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(per_sm * self.inner.sms);
        }
        let per_sm = func
            .occupancy_max_active_blocks_per_multiprocessor(block_threads, dynamic_smem, None)
            .map_err(|e| Error::cuda("CudaDevice::resident_blocks", e))?;
        let per_sm = (per_sm as usize).max(1);
        self.inner.occupancy.lock().unwrap_or_else(|p| p.into_inner()).insert(key, per_sm);
        Ok(per_sm * self.inner.sms)
    }

    pub fn context(&self) -> &Arc<CudaContext> {
        &self.inner.ctx
    }

    /// The stream every yoco kernel, copy and GEMM on this device is queued on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.inner.stream
    }

    pub(crate) fn tracker(&self) -> &Arc<MemoryTracker> {
        &self.tracker
    }

    /// Free and total device memory in bytes, from the driver (all processes' allocations).
    pub fn mem_info(&self) -> Result<(usize, usize)> {
        self.inner.ctx.mem_get_info().map_err(|e| Error::cuda("CudaDevice::mem_info", e))
    }

    /// The allocator's own count of this device's memory: `(in use now, most in use since the
    /// last [`reset_pool_peak`](Self::reset_pool_peak))` in bytes, over every allocation yoco makes
    /// (all of them go through the device's stream-ordered pool), independent of the accounting.
    pub fn pool_usage(&self) -> Result<(u64, u64)> {
        use cudarc::driver::sys::CUmemPool_attribute::{CU_MEMPOOL_ATTR_USED_MEM_CURRENT, CU_MEMPOOL_ATTR_USED_MEM_HIGH};
        let pool = self.pool()?;
        let (mut now, mut high) = (0u64, 0u64);
        // SAFETY: a valid pool; both attributes are u64 (cuuint64_t).
        unsafe {
            mem_pool::get_attribute(pool, CU_MEMPOOL_ATTR_USED_MEM_CURRENT, (&mut now as *mut u64).cast()).map_err(|e| Error::cuda("CudaDevice::pool_usage", e))?;
            mem_pool::get_attribute(pool, CU_MEMPOOL_ATTR_USED_MEM_HIGH, (&mut high as *mut u64).cast()).map_err(|e| Error::cuda("CudaDevice::pool_usage", e))?;
        }
        Ok((now, high))
    }

    /// Starts a new high-water mark of [`pool_usage`](Self::pool_usage) from the bytes in use now.
    pub fn reset_pool_peak(&self) -> Result<()> {
        let pool = self.pool()?;
        let mut zero = 0u64;
        // SAFETY: a valid pool; the attribute is a u64 (cuuint64_t), and 0 resets it to the current use.
        unsafe { mem_pool::set_attribute(pool, cudarc::driver::sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH, (&mut zero as *mut u64).cast()) }
            .map_err(|e| Error::cuda("CudaDevice::reset_pool_peak", e))
    }

    fn pool(&self) -> Result<cudarc::driver::sys::CUmemoryPool> {
        self.inner.ctx.bind_to_thread().map_err(|e| Error::cuda("CudaDevice::pool", e))?;
        // SAFETY: the context's own device.
        unsafe { cudarc::driver::result::device::get_default_mem_pool(self.inner.ctx.cu_device()) }.map_err(|e| Error::cuda("CudaDevice::pool", e))
    }

    pub fn synchronize(&self) -> Result<()> {
        self.inner.stream.synchronize().map_err(|e| Error::cuda("CudaDevice::synchronize", e))
    }

    /// The kernel `entry` of `module`, loading the module on first use. The cubin built for
    /// sm_90a is used on compute capability 9.0; anywhere else, or if the driver refuses the
    /// cubin, the embedded PTX is JIT-compiled. Looked up once, then remembered.
    pub fn function(&self, module: &'static KernelModule, entry: &'static str) -> Result<CudaFunction> {
        self.function_with_dynamic_smem(module, entry, 0)
    }

    /// [`function`](Self::function), allowed to use `dynamic_smem` bytes of dynamic shared
    /// memory (its attribute set, once per new maximum: past 48 KiB less its static shared
    /// memory a kernel must opt in).
    pub fn function_with_dynamic_smem(&self, module: &'static KernelModule, entry: &'static str, dynamic_smem: usize) -> Result<CudaFunction> {
        use cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES;
        let mut functions = self.inner.functions.lock().unwrap_or_else(|p| p.into_inner());
        let loaded = match functions.entry((module.name, entry)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(LoadedFunction { func: self.load_function(module, entry)?, dynamic_smem_allowed: 0 }),
        };
        if dynamic_smem > loaded.dynamic_smem_allowed {
            let bytes = i32::try_from(dynamic_smem).map_err(|_| Error::cuda("CudaDevice::function", format!("{entry}: {dynamic_smem} bytes of shared memory")))?;
            loaded
                .func
                .set_attribute(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes)
                .map_err(|e| Error::cuda("CudaDevice::function", format!("{dynamic_smem} bytes of shared memory for {entry}: {e}")))?;
            loaded.dynamic_smem_allowed = dynamic_smem;
        }
        Ok(loaded.func.clone())
    }

    /// Loads `entry` of `module` (the module too, on first use).
    fn load_function(&self, module: &'static KernelModule, entry: &'static str) -> Result<CudaFunction> {
        if !module.entries.contains(&entry) {
            return Err(Error::Cuda {
                op: "CudaDevice::function",
                message: format!("module {} has no kernel {entry} (it has {:?})", module.name, module.entries),
            });
        }
        let loaded = {
            let mut modules = self.inner.modules.lock().unwrap_or_else(|p| p.into_inner());
            match modules.get(module.name) {
                Some(m) => Arc::clone(m),
                None => {
                    let m = module.load(&self.inner.ctx, self.inner.compute_capability)?;
                    modules.insert(module.name, Arc::clone(&m));
                    m
                }
            }
        };
        loaded.load_function(entry).map_err(|e| Error::cuda("CudaDevice::function", format!("{entry}: {e}")))
    }

    /// The cuBLAS handle of this device's stream, created on first use.
    pub fn blas(&self) -> Result<Arc<CudaBlas>> {
        let mut blas = self.inner.blas.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = blas.as_ref() {
            return Ok(Arc::clone(b));
        }
        // SAFETY: only tries to dlopen libcublas; CudaBlas::new panics when it is missing.
        if !unsafe { cudarc::cublas::sys::is_culib_present() } {
            return Err(Error::CudaUnavailable("cuBLAS not found (libcublas.so could not be loaded)".into()));
        }
        let b = Arc::new(CudaBlas::new(Arc::clone(&self.inner.stream)).map_err(|e| Error::cuda("cublas create", e))?);
        *blas = Some(Arc::clone(&b));
        Ok(b)
    }
}

/// Tells the device's stream-ordered pool to keep freed memory for reuse instead of returning it
/// to the driver at every synchronisation (its default): a decode step allocates and frees its
/// activations each token, and re-mapping them each time would cost more than the step's kernels.
/// A device without pools (or a refusal) leaves the default: only speed depends on it.
fn keep_freed_memory_pooled(ctx: &CudaContext) {
    // SAFETY: the context's own device; the attribute is a u64 (cuuint64_t).
    unsafe {
        if let Ok(pool) = cudarc::driver::result::device::get_default_mem_pool(ctx.cu_device()) {
            let mut keep_all = u64::MAX;
            let _ = mem_pool::set_attribute(pool, cudarc::driver::sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, (&mut keep_all as *mut u64).cast());
        }
    }
}

impl std::fmt::Debug for CudaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cuda:{} ({})", self.inner.ordinal, self.inner.name)
    }
}
