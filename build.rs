//! The root crate's build script: compiles the root crate's own kernels (`kernels/model.cu`:
//! embedding, the gated-retention decay) with yoco-build, and records what built the binary so
//! that every report the harness writes can say so.

use std::process::Command;

fn main() {
    yoco_build::Kernels::new("model").build_or_exit();
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    let profile = std::env::var("PROFILE").unwrap_or_default();
    let cuda = std::env::var_os("CARGO_FEATURE_CUDA").is_some();
    println!("cargo:rustc-env=YOCO_BUILD_COMMIT={commit}{}", if dirty { "-dirty" } else { "" });
    println!("cargo:rustc-env=YOCO_BUILD_PROFILE={profile}");
    println!("cargo:rustc-env=YOCO_BUILD_CUDA={}", if cuda { "cuda (sm_90a cubin + compute_90 PTX)" } else { "cpu only" });
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/index");
}
