//! Intel AMX (Advanced Matrix Extensions: Sapphire Rapids and later Xeons), the tile registers and
//! the bf16 tile product: eight tiles `tmm0`–`tmm7` of up to 16 rows × 64 bytes, and `tdpbf16ps`,
//! which adds a 16 × 32 bf16 tile times a 32 × 16 one (stored as 16 rows of 16 pairs) to a
//! 16 × 16 f32 tile — 16,384 FLOPs an instruction, several times what AVX-512 reaches a cycle.
//!
//! Stable Rust has no AMX intrinsics (nor `is_x86_feature_detected!` for it), so the instructions
//! are written as inline assembly and the CPU is asked directly: CPUID for the instructions,
//! XGETBV for the operating system's support of the tile state, and Linux's
//! `arch_prctl(ARCH_REQ_XCOMP_PERM)` for the permission to use it, which each process must ask
//! for before its first tile instruction (the instruction faults otherwise).
//!
//! Soundness: tile instructions run only through a [`Tiles`], which exists only after
//! [`available`] returned true (its [`Tiles::configure`] is `unsafe` for that), on the thread that
//! configured it (the tile state is the thread's; `Tiles` is not `Send`). Its methods that touch
//! memory are `unsafe` too: the caller vouches for the bytes.
//!
//! Public for the other crates' bf16 kernels (the CPU attention's tiled path): 2 × 2 tiles of f32
//! sums ([`Tiles::zero_sums`], [`Tiles::load_sums`], [`Tiles::store_sums_at`]) and the product
//! that adds to them ([`Tiles::multiply_add_2x2`]).

use std::arch::asm;
use std::sync::OnceLock;

use crate::simd::Isa;

/// The CPU has AMX-TILE and AMX-BF16 (and AVX512-BF16, which rounds the sums), the operating
/// system saves the tile state and lets this process use it, and `YOCO_CPU_ISA` does not ask for
/// narrower vectors (AMX is only used with AVX-512). Detected (and the permission asked for) once
/// per process.
pub fn available() -> bool {
    static DETECTED: OnceLock<bool> = OnceLock::new();
    *DETECTED.get_or_init(|| Isa::detect() == Isa::Avx512 && is_x86_feature_detected!("avx512bf16") && cpu_has_amx_bf16() && os_allows_tiles())
}

/// CPUID leaf 7: EDX bit 22 is AMX-BF16, bit 24 AMX-TILE.
// CPUID became a safe intrinsic after this crate's minimum Rust (1.89).
#[allow(unused_unsafe)]
fn cpu_has_amx_bf16() -> bool {
    use std::arch::x86_64::__cpuid_count;
    // SAFETY: CPUID exists on every x86-64 CPU; leaf 7 exists where leaf 0 says so.
    let max_leaf = unsafe { __cpuid_count(0, 0) }.eax;
    if max_leaf < 7 {
        return false;
    }
    // SAFETY: as above.
    let edx = unsafe { __cpuid_count(7, 0) }.edx;
    edx & (1 << 22) != 0 && edx & (1 << 24) != 0
}

/// XCR0 enables the tile configuration and data (bits 17 and 18), and Linux grants this process
/// the tile data (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, Linux 5.16 and later).
#[allow(unused_unsafe)]
fn os_allows_tiles() -> bool {
    use std::arch::x86_64::{__cpuid_count, _xgetbv};
    // SAFETY: CPUID leaf 1 exists on every x86-64 CPU.
    let osxsave = unsafe { __cpuid_count(1, 0) }.ecx & (1 << 27) != 0;
    if !osxsave {
        return false;
    }
    #[target_feature(enable = "xsave")]
    unsafe fn xcr0() -> u64 {
        // SAFETY: OSXSAVE is set (checked by the caller), so XGETBV is enabled.
        unsafe { _xgetbv(0) }
    }
    // SAFETY: OSXSAVE is set, which implies the XSAVE feature.
    let tile_state = (1 << 17) | (1 << 18);
    if unsafe { xcr0() } & tile_state != tile_state {
        return false;
    }
    request_tile_permission()
}

#[cfg(target_os = "linux")]
fn request_tile_permission() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with these arguments changes only this process's permissions.
    unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn request_tile_permission() -> bool {
    // Other systems grant it differently, if at all; the AVX-512 paths serve them.
    false
}

