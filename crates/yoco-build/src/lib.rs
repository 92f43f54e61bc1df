//! yoco-build: what every crate with CUDA kernels calls from its `build.rs`.
//!
//! ```no_run
//! // crates/rmsnorm/build.rs
//! fn main() {
//!     yoco_build::Kernels::new("rmsnorm").build_or_exit();
//! }
//! ```
//!
//! With the crate's `cuda` feature off (the default) this only prints `rerun-if-changed` lines
//! and needs nothing. With it on, for `kernels/<name>.cu` it:
//! 1. finds nvcc (`NVCC`, `PATH`, `CUDA_HOME`, then the venv of `scripts/setup-cuda.sh`);
//! 2. compiles an sm_90a cubin (`-Xptxas -v`, whose register and spill report it parses: spills
//!    are warned about, and are an error under `YOCO_DENY_SPILLS=1`) and a PTX for JIT elsewhere;
//! 3. runs bindgen on `kernels/include/<name>.h`, the C header of the kernel's parameter
//!    structs, so Rust and CUDA share one definition of every struct;
//! 4. writes `$OUT_DIR/<name>_kernels.rs` with `static MODULE: yoco_core::cuda::KernelModule`
//!    (both images embedded) and one constant per kernel entry found in the PTX, so a renamed or
//!    missing kernel is a Rust compile error, not a run-time lookup failure.
//!
//! Every failure is a [`BuildError`] with a message that says what to do; nothing panics.

// The crate doc's example is a whole build.rs, main and all.
#![allow(clippy::needless_doctest_main)]

use std::env;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

mod nvcc;
mod ptxas;

pub use ptxas::KernelResources;

/// A build-script failure, printed as one clear message by [`Kernels::build_or_exit`].
#[derive(Debug)]
pub struct BuildError(pub String);

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}

/// The kernels of one module, `kernels/<name>.cu` with its header `kernels/include/<name>.h`.
#[derive(Clone, Debug)]
pub struct Kernels {
    name: String,
    ptx_arch: String,
    with_header: bool,
}

/// The arch of the cubin: Hopper (H100/H200) with its architecture-specific features.
pub const CUBIN_ARCH: &str = "sm_90a";

impl Kernels {
    /// The module `kernels/<name>.cu`.
    pub fn new(name: &str) -> Self {
        Kernels { name: name.to_string(), ptx_arch: "compute_90".to_string(), with_header: true }
    }

    /// The virtual arch of the embedded PTX (default `compute_90`, which any driver for a Hopper
    /// or newer GPU can JIT). A module whose every kernel uses sm_90a-only instructions (wgmma,
    /// TMA) would say `compute_90a`; one with a few such kernels can instead keep them out of the
    /// compute_90 PTX behind `__CUDA_ARCH_FEAT_SM90_ALL`, as `kernels/attention.cu` does.
    pub fn ptx_arch(mut self, arch: &str) -> Self {
        self.ptx_arch = arch.to_string();
        self
    }

    /// For a module with no parameter header (no bindgen step).
    pub fn without_header(mut self) -> Self {
        self.with_header = false;
        self
    }

    /// [`build`](Self::build), printing the error and exiting with status 1 on failure.
    pub fn build_or_exit(&self) {
        if let Err(e) = self.build() {
            eprintln!("error: building CUDA kernels `{}`: {e}", self.name);
            std::process::exit(1);
        }
    }

    /// Compiles and embeds the module when the crate's `cuda` feature is on; otherwise only
    /// declares what the build depends on.
    pub fn build(&self) -> Result<(), BuildError> {
        let root = workspace_root()?;
        let cu = root.join("kernels").join(format!("{}.cu", self.name));
        let include = root.join("kernels").join("include");
        println!("cargo:rerun-if-changed={}", cu.display());
        println!("cargo:rerun-if-changed={}", include.display());
        for var in ["NVCC", "CUDA_HOME", "PATH", "YOCO_CUDA_VENV", "YOCO_DENY_SPILLS", "YOCO_PTXAS_REPORT"] {
            println!("cargo:rerun-if-env-changed={var}");
        }
        if env::var_os("CARGO_FEATURE_CUDA").is_none() {
            return Ok(());
        }
        if !cu.is_file() {
            return Err(BuildError(format!("{} does not exist", cu.display())));
        }
        let out = PathBuf::from(env::var("OUT_DIR").map_err(|_| BuildError("OUT_DIR is not set: call from a build script".into()))?);
        let nvcc = nvcc::find(&root)?;

        let cubin = out.join(format!("{}.cubin", self.name));
        let report = nvcc::compile(&nvcc, &cu, &include, &["-cubin", &format!("-gencode=arch=compute_90a,code={CUBIN_ARCH}"), "-Xptxas", "-v"], &cubin)?;
        let resources = ptxas::parse(&report);
        self.report_resources(&out, &report, &resources)?;

        let ptx = out.join(format!("{}.ptx", self.name));
        nvcc::compile(&nvcc, &cu, &include, &["-ptx", &format!("-arch={}", self.ptx_arch)], &ptx)?;
        let ptx_text = fs::read_to_string(&ptx).map_err(|e| BuildError(format!("reading {}: {e}", ptx.display())))?;
        let entries = ptx_entries(&ptx_text);
        if entries.is_empty() {
            return Err(BuildError(format!("{} defines no kernel entry (extern \"C\" __global__)", cu.display())));
        }

        if self.with_header {
            self.bindgen(&include, &out)?;
        }
        let rs = out.join(format!("{}_kernels.rs", self.name));
        fs::write(&rs, self.module_source(&cubin, &ptx, &entries)).map_err(|e| BuildError(format!("writing {}: {e}", rs.display())))?;
        Ok(())
    }

