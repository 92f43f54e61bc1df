"""yoco's models beside the same models in PyTorch, as a user would write them for inference.

The peer a user would pick instead of yoco for a whole model: PyTorch, eager, with the caches
inference needs — YOCO's self-decoder in flash-linear-attention's chunkwise gated retention
(`naive_chunk_simple_gla`, its PyTorch form, the CPU one; chunk 64) carrying the D x D state
into a recurrent decode step, one K̂/V̂ cache written at prefill, the cross-decoder run for the
last prompt token only (early exit), and scaled_dot_product_attention for every attention; the
Transformer with its per-layer K/V caches. Both load the weights `yoco generate --save-weights`
wrote and must give yoco's logits (--save-logits) before either is timed, so the two sides
are shown to compute the same model.

    python scripts/witness/torch_peer.py --yoco target/release/yoco [--lengths 4096,16384]
        [--new-tokens 32] [--rounds 3] [--configs tiny-yoco,tiny-transformer]

Prints, per config and length: each side's prefill time and decode time per step (the median
of the rounds; yoco's as `yoco generate` prints them, which run its default 2,048-token prefill
spans, each run a fresh process; the peer prefills in one call, warmed by one untimed run), their ratios (the peer's time over yoco's: above 1, yoco
is faster) and the logits' agreement. f32 on the CPU, batch 1, torch's threads as it sets them.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

import safetensors_io
from check import preset


def rms_norm(x, weight, eps):
    return F.rms_norm(x, (x.shape[-1],), weight, eps)


def linear(x, weight):
    return F.linear(x, weight)


def rope_tables(theta, d, length, variant):
    half = d // 2
    i = torch.arange(half, dtype=torch.float32)
    inv_freq = theta ** (-i / (half - 1)) if variant == "yoco" else theta ** (-2.0 * i / d)
    angle = torch.arange(length, dtype=torch.float32)[:, None] * inv_freq[None, :]
    return torch.cos(angle), torch.sin(angle)


def rope(x, tables, start, variant):
    """x [B, N, heads, D] at positions start..start+N-1."""
    cos, sin = (t[start : start + x.shape[1]][None, :, None, :] for t in tables)
    if variant == "yoco":
        a, b = x[..., 0::2], x[..., 1::2]
        return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


def ffn(x, w, p):
    return linear(F.silu(linear(x, w[f"{p}.w1"])) * linear(x, w[f"{p}.w3"]), w[f"{p}.w2"])


def sdpa(q, k, v, causal):
    """q [B, N, H, D], k and v [B, M, Hkv, D] -> [B, N, H * D]."""
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=causal, enable_gqa=True)
    return out.transpose(1, 2).flatten(2)


class Yoco:
    """YOCO with gated retention: the self-decoder's states, one K̂/V̂ cache, early exit."""

    def __init__(self, config, w, capacity):
        from fla.ops.simple_gla.naive import naive_chunk_simple_gla

        self.gla = naive_chunk_simple_gla
        self.c, self.w = config, w
        mixer = config["architecture"]["self_decoder"]
        self.heads, self.dim = mixer["heads"], mixer["head_dim"]
        self.half = config["n_layers"] // 2
        self.gret_rope = rope_tables(config["rope_theta"], self.dim, capacity, "yoco")
        self.attn_rope = rope_tables(config["rope_theta"], config["head_dim"], capacity, "yoco")
        self.capacity = capacity

    def new_cache(self, batch):
        c = self.c
        kv = (batch, self.capacity, c["n_kv_heads"], c["head_dim"])
        return {"len": 0, "states": [None] * self.half, "k": torch.empty(kv), "v": torch.empty(kv)}

    def _gret(self, x, p, cache, layer, start):
        w, b, n = self.w, x.shape[0], x.shape[1]
        shape = (b, n, self.heads, self.dim)
        q = rope(linear(x, w[f"{p}.wq"]).view(shape), self.gret_rope, start, "yoco")
        k = rope(linear(x, w[f"{p}.wk"]).view(shape), self.gret_rope, start, "yoco") / self.dim**0.5
        v = linear(x, w[f"{p}.wv"]).view(shape)
        log_gamma = F.logsigmoid(linear(x, w[f"{p}.wgamma"])) / 16.0  # [B, N, H]
        state = cache["states"][layer]
        if n == 1 and state is not None:
            # The recurrent step: S = γ S + kᵀ v, o = q S.
            gamma = log_gamma.exp()[:, 0, :, None, None]
            state = gamma * state + k[:, 0, :, :, None] * v[:, 0, :, None, :]
            o = torch.einsum("bhd,bhde->bhe", q[:, 0], state)[:, None]
        else:
            o, state = self.gla(q, k, v, g=log_gamma, initial_state=state, output_final_state=True, chunk_size=64, scale=1.0)
        cache["states"][layer] = state
        o = rms_norm(o.reshape(shape), None, self.c["norm_eps"]).flatten(2)
        return linear(F.silu(linear(x, w[f"{p}.wg"])) * o, w[f"{p}.wo"])

    def forward(self, tokens, cache):
        """Logits [B, vocab] of the last token of tokens [B, N], continuing cache."""
        c, w = self.c, self.w
        eps, start, n = c["norm_eps"], cache["len"], tokens.shape[1]
        x = c["d_model"] ** 0.5 * F.embedding(tokens, w["embed"])
        for layer in range(self.half):
            p = f"self.{layer}"
            h = x + self._gret(rms_norm(x, w[f"{p}.mixer_norm"], eps), f"{p}.gret", cache, layer, start)
            x = h + ffn(rms_norm(h, w[f"{p}.ffn_norm"], eps), w, f"{p}.ffn")
        kv_in = rms_norm(x, w["cross.kv_norm"], eps)
        kv = (x.shape[0], n, c["n_kv_heads"], c["head_dim"])
        cache["k"][:, start : start + n] = rope(linear(kv_in, w["cross.wk"]).view(kv), self.attn_rope, start, "yoco")
        cache["v"][:, start : start + n] = linear(kv_in, w["cross.wv"]).view(kv)
        cache["len"] = end = start + n
        k, v = cache["k"][:, :end], cache["v"][:, :end]
        # Early exit: only the last token goes through the cross-decoder; it sees every key.
        x = x[:, -1:]
        for layer in range(self.half):
            p = f"cross.{layer}"
            q = linear(rms_norm(x, w[f"{p}.attn_norm"], eps), w[f"{p}.wq"]).view(x.shape[0], 1, c["n_heads"], c["head_dim"])
            h = x + linear(sdpa(rope(q, self.attn_rope, end - 1, "yoco"), k, v, causal=False), w[f"{p}.wo"])
            x = h + ffn(rms_norm(h, w[f"{p}.ffn_norm"], eps), w, f"{p}.ffn")
        return linear(rms_norm(x[:, -1], w["final_norm"], eps), w["lm_head"])


