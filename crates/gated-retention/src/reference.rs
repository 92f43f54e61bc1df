//! The f64 reference in all three forms of SPEC.md, plain loops, obviously right. They must
//! agree to ~1e-10 (tests/), which is what makes each of them trustworthy as the oracle.
//!
//! Layout, as everywhere in the crate: q, k, v, o `[batch, seq, heads, dim]`; log-decay
//! `[batch, seq, heads]`; state `[batch, heads, dim, dim]` with `S[i][j]` pairing key
//! component i with value component j. k is multiplied by `scale` (1/√D in YOCO).

use rayon::prelude::*;
use yoco_core::DType;

/// One problem's inputs, borrowed as dense f64 slices.
#[derive(Clone, Copy, Debug)]
pub struct Problem<'a> {
    pub q: &'a [f64],
    pub k: &'a [f64],
    pub v: &'a [f64],
    pub log_decay: &'a [f64],
    /// Incoming state, or `None` for zeros.
    pub state: Option<&'a [f64]>,
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub dim: usize,
    pub scale: f64,
}

impl Problem<'_> {
    fn qkv(&self, b: usize, n: usize, h: usize) -> usize {
        ((b * self.seq + n) * self.heads + h) * self.dim
    }

    fn gate(&self, b: usize, n: usize, h: usize) -> f64 {
        self.log_decay[(b * self.seq + n) * self.heads + h]
    }

    fn state_base(&self, b: usize, h: usize) -> usize {
        (b * self.heads + h) * self.dim * self.dim
    }

    fn initial_state(&self) -> Vec<f64> {
        match self.state {
            Some(s) => s.to_vec(),
            None => vec![0.0; self.batch * self.heads * self.dim * self.dim],
        }
    }

    fn key(&self, b: usize, n: usize, h: usize, i: usize) -> f64 {
        self.k[self.qkv(b, n, h) + i] * self.scale
    }
}

/// Recurrent form: `S_n = γ_n S_{n−1} + k_nᵀ v_n`, `o_n = q_n S_n`. Returns (o, final state).
pub fn recurrent(p: &Problem<'_>) -> (Vec<f64>, Vec<f64>) {
    let d = p.dim;
    let mut o = vec![0.0; p.q.len()];
    let mut state = p.initial_state();
    for b in 0..p.batch {
        for h in 0..p.heads {
            let s = &mut state[p.state_base(b, h)..][..d * d];
            for n in 0..p.seq {
                let gamma = p.gate(b, n, h).exp();
                let base = p.qkv(b, n, h);
                for i in 0..d {
                    for j in 0..d {
                        s[i * d + j] = gamma * s[i * d + j] + p.key(b, n, h, i) * p.v[base + j];
                    }
                }
                for j in 0..d {
                    o[base + j] = (0..d).map(|i| p.q[base + i] * s[i * d + j]).sum();
                }
            }
        }
    }
    (o, state)
}

/// Parallel form over the whole sequence: `O = (Q Kᵀ ⊙ Dm) V + (Q ⊙ e^G) S₀` with
/// `Dm[n,m] = e^(G_n − G_m)` for m ≤ n and `G = cumsum(log γ)`. Short inputs only: the global
/// cumsum loses precision over long ones (which is why the chunkwise form exists).
pub fn parallel(p: &Problem<'_>) -> (Vec<f64>, Vec<f64>) {
    let d = p.dim;
    let mut o = vec![0.0; p.q.len()];
    let mut state = p.initial_state();
    for b in 0..p.batch {
        for h in 0..p.heads {
            let mut g = Vec::with_capacity(p.seq);
            let mut acc = 0.0;
            for n in 0..p.seq {
                acc += p.gate(b, n, h);
                g.push(acc);
            }
            let s0 = state[p.state_base(b, h)..][..d * d].to_vec();
            for n in 0..p.seq {
                let qn = p.qkv(b, n, h);
                for m in 0..=n {
                    let km = p.qkv(b, m, h);
                    let score: f64 = (0..d).map(|i| p.q[qn + i] * p.key(b, m, h, i)).sum::<f64>() * (g[n] - g[m]).exp();
                    for j in 0..d {
                        o[qn + j] += score * p.v[km + j];
                    }
                }
                for j in 0..d {
                    o[qn + j] += (0..d).map(|i| p.q[qn + i] * g[n].exp() * s0[i * d + j]).sum::<f64>();
                }
            }
            // Final state: S_N = e^(G_N) S₀ + Σ_m e^(G_N − G_m) k_mᵀ v_m.
            let last = g.last().copied().unwrap_or(0.0);
            let s = &mut state[p.state_base(b, h)..][..d * d];
            for i in 0..d {
                for j in 0..d {
                    s[i * d + j] = last.exp() * s0[i * d + j]
                        + (0..p.seq).map(|m| (last - g[m]).exp() * p.key(b, m, h, i) * p.v[p.qkv(b, m, h) + j]).sum::<f64>();
                }
            }
        }
    }
    (o, state)
}