/// Bytes in a tile's row: 32 bf16, 16 pairs, or 16 f32.
pub(super) const ROW_BYTES: usize = 64;
/// Rows in a tile.
pub const TILE_ROWS: usize = 16;
/// Elements of a bf16 product's reduction a tile row holds: a step of the AMX forms.
pub const STEP: usize = ROW_BYTES / 2;

/// The quarters (0 .. 4) of the block of sums before that are written out after step `s` of
/// `steps` while the tiles fill the next block: spread evenly, so that each step's vector work
/// has tile products to overlap, every quarter by the last step. The in-place AMX form writes
/// its sums so (`bf16_amx_in_place.rs`: written after the tiles, the tile unit idle meanwhile,
/// they had taken a third of its time on one thread; the packed form, with no transposes on the
/// way out, was level so).
pub(super) fn quarters_after_step(s: usize, steps: usize) -> std::ops::Range<usize> {
    (4 * s).div_ceil(steps)..(4 * (s + 1)).div_ceil(steps)
}

/// The tile configuration `ldtilecfg` reads.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    bytes_per_row: [u16; 16],
    rows: [u8; 16],
}

/// The tile registers, configured on this thread until dropped (which releases them, so that the
/// thread's saved state is small again). Not `Send`: the tile state is the thread's, so a
/// configuration moved to another thread would describe tiles that thread never configured.
pub struct Tiles(std::marker::PhantomData<*const ()>);

impl Tiles {
    /// Configures every tile as 16 rows × 64 bytes.
    ///
    /// # Safety
    /// [`available`] returned true.
    pub unsafe fn configure() -> Tiles {
        // Palette 1 has 8 tiles; the fields of the other 8 must be zero (ldtilecfg faults).
        let mut config = TileConfig { palette: 1, start_row: 0, reserved: [0; 14], bytes_per_row: [0; 16], rows: [0; 16] };
        config.bytes_per_row[..8].fill(ROW_BYTES as u16);
        config.rows[..8].fill(TILE_ROWS as u8);
        // SAFETY: AMX is there and this process may use it (the caller's promise); the
        // configuration is valid for palette 1 (8 tiles of at most 16 × 64 bytes).
        unsafe { asm!("ldtilecfg [{}]", in(reg) &config, options(nostack, readonly)) };
        Tiles(std::marker::PhantomData)
    }