class Transformer:
    """The Llama-style twin: every layer's own K/V cache."""

    def __init__(self, config, w, capacity):
        self.c, self.w, self.capacity = config, w, capacity
        self.rope = rope_tables(config["rope_theta"], config["head_dim"], capacity, "llama")

    def new_cache(self, batch):
        c = self.c
        kv = (batch, self.capacity, c["n_kv_heads"], c["head_dim"])
        return {"len": 0, "k": [torch.empty(kv) for _ in range(c["n_layers"])], "v": [torch.empty(kv) for _ in range(c["n_layers"])]}

    def forward(self, tokens, cache):
        c, w = self.c, self.w
        eps, start, n, b = c["norm_eps"], cache["len"], tokens.shape[1], tokens.shape[0]
        end = start + n
        x = c["d_model"] ** 0.5 * F.embedding(tokens, w["embed"])
        for layer in range(c["n_layers"]):
            p = f"layers.{layer}"
            h_in = rms_norm(x, w[f"{p}.attn_norm"], eps)
            q = rope(linear(h_in, w[f"{p}.attn.wq"]).view(b, n, c["n_heads"], c["head_dim"]), self.rope, start, "llama")
            kv = (b, n, c["n_kv_heads"], c["head_dim"])
            cache["k"][layer][:, start:end] = rope(linear(h_in, w[f"{p}.attn.wk"]).view(kv), self.rope, start, "llama")
            cache["v"][layer][:, start:end] = linear(h_in, w[f"{p}.attn.wv"]).view(kv)
            # A prefill from an empty cache is causal over itself; a decode step sees every key.
            attn = sdpa(q, cache["k"][layer][:, :end], cache["v"][layer][:, :end], causal=n > 1)
            h = x + linear(attn, w[f"{p}.attn.wo"])
            x = h + ffn(rms_norm(h, w[f"{p}.ffn_norm"], eps), w, f"{p}.ffn")
        cache["len"] = end
        return linear(rms_norm(x[:, -1], w["final_norm"], eps), w["lm_head"])


