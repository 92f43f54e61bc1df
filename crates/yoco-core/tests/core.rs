//! yoco-core on every device this build and machine have: tensors round-trip through every
//! dtype, constructors and views refuse bad input, and the accounting sees every byte.

use yoco_core::testing::test_devices;
use yoco_core::{DType, Device, Error, MemoryCategory, Tensor};

#[test]
fn tensors_round_trip_through_every_dtype() {
    for device in test_devices("tensors_round_trip_through_every_dtype") {
        // Values exactly representable in every dtype survive unchanged.
        let vals = [0.0, 1.0, -2.5, 0.125, 1024.0, -0.75];
        for dtype in DType::ALL {
            let t = Tensor::from_f64(&vals, [2, 3], dtype, &device, MemoryCategory::Activations).unwrap();
            assert_eq!(t.dims(), &[2, 3]);
            assert_eq!(t.to_f64_vec().unwrap(), vals);
            assert_eq!(t.to_device(&Device::cpu()).unwrap().to_f64_vec().unwrap(), vals);
            let host = Tensor::from_f64(&vals, [2, 3], dtype, &Device::cpu(), MemoryCategory::Activations).unwrap();
            assert_eq!(host.to_device(&device).unwrap().to_f64_vec().unwrap(), vals);
            // An empty tensor travels both ways too (the driver refuses a zero-length copy).
            let empty = Tensor::zeros([0, 3], dtype, &Device::cpu(), MemoryCategory::Activations).unwrap();
            let there = empty.to_device(&device).unwrap();
            assert_eq!((there.dims(), there.to_device(&Device::cpu()).unwrap().numel()), (&[0, 3][..], 0));
            for other in DType::ALL {
                assert_eq!(t.to_dtype(other).unwrap().to_f64_vec().unwrap(), vals, "{dtype} -> {other} on {device}");
            }
        }
        // Rounding is to nearest: 1 + 2^-9 is below bf16's half-ulp at 1 and rounds down.
        let t = Tensor::from_f64(&[1.0 + 2f64.powi(-9)], [1], DType::BF16, &device, MemoryCategory::Activations).unwrap();
        assert_eq!(t.to_f64_vec().unwrap(), [1.0]);
    }
}

#[test]
fn bad_constructions_are_typed_errors() {
    let cpu = Device::cpu();
    let err = Tensor::from_vec(vec![1.0f32; 5], [2, 3], &cpu, MemoryCategory::Weights).unwrap_err();
    assert!(matches!(err, Error::ElementCount { len: 5, expected: 6, .. }), "{err}");
    let t = Tensor::from_vec(vec![1.0f32; 6], [2, 3], &cpu, MemoryCategory::Weights).unwrap();
    assert!(matches!(t.as_slice::<yoco_core::half::bf16>(), Err(Error::DTypeMismatch { .. })));
    assert!(matches!(t.reshape([4, 2]), Err(Error::ShapeMismatch { .. })));
    assert!(matches!(Device::parse("tpu"), Err(Error::InvalidArgument { .. })));
    // Shapes whose element count overflows, or whose bytes no allocator can give: errors, not a
    // wrapped count or an aborted process.
    let huge = [usize::MAX / 2 + 2, 2];
    assert!(matches!(Tensor::from_vec(vec![1.0f32; 2], huge, &cpu, MemoryCategory::Weights), Err(Error::ElementCount { .. })));
    assert!(matches!(Tensor::zeros(huge, DType::F32, &cpu, MemoryCategory::Weights), Err(Error::OutOfMemory { .. })));
    assert!(matches!(Tensor::zeros([1 << 40, 1 << 20], DType::F32, &cpu, MemoryCategory::Weights), Err(Error::OutOfMemory { .. })));
    let t = Tensor::from_vec(vec![1.0f32; 6], [2, 3], &cpu, MemoryCategory::Weights).unwrap();
    assert!(matches!(t.reshape(huge), Err(Error::ShapeMismatch { .. })));
}

#[test]
fn matrix_products_refuse_sizes_that_would_wrap() {
    use yoco_core::matmul::{gemm_serial, matmul_nt, MatMut, MatRef};
    // m·k, n·k and m·n all wrap to 0 in 64 bits: the empty slices must not be accepted for them.
    assert!(matches!(matmul_nt(1 << 32, 1 << 32, 1 << 32, &[], &[], &mut []), Err(Error::ShapeMismatch { .. })));
    // A strided view whose last element's offset wraps around to inside a 3-element buffer.
    let a = [1.0f32; 3];
    let wrapped = MatRef { data: &a, rows: 4, cols: 1, row_stride: 6148914691236517206, col_stride: 1 };
    let (b, mut c) = ([1.0f32; 1], [0.0f32; 4]);
    assert!(gemm_serial(MatMut { data: &mut c, rows: 4, cols: 1 }, wrapped, MatRef::row_major(&b, 1, 1), false).is_err());
}

