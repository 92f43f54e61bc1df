fn main() {
    yoco_build::Kernels::new("swiglu").build_or_exit();
}