    fn report_resources(&self, out: &Path, report: &str, resources: &[KernelResources]) -> Result<(), BuildError> {
        let path = out.join(format!("{}.ptxas.txt", self.name));
        fs::write(&path, report).map_err(|e| BuildError(format!("writing {}: {e}", path.display())))?;
        let verbose = env::var_os("YOCO_PTXAS_REPORT").is_some();
        let deny = env::var("YOCO_DENY_SPILLS").map(|v| v == "1").unwrap_or(false);
        let mut spilling = Vec::new();
        for r in resources {
            if verbose || r.spills() {
                println!("cargo:warning=ptxas {CUBIN_ARCH} {r}");
            }
            if r.spills() {
                spilling.push(r.kernel.clone());
            }
        }
        if deny && !spilling.is_empty() {
            return Err(BuildError(format!("kernels spill registers (YOCO_DENY_SPILLS=1): {}; see {}", spilling.join(", "), path.display())));
        }
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn bindgen(&self, include: &Path, out: &Path) -> Result<(), BuildError> {
        let header = include.join(format!("{}.h", self.name));
        if !header.is_file() {
            return Err(BuildError(format!("{} does not exist (or use Kernels::without_header)", header.display())));
        }
        // bindgen panics when libclang cannot be loaded; turn that into the set-up hint.
        let header_str = header.display().to_string();
        let generated = std::panic::catch_unwind(|| {
            bindgen::Builder::default()
                .header(header_str.clone())
                .clang_arg(format!("-I{}", include.display()))
                .allowlist_file(regex_escape(&header_str))
                .derive_default(true)
                .derive_debug(true)
                .layout_tests(true)
                .use_core()
                .generate()
        })
        .map_err(|_| BuildError("bindgen could not load libclang: run scripts/setup-cuda.sh (it installs libclang-dev)".into()))?
        .map_err(|e| BuildError(format!("bindgen on {}: {e}", header.display())))?;
        let path = out.join(format!("{}_params.rs", self.name));
        generated.write_to_file(&path).map_err(|e| BuildError(format!("writing {}: {e}", path.display())))
    }

    #[cfg(not(feature = "cuda"))]
    fn bindgen(&self, _include: &Path, _out: &Path) -> Result<(), BuildError> {
        Err(BuildError(
            "yoco-build was built without its `cuda` feature, so it cannot run bindgen: add \"yoco-build/cuda\" to the crate's `cuda` feature".into(),
        ))
    }

    fn module_source(&self, cubin: &Path, ptx: &Path, entries: &[String]) -> String {
        let mut s = String::new();
        s.push_str(&format!("// Generated by yoco-build from kernels/{}.cu. Do not edit.\n\n", self.name));
        s.push_str(&format!(
            "/// The compiled `kernels/{name}.cu`: {CUBIN_ARCH} cubin and {ptx_arch} PTX.\n\
             pub static MODULE: ::yoco_core::cuda::KernelModule = ::yoco_core::cuda::KernelModule {{\n    \
             name: {name:?},\n    cubin: include_bytes!({cubin:?}),\n    ptx: include_str!({ptx:?}),\n    entries: &[{list}],\n}};\n\n",
            name = self.name,
            ptx_arch = self.ptx_arch,
            cubin = cubin.display().to_string(),
            ptx = ptx.display().to_string(),
            list = entries.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>().join(", "),
        ));
        s.push_str("/// The kernel entries of the module, by name.\n#[allow(dead_code)]\npub mod entry {\n");
        for e in entries {
            s.push_str(&format!("    pub const {}: &str = {e:?};\n", e.to_uppercase()));
        }
        s.push_str("}\n");
        s
    }
}

/// The directory holding `kernels/`: the crate's own, or the nearest ancestor's.
fn workspace_root() -> Result<PathBuf, BuildError> {
    let manifest = env::var("CARGO_MANIFEST_DIR").map_err(|_| BuildError("CARGO_MANIFEST_DIR is not set: call from a build script".into()))?;
    let mut dir = PathBuf::from(manifest);
    loop {
        if dir.join("kernels").is_dir() {
            return Ok(dir);
        }
        if !dir.pop() {
            return Err(BuildError("no kernels/ directory above the crate".into()));
        }
    }
}

/// Names of the `.entry` functions in PTX text, in order.
pub fn ptx_entries(ptx: &str) -> Vec<String> {
    ptx.lines()
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix(".visible .entry ").or_else(|| line.trim_start().strip_prefix(".entry "))?;
            let end = rest.find(|c: char| c == '(' || c.is_whitespace()).unwrap_or(rest.len());
            Some(rest[..end].to_string())
        })
        .collect()
}

#[cfg(feature = "cuda")]
fn regex_escape(s: &str) -> String {
    s.chars().fold(String::new(), |mut out, c| {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::ptx_entries;

    #[test]
    fn finds_entries() {
        let ptx = ".version 9.0\n.visible .entry rmsnorm_f32(\n\t.param .align 8 .b8 p[48]\n)\n.entry swiglu_bf16 (\n";
        assert_eq!(ptx_entries(ptx), vec!["rmsnorm_f32", "swiglu_bf16"]);
    }
}