#[test]
fn every_allocation_is_accounted_by_category() {
    for device in test_devices("every_allocation_is_accounted_by_category") {
        let start = device.memory();
        assert_eq!(start.total_current, 0, "a fresh device starts at zero");
        let w = Tensor::zeros([1024, 16], DType::BF16, &device, MemoryCategory::Weights).unwrap();
        let mut kv = Tensor::zeros([256], DType::F32, &device, MemoryCategory::Activations).unwrap();
        kv.set_category(MemoryCategory::KvCache);
        let a = Tensor::zeros([100, 10], DType::F16, &device, MemoryCategory::Activations).unwrap();
        let s = device.memory();
        assert_eq!(s.current(MemoryCategory::Weights), 1024 * 16 * 2);
        assert_eq!(s.current(MemoryCategory::KvCache), 256 * 4);
        assert_eq!(s.current(MemoryCategory::Activations), 100 * 10 * 2);
        assert_eq!(s.total_current, 32768 + 1024 + 2000);
        drop(a);
        let s = device.memory();
        assert_eq!(s.current(MemoryCategory::Activations), 0);
        assert_eq!(s.peak(MemoryCategory::Activations), 2000);
        assert_eq!(s.total_peak, 32768 + 1024 + 2000);
        // An output allocated for overwriting is charged like any other, and a same-device copy
        // (which allocates one) holds the source's values.
        let out = Tensor::for_overwrite([100, 10], DType::F16, &device, MemoryCategory::Activations).unwrap();
        assert_eq!((out.dims(), out.dtype()), (&[100, 10][..], DType::F16));
        assert_eq!(device.memory().current(MemoryCategory::Activations), 2000);
        drop(out);
        let values: Vec<f64> = (0..256).map(|i| i as f64 - 100.0).collect();
        let src = Tensor::from_f64(&values, [256], DType::F32, &device, MemoryCategory::Activations).unwrap();
        assert_eq!(src.to_device(&device).unwrap().to_f64_vec().unwrap(), values);
        drop(src);
        // A copy elsewhere is charged there, under the same category.
        let cpu = Device::cpu();
        let w_cpu = w.to_device(&cpu).unwrap();
        assert_eq!(cpu.memory().current(MemoryCategory::Weights), 32768);
        drop((w, kv, w_cpu));
        assert_eq!(device.memory().total_current, 0);
        assert_eq!(cpu.memory().total_current, 0);
    }
}

#[test]
fn cuda_without_a_gpu_is_an_error_not_a_panic() {
    // On this machine (no driver) or in a CPU-only build, Device::cuda must return an error
    // saying why; on a GPU machine it opens the device.
    match Device::cuda(0) {
        Ok(d) => assert_eq!(d.kind(), yoco_core::DeviceKind::Cuda(0)),
        Err(e) => assert!(matches!(e, Error::CudaUnavailable(_) | Error::CudaNotCompiled), "{e}"),
    }
    assert!(Device::cuda(10_000).is_err());
}

/// A memory-bound line names the kind of ceiling it is quoted against, and a filtered-out bench
/// (NaN median) gives no rate.
#[test]
fn fraction_lines_name_their_ceiling() {
    use yoco_core::bench::{fraction_line, Bound, Traffic};
    let line = fraction_line("step", 1e-3, Bound::Memory { bytes: 50e6, ceiling_gbs: 100.0, traffic: Traffic::Update });
    assert_eq!(line, "step: 1.000 ms, 50.0 GB/s = 50% of the 100.0 GB/s in-place update ceiling");
    let line = fraction_line("decode", 2e-3, Bound::Memory { bytes: 50e6, ceiling_gbs: 50.0, traffic: Traffic::Read });
    assert!(line.ends_with("25.0 GB/s = 50% of the 50.0 GB/s read ceiling"), "{line}");
    assert_eq!(fraction_line("x", f64::NAN, Bound::Memory { bytes: 1.0, ceiling_gbs: 1.0, traffic: Traffic::Copy }), "x: not run (filtered out)");
}

/// A rate past its ceiling (beyond a ceiling's own 5% spread) is flagged, not quoted as a
/// fraction; one within it is not: in the benches' lines and in the percentages the harness's
/// report quotes.
#[test]
fn rates_past_their_ceiling_are_flagged() {
    use yoco_core::bench::{fraction_line, percent_of_ceiling, Bound, Traffic, PAST_CEILING_NOTE};
    assert_eq!(percent_of_ceiling(74.0, 100.0), "74%");
    assert_eq!(percent_of_ceiling(143.0, 100.0), format!("143%, {PAST_CEILING_NOTE}"));
    let memory = |gbs: f64| fraction_line("m", 1.0, Bound::Memory { bytes: gbs * 1e9, ceiling_gbs: 100.0, traffic: Traffic::Copy });
    let compute = |gflops: f64| fraction_line("c", 1.0, Bound::Compute { flops: gflops * 1e9, ceiling_gflops: 100.0, ceiling: "FMA" });
    for line in [memory(104.0), compute(104.0), memory(50.0)] {
        assert!(!line.contains(PAST_CEILING_NOTE), "{line}");
    }
    for line in [memory(106.0), compute(111.0)] {
        assert!(line.ends_with(&format!("ceiling {PAST_CEILING_NOTE}")), "{line}");
    }
}

/// Rotating operand sets span the ceilings' bytes, within the bench's limit, and never none.
#[test]
fn operand_sets_span_the_ceilings_bytes() {
    use yoco_core::bench::sets_spanning_memory;
    let span = yoco_core::ceiling::memory_bytes();
    assert_eq!(sets_spanning_memory(span, 8), 1);
    assert_eq!(sets_spanning_memory(span / 3 + 1, 8), 3);
    assert_eq!(sets_spanning_memory(1, 8), 8);
    assert_eq!(sets_spanning_memory(usize::MAX, 8), 1);
    assert_eq!(sets_spanning_memory(0, 0), 1);
}
