//! Kernel modules embedded in the binary by yoco-build.

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaModule};
use cudarc::nvrtc::Ptx;

use crate::{Error, Result};

/// One compiled `kernels/<name>.cu`: an sm_90a cubin, portable PTX, and the kernel entries the
/// build script found in it. Crates do not write this by hand: yoco-build generates a
/// `static MODULE: KernelModule` and one constant per entry, so a kernel renamed in the .cu
/// breaks the Rust build instead of failing at run time.
#[derive(Debug)]
pub struct KernelModule {
    pub name: &'static str,
    pub cubin: &'static [u8],
    pub ptx: &'static str,
    pub entries: &'static [&'static str],
}

impl KernelModule {
    pub(crate) fn load(&'static self, ctx: &Arc<CudaContext>, cc: (i32, i32)) -> Result<Arc<CudaModule>> {
        // Why the cubin was not used, kept for the message if the PTX fails too: on a GPU
        // machine both reasons are what the one log line has to say.
        let ptx_fallback = |cubin: String| {
            ctx.load_module(Ptx::from_src(self.ptx))
                .map_err(|e| Error::cuda("load kernel module", format!("{} (PTX JIT): {e}; cubin: {cubin}", self.name)))
        };
        if cc == (9, 0) {
            match ctx.load_module(Ptx::from_binary(self.cubin.to_vec())) {
                Ok(m) => return Ok(m),
                Err(e) => return ptx_fallback(format!("refused ({e})")),
            }
        }
        ptx_fallback(format!("not tried (built for sm_90a, device is sm_{}{})", cc.0, cc.1))
    }
}
