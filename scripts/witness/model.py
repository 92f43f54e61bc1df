"""YOCO and its Transformer twin in NumPy, in f64, written from shared/SPEC.md alone.

A second implementation, in another language, that shares no code with yoco: not its kernels,
not its f64 references, not its model assembly. It runs a whole sequence at once, the plainest
way the spec allows — no cache, no early exit, gated retention in its parallel form, attention
with its mask written out — so that where it agrees with yoco's prefill and decode steps, yoco's
caches, chunking, early exit and fast paths agree with the spec as read a second time.

Weights are yoco's safetensors names (src/model/weights.rs), linear weights `[out, in]`.

Every function takes `store`, what is kept of each result it computes: `exact` (the witness
proper, f64 throughout), or `rounding_to("bf16")` and the like, which round every operation's
output as a plain implementation storing that type would (PyTorch eager in bf16: each product,
norm, rotation, softmax, sum and activation written back in bf16) and compute in between in f64.
That second run is the yardstick of 16-bit errors (check.py): yoco, which stores the same
results in 16 bits but fuses some of them, should land near its error, whatever the model's
depth.
"""

import numpy as np


def exact(x):
    """Every result kept in f64: the witness proper."""
    return x


def to_bf16(x):
    """x rounded to bfloat16 (the nearest, ties to even) and widened back to f64."""
    bits = np.asarray(x, dtype=np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
    return rounded.view(np.float32).astype(np.float64)


def to_f16(x):
    """x rounded to IEEE half precision and widened back to f64."""
    return np.asarray(x).astype(np.float16).astype(np.float64)


def rounding_to(dtype):
    """The `store` of a plain implementation that keeps its results in `dtype` (bf16 or f16)."""
    return {"bf16": to_bf16, "f16": to_f16}[dtype]


def rms_norm(x, weight, eps, store):
    """x * rsqrt(mean(x^2) + eps) * weight, over the last axis (weight None: no affine)."""
    y = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return store(y if weight is None else y * weight)


def silu(x, store):
    # x * sigmoid(x) written with tanh, which cannot overflow for large |x|.
    return store(x * 0.5 * (1.0 + np.tanh(0.5 * x)))


def log_sigmoid(z):
    # log(1 / (1 + e^-z)) without overflow for either sign of z.
    return np.minimum(z, 0.0) - np.log1p(np.exp(-np.abs(z)))


def linear(x, weight, store):
    """x W^T for a weight stored [out, in]."""
    return store(x @ weight.T)


def rope(x, theta, variant, store):
    """Rotary embedding of x [B, N, heads, D] at positions 0..N-1.

    yoco: inv_freq_i = theta^(-i / (D/2 - 1)), interleaved pairs (x[2i], x[2i+1]).
    llama: inv_freq_i = theta^(-2i / D), rotate-half pairs (x[i], x[i + D/2]).
    """
    n, d = x.shape[1], x.shape[3]
    half = d // 2
    i = np.arange(half, dtype=np.float64)
    if variant == "yoco":
        inv_freq = theta ** (-i / (half - 1))
    else:
        inv_freq = theta ** (-2.0 * i / d)
    angle = np.arange(n, dtype=np.float64)[:, None] * inv_freq[None, :]  # [N, D/2]
    cos, sin = np.cos(angle)[None, :, None, :], np.sin(angle)[None, :, None, :]
    if variant == "yoco":
        a, b = x[..., 0::2], x[..., 1::2]
    else:
        a, b = x[..., :half], x[..., half:]
    ra, rb = a * cos - b * sin, a * sin + b * cos
    out = np.empty_like(x)
    if variant == "yoco":
        out[..., 0::2], out[..., 1::2] = ra, rb
    else:
        out[..., :half], out[..., half:] = ra, rb
    return store(out)


def heads(x, count):
    """[B, N, count * D] -> [B, N, count, D]."""
    return x.reshape(x.shape[0], x.shape[1], count, -1)


def attention(q, k, v, store, window=None):
    """Causal grouped-query attention over one whole sequence: q [B, N, H, D], k and v
    [B, N, Hkv, D]; query head h reads key/value head h // (H / Hkv). Query i sees key j for
    j <= i, and with a window W only the W keys i - W < j <= i. Returns [B, N, H * D]."""
    b, n, h, d = q.shape
    group = h // k.shape[2]
    k, v = np.repeat(k, group, axis=2), np.repeat(v, group, axis=2)
    scores = store(np.einsum("bihd,bjhd->bhij", q, k) / np.sqrt(d))
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    visible = j <= i
    if window is not None:
        visible &= j > i - window
    scores = np.where(visible, scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights = store(weights / weights.sum(axis=-1, keepdims=True))
    return store(np.einsum("bhij,bjhd->bihd", weights, v)).reshape(b, n, h * d)


def swiglu_ffn(x, w, prefix, store):
    gate = silu(linear(x, w[f"{prefix}.w1"], store), store)
    return linear(store(gate * linear(x, w[f"{prefix}.w3"], store)), w[f"{prefix}.w2"], store)


def gated_retention(x, w, prefix, n_heads, head_dim, theta, eps, store):
    """The parallel form: O = (Q K^T ⊙ Dm) V, Dm[n, m] = exp(G_n - G_m) for m <= n, G the
    cumulative sum of log γ = logsigmoid(x Wγ) / 16; then a per-head RMSNorm of O without weight,
    and (silu(x Wg) ⊙ O) Wo. The decays are computed from the gate's stored product in f64 (a
    plain implementation takes them in f32: a cumulative sum in 16 bits would lose the sequence)."""
    b, n, _ = x.shape
    q = rope(heads(linear(x, w[f"{prefix}.wq"], store), n_heads), theta, "yoco", store)
    k = store(rope(heads(linear(x, w[f"{prefix}.wk"], store), n_heads), theta, "yoco", store) / np.sqrt(head_dim))
    v = heads(linear(x, w[f"{prefix}.wv"], store), n_heads)
    g = linear(x, w[f"{prefix}.wg"], store)
    log_gamma = log_sigmoid(linear(x, w[f"{prefix}.wgamma"], store)) / 16.0  # [B, N, H]
    cum = np.cumsum(log_gamma, axis=1)
    diff = cum[:, :, None, :] - cum[:, None, :, :]  # [B, n, m, H]: G_n - G_m
    causal = (np.arange(n)[None, :] <= np.arange(n)[:, None])[None, :, :, None]
    decay = np.where(causal, np.exp(np.where(causal, diff, 0.0)), 0.0)
    scores = store(store(np.einsum("bnhd,bmhd->bnmh", q, k)) * decay)
    o = store(np.einsum("bnmh,bmhd->bnhd", scores, v))
    o = rms_norm(o, None, eps, store).reshape(b, n, n_heads * head_dim)
    return linear(store(silu(g, store) * o), w[f"{prefix}.wo"], store)


def self_attention(x, w, prefix, config, rope_variant, store, window=None):
    """Attention with its own K/V (the Transformer's layers, YOCO's sliding-window layers)."""
    theta = config["rope_theta"]
    q = rope(heads(linear(x, w[f"{prefix}.wq"], store), config["n_heads"]), theta, rope_variant, store)
    k = rope(heads(linear(x, w[f"{prefix}.wk"], store), config["n_kv_heads"]), theta, rope_variant, store)
    v = heads(linear(x, w[f"{prefix}.wv"], store), config["n_kv_heads"])
    return linear(attention(q, k, v, store, window), w[f"{prefix}.wo"], store)


def embed(tokens, w, d, store):
    return store(np.sqrt(d) * w["embed"][tokens])


def yoco_forward(tokens, w, config, store):
    """Logits [B, N, vocab] at every position of tokens [B, N]: the self-decoder, then one K̂/V̂
    from its output, shared by every cross-decoder layer."""
    eps, theta, d = config["norm_eps"], config["rope_theta"], config["d_model"]
    half = config["n_layers"] // 2
    mixer = config["architecture"]["self_decoder"]
    x = embed(tokens, w, d, store)
    for layer in range(half):
        p = f"self.{layer}"
        h_in = rms_norm(x, w[f"{p}.mixer_norm"], eps, store)
        if mixer["kind"] == "gated_retention":
            mixed = gated_retention(h_in, w, f"{p}.gret", mixer["heads"], mixer["head_dim"], theta, eps, store)
        else:
            mixed = self_attention(h_in, w, f"{p}.swa", config, "yoco", store, window=mixer["window"])
        h = store(x + mixed)
        x = store(h + swiglu_ffn(rms_norm(h, w[f"{p}.ffn_norm"], eps, store), w, f"{p}.ffn", store))
    kv_in = rms_norm(x, w["cross.kv_norm"], eps, store)
    k = rope(heads(linear(kv_in, w["cross.wk"], store), config["n_kv_heads"]), theta, "yoco", store)
    v = heads(linear(kv_in, w["cross.wv"], store), config["n_kv_heads"])
    for layer in range(half):
        p = f"cross.{layer}"
        q_in = rms_norm(x, w[f"{p}.attn_norm"], eps, store)
        q = rope(heads(linear(q_in, w[f"{p}.wq"], store), config["n_heads"]), theta, "yoco", store)
        h = store(x + linear(attention(q, k, v, store), w[f"{p}.wo"], store))
        x = store(h + swiglu_ffn(rms_norm(h, w[f"{p}.ffn_norm"], eps, store), w, f"{p}.ffn", store))
    return linear(rms_norm(x, w["final_norm"], eps, store), w["lm_head"], store)


def transformer_forward(tokens, w, config, store):
    """Logits [B, N, vocab] of the Llama-style twin: every layer attention with its own K/V."""
    eps = config["norm_eps"]
    x = embed(tokens, w, config["d_model"], store)
    for layer in range(config["n_layers"]):
        p = f"layers.{layer}"
        h = store(x + self_attention(rms_norm(x, w[f"{p}.attn_norm"], eps, store), w, f"{p}.attn", config, "llama", store))
        x = store(h + swiglu_ffn(rms_norm(h, w[f"{p}.ffn_norm"], eps, store), w, f"{p}.ffn", store))
    return linear(rms_norm(x, w["final_norm"], eps, store), w["lm_head"], store)


def forward(tokens, w, config, store=exact):
    """Logits [B, N, vocab] of either model, each result kept as `store` keeps it."""
    kind = config["architecture"]["kind"]
    return yoco_forward(tokens, w, config, store) if kind == "yoco" else transformer_forward(tokens, w, config, store)
