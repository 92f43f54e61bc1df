fn main() {
    yoco_build::Kernels::new("attention").build_or_exit();
}