def run_yoco(yoco, config_name, prompt, new_tokens, seed, folder, save):
    """(prefill seconds, decode seconds per step, weights path, logits path) of one yoco generate."""
    weights, logits = os.path.join(folder, "weights.safetensors"), os.path.join(folder, "logits.safetensors")
    command = [yoco, "generate", "--config", config_name, "--seed", str(seed), "--prompt", ",".join(map(str, prompt)), "--new-tokens", str(new_tokens)]
    if save:
        command += ["--save-weights", weights, "--save-logits", logits, "--force"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    m = re.search(r"prefill ([0-9.]+) s .* decode ([0-9.]+) ms/step", done.stdout)
    return float(m.group(1)), float(m.group(2)) / 1e3, weights, logits


def run_peer(model, prompt, tokens, new_tokens):
    """(prefill seconds, decode seconds per step, every step's logits) of the peer, fed yoco's
    tokens (so both sides' steps see the same inputs)."""
    with torch.inference_mode():
        cache = model.new_cache(1)
        began = time.perf_counter()
        logits = [model.forward(torch.tensor([prompt]), cache)]
        prefill = time.perf_counter() - began
        began = time.perf_counter()
        for s in range(new_tokens - 1):
            logits.append(model.forward(torch.tensor([[int(tokens[0, s])]]), cache))
        decode = (time.perf_counter() - began) / max(new_tokens - 1, 1)
    return prefill, decode, torch.cat(logits).numpy()  # [steps, vocab]: batch 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--yoco", default="target/release/yoco")
    parser.add_argument("--configs", default="tiny-yoco,tiny-transformer")
    parser.add_argument("--lengths", default="300,1024,4096,16384")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    build = subprocess.run([args.yoco, "config", "--list"], check=True, capture_output=True, text=True).stderr.strip()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {build}; torch {torch.__version__}, {torch.get_num_threads()} threads;")
    print(f"f32, batch 1, {args.new_tokens} tokens generated; median of {args.rounds} rounds, the two sides in turn")
    print()
    print("| model | prompt | yoco prefill | peer prefill | peer ÷ yoco | yoco decode/step | peer decode/step | peer ÷ yoco | logits rel. L2 |")
    print("|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(args.seed)
    for name in args.configs.split(","):
        config = preset(args.yoco, name)
        for length in map(int, args.lengths.split(",")):
            prompt = rng.integers(0, config["vocab_size"], size=length).tolist()
            with tempfile.TemporaryDirectory() as folder:
                first = run_yoco(args.yoco, name, prompt, args.new_tokens, args.seed, folder, save=True)
                weights, _ = safetensors_io.load(first[2])
                outputs, _ = safetensors_io.load(first[3])
            w = {k: torch.from_numpy(v.astype(np.float32)) for k, v in weights.items()}
            capacity = length + args.new_tokens
            model = Yoco(config, w, capacity) if config["architecture"]["kind"] == "yoco" else Transformer(config, w, capacity)
            # One call first, untimed: PyTorch's first call sets up its kernels (yoco's runs, each
            # a fresh process, are timed cold: any such cost counts against yoco, not the peer).
            run_peer(model, prompt, outputs["tokens"], 2)
            yoco_times, peer_times = [], []
            for _ in range(args.rounds):
                with tempfile.TemporaryDirectory() as folder:
                    yoco_times.append(run_yoco(args.yoco, name, prompt, args.new_tokens, args.seed, folder, save=False)[:2])
                prefill, decode, peer_logits = run_peer(model, prompt, outputs["tokens"], args.new_tokens)
                peer_times.append((prefill, decode))
            theirs = outputs["logits"][:, 0, :]
            error = np.linalg.norm(peer_logits - theirs) / np.linalg.norm(theirs)
            yp, yd = (statistics.median(t[i] for t in yoco_times) for i in (0, 1))
            pp, pd = (statistics.median(t[i] for t in peer_times) for i in (0, 1))
            print(f"| {name} | {length} | {yp * 1e3:.0f} ms | {pp * 1e3:.0f} ms | **{pp / yp:.2f}** | {yd * 1e3:.2f} ms | {pd * 1e3:.2f} ms | **{pd / yd:.2f}** | {error:.1e} |", flush=True)
            if not error < 1e-4:
                sys.exit(f"torch_peer: the peer's logits differ from yoco's by {error:.2e}: not the same model, so not timed as one")


if __name__ == "__main__":
    main()
