//! The wasmtime engine: component model, epoch interruption for CPU deadlines (driven
//! by [`super::epoch`]), and the pooling allocator so a fresh instance per decision is
//! cheap.

use std::hash::{Hash, Hasher};

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::limits::MAX_MEMORY_MIB;

/// Most instances alive at once across all calls; beyond it instantiation fails
/// and the call gets its binding's fallback.
pub const POOL_INSTANCES: u32 = 1_000;

/// Bytes of each pooled memory and table reset with memset instead of madvise on reuse:
/// a fresh instance per decision touches only a few pages. Where the kernel has the
/// PAGEMAP_SCAN ioctl (Linux 6.7+) only the pages a decision dirtied are reset, which
/// took about 4 µs off each decision in `scripts/bench-policy`.
const KEEP_RESIDENT_BYTES: usize = 256 << 10;

/// Build the engine. Falls back to on-demand allocation (with a warning) when the
/// machine refuses the pool's virtual memory reservation.
pub(crate) fn build() -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(POOL_INSTANCES)
        .total_core_instances(POOL_INSTANCES * 4)
        .total_memories(POOL_INSTANCES * 2)
        .total_tables(POOL_INSTANCES * 4)
        .max_memory_size((MAX_MEMORY_MIB as usize) << 20)
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(KEEP_RESIDENT_BYTES)
        .pagemap_scan(wasmtime::Enabled::Auto);
    let mut config = base_config();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    match Engine::new(&config) {
        Ok(engine) => Ok(engine),
        Err(e) => {
            tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand instances");
            Engine::new(&base_config())
        }
    }
}

fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // Memories never need more than the largest cap a binding may ask for.
    config.memory_reservation((MAX_MEMORY_MIB as u64) << 20);
    config
}

/// A printable digest of what makes compiled artifacts reusable by this engine.
pub(crate) fn compatibility_hash(engine: &Engine) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}