/// Where a plain same-precision implementation rounds: nowhere (`None`, the exact chunkwise
/// form) or to a storage dtype.
fn round_to(dtype: Option<DType>, v: f64) -> f64 {
    dtype.map_or(v, |t| t.round(v))
}

/// Chunkwise form with chunk length `chunk` (the last chunk may be shorter), `b` = cumsum of
/// log γ restarted in each chunk:
/// `O_c = (Q_c K_cᵀ ⊙ M_c) V_c + (Q_c ⊙ e^b) S_prev`, `M_c[i,j] = e^(b_i − b_j)` for j ≤ i,
/// `S_next = e^(b_last) S_prev + (K_c ⊙ e^(b_last − b))ᵀ V_c`.
pub fn chunkwise(p: &Problem<'_>, chunk: usize) -> (Vec<f64>, Vec<f64>) {
    chunkwise_rounded(p, chunk, None)
}

/// The chunkwise form as a plain tensor-core implementation in `dtype` storage computes it
/// (flash-linear-attention's `chunk_simple_gla`): the matrix-product operands (the masked score
/// matrix, `Q ⊙ e^b`, `K ⊙ e^(b_last − b)` and the state read for `Q·S`) rounded to `dtype`,
/// accumulation in f32 (modelled as exact), the state itself carried in f32, the output rounded.
/// The yardstick of the reduced-precision tests.
pub fn chunkwise_plain(p: &Problem<'_>, chunk: usize, dtype: DType) -> (Vec<f64>, Vec<f64>) {
    chunkwise_rounded(p, chunk, Some(dtype))
}

fn chunkwise_rounded(p: &Problem<'_>, chunk: usize, dtype: Option<DType>) -> (Vec<f64>, Vec<f64>) {
    assert!(chunk > 0, "chunk must be positive");
    let d = p.dim;
    let mut state = p.initial_state();
    // One task per (sequence, head) pair: the pairs share nothing, and the checks' largest
    // cases (2 × 8 heads of 256, 2,048 tokens) took a minute on one thread.
    let rows: Vec<Vec<f64>> = state
        .par_chunks_mut(d * d)
        .enumerate()
        .map(|(bh, s)| {
            let mut rows = vec![0.0; p.seq * d];
            chunkwise_pair(p, chunk, dtype, bh / p.heads, bh % p.heads, s, &mut rows);
            rows
        })
        .collect();
    let mut o = vec![0.0; p.q.len()];
    for (bh, rows) in rows.iter().enumerate() {
        for (n, row) in rows.chunks(d).enumerate() {
            o[p.qkv(bh / p.heads, n, bh % p.heads)..][..d].copy_from_slice(row);
        }
    }
    (o, state)
}

/// [`chunkwise_rounded`] for sequence `b`, head `h`: carries its state `s` through the chunks and
/// writes its outputs to `o` (`[seq, dim]`).
fn chunkwise_pair(p: &Problem<'_>, chunk: usize, dtype: Option<DType>, b: usize, h: usize, s: &mut [f64], o: &mut [f64]) {
    let d = p.dim;
    let r = |v: f64| round_to(dtype, v);
    let mut start = 0;
    while start < p.seq {
        let len = chunk.min(p.seq - start);
        let mut cum = Vec::with_capacity(len);
        let mut acc = 0.0;
        for t in 0..len {
            acc += p.gate(b, start + t, h);
            cum.push(acc);
        }
        let last = cum[len - 1];
        let s_read: Vec<f64> = s.iter().map(|&v| r(v)).collect();
        for t in 0..len {
            let qt = p.qkv(b, start + t, h);
            let ot = &mut o[(start + t) * d..][..d];
            for u in 0..=t {
                let ku = p.qkv(b, start + u, h);
                let score = r((0..d).map(|i| p.q[qt + i] * p.key(b, start + u, h, i)).sum::<f64>() * (cum[t] - cum[u]).exp());
                for (o, v) in ot.iter_mut().zip(&p.v[ku..ku + d]) {
                    *o += score * v;
                }
            }
            let decayed_q: Vec<f64> = (0..d).map(|i| r(p.q[qt + i] * cum[t].exp())).collect();
            for j in 0..d {
                ot[j] += (0..d).map(|i| decayed_q[i] * s_read[i * d + j]).sum::<f64>();
            }
            for x in ot.iter_mut() {
                *x = r(*x);
            }
        }
        let decayed_k: Vec<Vec<f64>> = (0..len).map(|u| (0..d).map(|i| r(p.key(b, start + u, h, i) * (last - cum[u]).exp())).collect()).collect();
        for i in 0..d {
            for j in 0..d {
                let update: f64 = (0..len).map(|u| decayed_k[u][i] * p.v[p.qkv(b, start + u, h) + j]).sum();
                s[i * d + j] = last.exp() * s[i * d + j] + update;
            }
        }
        start += len;
    }
}
