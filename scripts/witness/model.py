"""YOCO and its Transformer twin in NumPy, in f64, written from shared/SPEC.md alone.

A second implementation, in another language, that shares no code with yoco: not its kernels,
not its f64 references, not its model assembly. It runs a whole sequence at once, the plainest
way the spec allows — no cache, no early exit, gated retention in its parallel form, attention
with its mask written out — so that where it agrees with yoco's prefill and decode steps, yoco's
caches, chunking, early exit and fast paths agree with the spec as read a second time.

Weights are yoco's safetensors names (src/model/weights.rs), linear weights `[out, in]`.
"""

import numpy as np


def rms_norm(x, weight, eps):
    """x * rsqrt(mean(x^2) + eps) * weight, over the last axis (weight None: no affine)."""
    y = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return y if weight is None else y * weight


def silu(x):
    # x * sigmoid(x) written with tanh, which cannot overflow for large |x|.
    return x * 0.5 * (1.0 + np.tanh(0.5 * x))


def log_sigmoid(z):
    # log(1 / (1 + e^-z)) without overflow for either sign of z.
    return np.minimum(z, 0.0) - np.log1p(np.exp(-np.abs(z)))


def linear(x, weight):
    """x W^T for a weight stored [out, in]."""
    return x @ weight.T


def rope(x, theta, variant):
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
    return out


def heads(x, count):
    """[B, N, count * D] -> [B, N, count, D]."""
    return x.reshape(x.shape[0], x.shape[1], count, -1)


def attention(q, k, v, window=None):
    """Causal grouped-query attention over one whole sequence: q [B, N, H, D], k and v
    [B, N, Hkv, D]; query head h reads key/value head h // (H / Hkv). Query i sees key j for
    j <= i, and with a window W only the W keys i - W < j <= i. Returns [B, N, H * D]."""
    b, n, h, d = q.shape
    group = h // k.shape[2]
    k, v = np.repeat(k, group, axis=2), np.repeat(v, group, axis=2)
    scores = np.einsum("bihd,bjhd->bhij", q, k) / np.sqrt(d)
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    visible = j <= i
    if window is not None:
        visible &= j > i - window
    scores = np.where(visible, scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights /= weights.sum(axis=-1, keepdims=True)
    return np.einsum("bhij,bjhd->bihd", weights, v).reshape(b, n, h * d)


def swiglu_ffn(x, w, prefix):
    return linear(silu(linear(x, w[f"{prefix}.w1"])) * linear(x, w[f"{prefix}.w3"]), w[f"{prefix}.w2"])


def gated_retention(x, w, prefix, n_heads, head_dim, theta, eps):
    """The parallel form: O = (Q K^T ⊙ Dm) V, Dm[n, m] = exp(G_n - G_m) for m <= n, G the
    cumulative sum of log γ = logsigmoid(x Wγ) / 16; then a per-head RMSNorm of O without weight,
    and (silu(x Wg) ⊙ O) Wo."""
    b, n, _ = x.shape
    q = rope(heads(linear(x, w[f"{prefix}.wq"]), n_heads), theta, "yoco")
    k = rope(heads(linear(x, w[f"{prefix}.wk"]), n_heads), theta, "yoco") / np.sqrt(head_dim)
    v = heads(linear(x, w[f"{prefix}.wv"]), n_heads)
    g = linear(x, w[f"{prefix}.wg"])
    log_gamma = log_sigmoid(linear(x, w[f"{prefix}.wgamma"])) / 16.0  # [B, N, H]
    cum = np.cumsum(log_gamma, axis=1)
    diff = cum[:, :, None, :] - cum[:, None, :, :]  # [B, n, m, H]: G_n - G_m
    causal = (np.arange(n)[None, :] <= np.arange(n)[:, None])[None, :, :, None]
    decay = np.where(causal, np.exp(np.where(causal, diff, 0.0)), 0.0)
    scores = np.einsum("bnhd,bmhd->bnmh", q, k) * decay
    o = np.einsum("bnmh,bmhd->bnhd", scores, v)
    o = rms_norm(o, None, eps).reshape(b, n, n_heads * head_dim)
    return linear(silu(g) * o, w[f"{prefix}.wo"])


def self_attention(x, w, prefix, config, rope_variant, window=None):
    """Attention with its own K/V (the Transformer's layers, YOCO's sliding-window layers)."""
    theta = config["rope_theta"]
    q = rope(heads(linear(x, w[f"{prefix}.wq"]), config["n_heads"]), theta, rope_variant)
    k = rope(heads(linear(x, w[f"{prefix}.wk"]), config["n_kv_heads"]), theta, rope_variant)
    v = heads(linear(x, w[f"{prefix}.wv"]), config["n_kv_heads"])
    return linear(attention(q, k, v, window), w[f"{prefix}.wo"])


def embed(tokens, w, d):
    return np.sqrt(d) * w["embed"][tokens]


def yoco_forward(tokens, w, config):
    """Logits [B, N, vocab] at every position of tokens [B, N]: the self-decoder, then one K̂/V̂
    from its output, shared by every cross-decoder layer."""
    eps, theta, d = config["norm_eps"], config["rope_theta"], config["d_model"]
    half = config["n_layers"] // 2
    mixer = config["architecture"]["self_decoder"]
    x = embed(tokens, w, d)
    for layer in range(half):
        p = f"self.{layer}"
        h_in = rms_norm(x, w[f"{p}.mixer_norm"], eps)
        if mixer["kind"] == "gated_retention":
            mixed = gated_retention(h_in, w, f"{p}.gret", mixer["heads"], mixer["head_dim"], theta, eps)
        else:
            mixed = self_attention(h_in, w, f"{p}.swa", config, "yoco", window=mixer["window"])
        h = x + mixed
        x = h + swiglu_ffn(rms_norm(h, w[f"{p}.ffn_norm"], eps), w, f"{p}.ffn")
    kv_in = rms_norm(x, w["cross.kv_norm"], eps)
    k = rope(heads(linear(kv_in, w["cross.wk"]), config["n_kv_heads"]), theta, "yoco")
    v = heads(linear(kv_in, w["cross.wv"]), config["n_kv_heads"])
    for layer in range(half):
        p = f"cross.{layer}"
        q = rope(heads(linear(rms_norm(x, w[f"{p}.attn_norm"], eps), w[f"{p}.wq"]), config["n_heads"]), theta, "yoco")
        h = x + linear(attention(q, k, v), w[f"{p}.wo"])
        x = h + swiglu_ffn(rms_norm(h, w[f"{p}.ffn_norm"], eps), w, f"{p}.ffn")
    return linear(rms_norm(x, w["final_norm"], eps), w["lm_head"])


def transformer_forward(tokens, w, config):
    """Logits [B, N, vocab] of the Llama-style twin: every layer attention with its own K/V."""
    eps = config["norm_eps"]
    x = embed(tokens, w, config["d_model"])
    for layer in range(config["n_layers"]):
        p = f"layers.{layer}"
        h = x + self_attention(rms_norm(x, w[f"{p}.attn_norm"], eps), w, f"{p}.attn", config, "llama")
        x = h + swiglu_ffn(rms_norm(h, w[f"{p}.ffn_norm"], eps), w, f"{p}.ffn")
    return linear(rms_norm(x, w["final_norm"], eps), w["lm_head"])


def forward(tokens, w, config):
    kind = config["architecture"]["kind"]
    return yoco_forward(tokens, w, config) if kind == "yoco" else transformer_forward(tokens, w, config)
