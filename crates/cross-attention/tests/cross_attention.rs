//! Cross-attention over the shared cache against causal attention over the whole sequence, on
//! every device (the sweep in `check`): early-exit prefill and decode, several layers per write;
//! the cache is charged once, as K/V cache; overflow is refused.

use yoco_core::testing::{assert_all_passed, test_devices};
use yoco_core::{DType, Device, Error, MemoryCategory, Tensor};
use yoco_cross_attention::{check, SharedKvCache};

#[test]
fn every_layer_reads_the_one_cache_correctly() {
    for device in test_devices("every_layer_reads_the_one_cache_correctly") {
        assert_all_passed(&check::sweep(&device, check::CASES).unwrap());
    }
}

#[test]
fn the_shared_cache_is_charged_once_and_refuses_overflow() {
    let cpu = Device::cpu();
    let before = cpu.memory().current(MemoryCategory::KvCache);
    let mut cache = SharedKvCache::new(1, 3, 2, 64, DType::BF16, &cpu).unwrap();
    assert_eq!(cpu.memory().current(MemoryCategory::KvCache) - before, 2 * 3 * 2 * 64 * 2);
    let kv = Tensor::zeros([1, 2, 2, 64], DType::BF16, &cpu, MemoryCategory::Activations).unwrap();
    cache.write(&kv, &kv).unwrap();
    let q = Tensor::zeros([1, 1, 4, 64], DType::BF16, &cpu, MemoryCategory::Activations).unwrap();
    for _layer in 0..4 {
        cache.attend(&q).unwrap();
    }
    assert_eq!(cpu.memory().current(MemoryCategory::KvCache) - before, 2 * 3 * 2 * 64 * 2);
    assert!(matches!(cache.write(&kv, &kv), Err(Error::InvalidArgument { .. })));
    assert_eq!(cache.len(), 2);
    let empty = SharedKvCache::new(1, 3, 2, 64, DType::BF16, &cpu).unwrap();
    assert!(matches!(empty.attend(&q), Err(Error::Empty { .. })));
}
