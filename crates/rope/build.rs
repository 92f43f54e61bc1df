fn main() {
    yoco_build::Kernels::new("rope").build_or_exit();
}
