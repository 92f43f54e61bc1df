//! The SWA ring buffer against windowed attention over the whole sequence, on every device
//! (the sweep in `check`); its memory is constant in N and charged as recurrent state; bad input.

use yoco_core::testing::{assert_all_passed, test_devices};
use yoco_core::{DType, Device, Error, MemoryCategory, Tensor};
use yoco_swa::{check, swa_attention, SwaCache};

#[test]
fn ring_buffer_equals_attention_over_the_last_w_keys() {
    for device in test_devices("ring_buffer_equals_attention_over_the_last_w_keys") {
        assert_all_passed(&check::sweep(&device, &check::ring_cases()).unwrap());
    }
}

#[test]
fn ring_memory_is_constant_and_recurrent_state() {
    let cpu = Device::cpu();
    let before = cpu.memory().current(MemoryCategory::RecurrentState);
    let mut ring = SwaCache::new(1, 8, 2, 64, DType::BF16, &cpu).unwrap();
    let bytes = 2 * 8 * 2 * 64 * 2;
    assert_eq!(cpu.memory().current(MemoryCategory::RecurrentState) - before, bytes);
    let kv = Tensor::zeros([1, 100, 2, 64], DType::BF16, &cpu, MemoryCategory::Activations).unwrap();
    ring.append(&kv, &kv).unwrap();
    assert_eq!((ring.len(), ring.positions(), ring.size_in_bytes()), (8, 100, bytes));
    assert_eq!(cpu.memory().current(MemoryCategory::RecurrentState) - before, bytes);
}

/// A ring bounded by a capacity below its window holds only that many slots, and refuses a
/// position past the capacity (a wrap would drop a key the window still sees) without changing.
#[test]
fn a_bounded_ring_has_no_slot_past_its_capacity() {
    let cpu = Device::cpu();
    let before = cpu.memory().current(MemoryCategory::RecurrentState);
    let mut ring = SwaCache::with_capacity(1, 1024, 16, 2, 64, DType::BF16, &cpu).unwrap();
    let bytes = 2 * 16 * 2 * 64 * 2;
    assert_eq!((ring.size_in_bytes(), ring.slots().0.dims()[1], ring.capacity()), (bytes, 16, 16));
    assert_eq!(cpu.memory().current(MemoryCategory::RecurrentState) - before, bytes);
    let kv = |n: usize| Tensor::zeros([1, n, 2, 64], DType::BF16, &cpu, MemoryCategory::Activations).unwrap();
    ring.append(&kv(15), &kv(15)).unwrap();
    assert!(matches!(ring.append(&kv(2), &kv(2)), Err(Error::InvalidArgument { what: "k", .. })));
    assert!(matches!(ring.forward(&kv(2), &kv(2), &kv(2), None), Err(Error::InvalidArgument { what: "k", .. })));
    assert_eq!((ring.len(), ring.positions()), (15, 15));
    ring.forward(&kv(1), &kv(1), &kv(1), None).unwrap();
    assert_eq!((ring.len(), ring.positions()), (16, 16));
    assert!(matches!(ring.forward(&kv(1), &kv(1), &kv(1), None), Err(Error::InvalidArgument { what: "k", .. })));
    // A capacity past the window leaves the window's slots.
    let wide = SwaCache::with_capacity(1, 8, 100, 2, 64, DType::BF16, &cpu).unwrap();
    assert_eq!((wide.slots().0.dims()[1], wide.capacity()), (8, 100));
    assert!(matches!(SwaCache::with_capacity(1, 8, 0, 2, 64, DType::BF16, &cpu), Err(Error::InvalidArgument { what: "capacity", .. })));
}

#[test]
fn bad_input_is_a_typed_error() {
    let cpu = Device::cpu();
    let t = |dims: &[usize]| Tensor::zeros(dims.to_vec(), DType::F32, &cpu, MemoryCategory::Activations).unwrap();
    let (q, k) = (t(&[1, 4, 2, 64]), t(&[1, 4, 2, 64]));
    assert!(matches!(swa_attention(&q, &k, &k, 0), Err(Error::InvalidArgument { what: "window", .. })));
    assert!(matches!(SwaCache::new(1, 0, 2, 64, DType::F32, &cpu), Err(Error::InvalidArgument { what: "window", .. })));
    let mut ring = SwaCache::new(1, 4, 2, 64, DType::F32, &cpu).unwrap();
    assert!(matches!(ring.append(&t(&[1, 2, 3, 64]), &t(&[1, 2, 3, 64])), Err(Error::ShapeMismatch { what: "k", .. })));
    assert!(matches!(ring.forward(&t(&[1, 3, 2, 64]), &k, &k, None), Err(Error::ShapeMismatch { what: "q", .. })));
    assert!(matches!(ring.recent(1), Err(Error::Empty { .. })));
    let k_bf16 = Tensor::zeros([1, 4, 2, 64], DType::BF16, &cpu, MemoryCategory::Activations).unwrap();
    assert!(matches!(ring.append(&k_bf16, &k_bf16), Err(Error::DTypeMismatch { what: "k", .. })));
    assert_eq!(ring.positions(), 0);
}

/// A decode step that attention refuses (3 query heads over 2 K/V heads) leaves the ring as it
/// was: its oldest key is not overwritten and its position does not move.
#[test]
fn a_refused_step_leaves_the_ring_unchanged() {
    let cpu = Device::cpu();
    let mut rng = yoco_core::rng::Rng::new(3);
    let mut random = |dims: &[usize]| {
        let data: Vec<f32> = (0..dims.iter().product::<usize>()).map(|_| rng.normal() as f32).collect();
        Tensor::from_vec(data, dims.to_vec(), &cpu, MemoryCategory::Activations).unwrap()
    };
    let mut ring = SwaCache::new(1, 2, 2, 64, DType::F32, &cpu).unwrap();
    let (k, v) = (random(&[1, 2, 2, 64]), random(&[1, 2, 2, 64]));
    ring.append(&k, &v).unwrap();
    let before = (ring.slots().0.to_vec::<f32>().unwrap(), ring.slots().1.to_vec::<f32>().unwrap());
    let (q_bad, k1, v1) = (random(&[1, 1, 3, 64]), random(&[1, 1, 2, 64]), random(&[1, 1, 2, 64]));
    assert!(matches!(ring.forward(&q_bad, &k1, &v1, None), Err(Error::InvalidArgument { what: "kv_heads", .. })));
    assert_eq!(ring.positions(), 2);
    assert_eq!((ring.slots().0.to_vec::<f32>().unwrap(), ring.slots().1.to_vec::<f32>().unwrap()), before);
}
