//! Finding and running nvcc.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::BuildError;

const SETUP_HINT: &str = "run scripts/setup-cuda.sh (it installs nvcc 13.0 into .venv-cuda), or set NVCC or CUDA_HOME";

/// nvcc from, in order: `NVCC`, `PATH`, `CUDA_HOME/bin`, the set-up script's venv
/// (`YOCO_CUDA_VENV` or `<root>/.venv-cuda`).
pub fn find(root: &Path) -> Result<PathBuf, BuildError> {
    if let Some(p) = env::var_os("NVCC") {
        let p = PathBuf::from(p);
        return if p.is_file() { Ok(p) } else { Err(BuildError(format!("NVCC={} is not a file", p.display()))) };
    }
    let mut tried = Vec::new();
    if let Some(path) = env::var_os("PATH") {
        for dir in env::split_paths(&path) {
            let p = dir.join("nvcc");
            if p.is_file() {
                return Ok(p);
            }
        }
        tried.push("PATH".to_string());
    }
    if let Some(home) = env::var_os("CUDA_HOME") {
        let p = PathBuf::from(home).join("bin").join("nvcc");
        if p.is_file() {
            return Ok(p);
        }
        tried.push(p.display().to_string());
    }
    let venv = env::var_os("YOCO_CUDA_VENV").map(PathBuf::from).unwrap_or_else(|| root.join(".venv-cuda"));
    if let Ok(lib) = fs::read_dir(venv.join("lib")) {
        for python in lib.flatten() {
            let p = python.path().join("site-packages/nvidia/cu13/bin/nvcc");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    tried.push(venv.display().to_string());
    Err(BuildError(format!("nvcc not found (looked in NVCC, {}): {SETUP_HINT}", tried.join(", "))))
}

/// Compiles `cu` with `mode_args` into `output`; returns nvcc's stderr (the ptxas report).
pub fn compile(nvcc: &Path, cu: &Path, include: &Path, mode_args: &[&str], output: &Path) -> Result<String, BuildError> {
    let mut cmd = Command::new(nvcc);
    cmd.args(mode_args)
        .args(["-O3", "-std=c++17", "-lineinfo", "-Werror", "all-warnings"])
        .arg(format!("-I{}", include.display()))
        .arg("-o")
        .arg(output)
        .arg(cu);
    // The pip-installed nvcc finds its cicc, ptxas and headers relative to itself.
    let out = cmd.output().map_err(|e| BuildError(format!("could not run {}: {e}; {SETUP_HINT}", nvcc.display())))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(BuildError(format!("nvcc failed on {} ({}):\n{stderr}", cu.display(), mode_args.join(" "))));
    }
    Ok(stderr)
}