    /// Tiles 0–3 (the sums) set to zero.
    #[inline(always)]
    pub fn zero_sums(&mut self) {
        // SAFETY: the tiles are configured (self exists).
        unsafe { asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem)) };
    }

    /// Sums `[2 × 2 tiles] += a [32 rows × 32 bf16] · b [16 pairs × 32 columns]`: tile 0 rows
    /// 0–15 × columns 0–15, tile 1 rows 0–15 × 16–31, tile 2 rows 16–31 × 0–15, tile 3 rows
    /// 16–31 × 16–31. `a` is 32 rows of 64 bytes, `a_stride` bytes apart; `b` 16 rows of 128
    /// bytes (32 columns' pairs), `b_stride` bytes apart. Tiles 4–7 hold the operands after.
    ///
    /// # Safety
    /// Those bytes are readable.
    #[inline(always)]
    pub unsafe fn multiply_add_2x2(&mut self, a: *const u16, a_stride: usize, b: *const u32, b_stride: usize) {
        // SAFETY: the tiles are configured (self exists); the reads lie where the caller promised.
        unsafe {
            asm!(
                "tileloadd tmm4, [{a} + {stride}*1]",
                "tileloadd tmm5, [{a16} + {stride}*1]",
                "tileloadd tmm6, [{b} + {b_stride}*1]",
                "tileloadd tmm7, [{b} + {b_stride}*1 + 64]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                a = in(reg) a,
                a16 = in(reg) a.byte_add(TILE_ROWS * a_stride),
                stride = in(reg) a_stride,
                b = in(reg) b,
                b_stride = in(reg) b_stride,
                options(nostack, readonly),
            )
        };
    }

    /// Tiles 0–3 += tiles 4–5 · tiles 6–7, as [`multiply_add_2x2`](Self::multiply_add_2x2)
    /// without the loads, `times` times over: the tile unit's peak, for its ceiling. Returns the
    /// first sum (so that nothing can be dropped).
    pub(crate) fn peak_loop(&mut self, operands: &[u16; 16 * 32], times: u64) -> f32 {
        let mut sums = [[0f32; 32]; 32];
        self.zero_sums();
        // SAFETY: the tiles are configured (self exists); each load reads the 1 KiB `operands`
        // (16 rows of 64 bytes, 64 apart).
        unsafe {
            asm!(
                "tileloadd tmm4, [{x} + {stride}*1]",
                "tileloadd tmm5, [{x} + {stride}*1]",
                "tileloadd tmm6, [{x} + {stride}*1]",
                "tileloadd tmm7, [{x} + {stride}*1]",
                x = in(reg) operands.as_ptr(),
                stride = in(reg) ROW_BYTES,
                options(nostack, readonly),
            )
        };
        for _ in 0..times {
            // SAFETY: the tiles are configured; no memory is touched.
            unsafe {
                asm!(
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    options(nostack, nomem),
                )
            };
        }
        self.store_sums(&mut sums);
        sums[0][0]
    }

    /// Tiles 0–3 into `out`, 32 rows × 32 f32 (tile 0 its top left, as in
    /// [`multiply_add_2x2`](Self::multiply_add_2x2)).
    #[inline(always)]
    pub(super) fn store_sums(&mut self, out: &mut [[f32; 32]; 32]) {
        // SAFETY: 32 rows of 32 f32, 128 bytes apart: `out` exactly.
        unsafe { self.store_sums_at(out.as_mut_ptr().cast(), 32 * 4) };
    }

    /// Tiles 0–3 into the 32 × 32 f32 at `dst`, rows `stride` bytes apart (tile 0 its top left).
    ///
    /// # Safety
    /// Those bytes are writable, and nothing else refers to them.
    #[inline(always)]
    pub unsafe fn store_sums_at(&mut self, dst: *mut f32, stride: usize) {
        // SAFETY: the tiles are configured (self exists); the writes lie where the caller promised.
        unsafe {
            asm!(
                "tilestored [{base} + {stride}*1], tmm0",
                "tilestored [{base} + {stride}*1 + 64], tmm1",
                "tilestored [{lower} + {stride}*1], tmm2",
                "tilestored [{lower} + {stride}*1 + 64], tmm3",
                base = in(reg) dst,
                lower = in(reg) dst.byte_add(TILE_ROWS * stride),
                stride = in(reg) stride,
                options(nostack),
            )
        };
    }

    /// Tiles 0–3 from the 32 × 32 f32 at `src`, rows `stride` bytes apart (tile 0 its top left):
    /// sums to add to.
    ///
    /// # Safety
    /// Those bytes are readable.
    #[inline(always)]
    pub unsafe fn load_sums(&mut self, src: *const f32, stride: usize) {
        // SAFETY: the tiles are configured (self exists); the reads lie where the caller promised.
        unsafe {
            asm!(
                "tileloadd tmm0, [{base} + {stride}*1]",
                "tileloadd tmm1, [{base} + {stride}*1 + 64]",
                "tileloadd tmm2, [{lower} + {stride}*1]",
                "tileloadd tmm3, [{lower} + {stride}*1 + 64]",
                base = in(reg) src,
                lower = in(reg) src.byte_add(TILE_ROWS * stride),
                stride = in(reg) stride,
                options(nostack, readonly),
            )
        };
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: the tiles were configured; releasing them returns the state to its initial one.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}

#[cfg(test)]
mod tests {
    /// Every quarter of the block before is written once, in order, by the last step, however
    /// few steps there are (one step writes all four).
    #[test]
    fn each_quarter_is_written_once_by_the_last_step() {
        for steps in 1..=40 {
            let written: Vec<usize> = (0..steps).flat_map(|s| super::quarters_after_step(s, steps)).collect();
            assert_eq!(written, [0, 1, 2, 3], "{steps} steps");
            if steps >= 4 {
                assert!((0..steps).all(|s| super::quarters_after_step(s, steps).len() <= 1), "{steps} steps: one quarter a step at most");
            }
        }
    }
}
