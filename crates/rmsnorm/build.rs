fn main() {
    yoco_build::Kernels::new("rmsnorm").build_or_exit();
}
