//! The products `matmul_nt_widened` (bf16) and `matmul_nt` (f32) at the bench's shapes, each call
//! followed by one round of the ceiling of its arithmetic (`yoco_core::ceiling::Arithmetic`:
//! bf16 pairs where the CPU has AVX512-BF16 and `DTYPE` is bf16, else the f32 FMA), so that every
//! call's rate can be set beside the arithmetic rate of the same seconds (the shared VMs' rates
//! swing by more than most changes to a micro-kernel are worth).
//! Prints, per shape, the median and best time and the median of the calls' fractions of the
//! round beside them; run two builds in turn, several times, and compare the fractions.
//!
//!     cargo run --release -p yoco-core --example matmul_probe
//!     SHAPES="512,2048,768;2048,704,256" CALLS=15 target/release/examples/matmul_probe
//!
//! `SHAPES`: `m,n,k` separated by `;` (`c[m, n] = a[m, k] · b[n, k]ᵀ`); `DTYPE`: `bf16` (the
//! default) or `f32`. Operands start on cache lines, as a tensor's do.

use std::time::Instant;

use half::bf16;
use yoco_core::ceiling::{median, Arithmetic};
use yoco_core::matmul::{matmul_nt, matmul_nt_widened};
use yoco_core::rng::Rng;
use yoco_core::Element;

/// The bench's prefill shapes (`benches/matmul.rs`).
const SHAPES: &str = "512,2048,768;512,768,2048;2048,704,256;128,2048,768";

/// `len` values from `rng` in a buffer whose slice starts on a 64-byte line.
fn aligned<T: Element>(rng: &mut Rng, len: usize) -> (Vec<T>, usize) {
    let mut buffer: Vec<T> = (0..len + 64).map(|_| T::from_f32(rng.normal() as f32)).collect();
    let offset = buffer.as_ptr().align_offset(64);
    buffer.truncate(offset + len);
    (buffer, offset)
}

/// A call of `product` (`c = a · bᵀ`) on operands of `m × k`, `n × k` and `m × n` values from
/// `rng`, each starting on a line, made once.
fn on_fresh_operands<T: Element>(rng: &mut Rng, (m, n, k): (usize, usize, usize), product: Product<T>) -> Box<dyn FnMut()> {
    let ((a, a_at), (b, b_at), (mut c, c_at)) = (aligned::<T>(rng, m * k), aligned::<T>(rng, n * k), aligned::<T>(rng, m * n));
    Box::new(move || product(m, n, k, &a[a_at..], &b[b_at..], &mut c[c_at..]).expect("the shapes agree"))
}

/// `matmul_nt_widened` or `matmul_nt`: `(m, n, k, a, b, c)`.
type Product<T> = fn(usize, usize, usize, &[T], &[T], &mut [T]) -> yoco_core::Result<()>;

fn main() {
    let shapes = std::env::var("SHAPES").unwrap_or_else(|_| SHAPES.into());
    let calls: usize = std::env::var("CALLS").ok().and_then(|c| c.parse().ok()).unwrap_or(15).max(1);
    let dtype = std::env::var("DTYPE").unwrap_or_else(|_| "bf16".into());
    let ceiling = if dtype == "bf16" && Arithmetic::Bf16Pairs.available() { Arithmetic::Bf16Pairs } else { Arithmetic::F32Fma };
    // As the bench does: the parallel products run on this thread and the pool's other workers.
    yoco_core::threads::make_this_thread_a_worker();
    let mut rng = Rng::new(1);
    for shape in shapes.split(';') {
        let dims: Vec<usize> = shape.split(',').map(|v| v.trim().parse().expect("SHAPES: m,n,k")).collect();
        let &[m, n, k] = dims.as_slice() else { panic!("SHAPES: m,n,k, not {shape}") };
        let flops = 2.0 * (m * n * k) as f64;
        let mut product = match dtype.as_str() {
            "bf16" => on_fresh_operands::<bf16>(&mut rng, (m, n, k), matmul_nt_widened),
            "f32" => on_fresh_operands::<f32>(&mut rng, (m, n, k), matmul_nt),
            other => panic!("DTYPE: bf16 or f32, not {other}"),
        };
        let (mut seconds, mut fractions) = (Vec::new(), Vec::new());
        for _ in 0..calls {
            let start = Instant::now();
            product();
            let elapsed = start.elapsed().as_secs_f64();
            seconds.push(elapsed);
            fractions.push(flops / elapsed / 1e9 / ceiling.round_gflops().expect("the ceiling's unit is there"));
        }
        let best = seconds.iter().copied().fold(f64::INFINITY, f64::min);
        let time = median(&mut seconds);
        println!("{dtype} {m}x{n}x{k}: {:.3} ms (best {:.3}), {:.1} GFLOP/s, {:.3} of the {} round beside it", time * 1e3, best * 1e3, flops / time / 1e9, median(&mut fractions), ceiling.name());
    }
}
