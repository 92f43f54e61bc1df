fn main() {
    yoco_build::Kernels::new("gated_retention").build_or_exit();
}
