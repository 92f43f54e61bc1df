//! The root crate's build script. The root crate has no kernels of its own yet (the model's
//! embedding, RoPE and argmax kernels will be compiled here with yoco-build); today it records
//! what built the binary, so that every report the harness writes can say so.

use std::process::Command;

fn main() {
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
