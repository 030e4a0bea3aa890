#!/usr/bin/env python3
"""PyTorch peer for bench/bench_nn.c: the same DistilGPT-2 shape and the same
four figures (training tokens/s at B=4,T=64 with AdamW, prefill tokens/s for
4x64, decode tokens/s with a KV cache at batch 1 and 8), so the two can be
measured side by side on one machine.  Needs Debian's python3-torch (run it
with /usr/bin/python3); never a build or test dependency.

    /usr/bin/python3 bench/pytorch_nn.py --threads 1
"""
import argparse, json, math, time
import torch
import torch.nn.functional as F

L, H, C, V, P = 6, 12, 768, 50257, 1024


def make(seed):
    g = torch.Generator().manual_seed(seed)
    def p(*shape, std=0.02, mean=0.0):
        return torch.nn.Parameter(torch.randn(*shape, generator=g) * std + mean)
    w = {"wte": p(V, C), "wpe": p(P, C), "lnf_w": p(C, std=0, mean=1), "lnf_b": p(C, std=0)}
    for i in range(L):
        w[f"{i}.ln1_w"] = p(C, std=0, mean=1); w[f"{i}.ln1_b"] = p(C, std=0)
        w[f"{i}.qkv_w"] = p(C, 3 * C); w[f"{i}.qkv_b"] = p(3 * C, std=0)
        w[f"{i}.proj_w"] = p(C, C); w[f"{i}.proj_b"] = p(C, std=0)
        w[f"{i}.ln2_w"] = p(C, std=0, mean=1); w[f"{i}.ln2_b"] = p(C, std=0)
        w[f"{i}.fc_w"] = p(C, 4 * C); w[f"{i}.fc_b"] = p(4 * C, std=0)
        w[f"{i}.fc2_w"] = p(4 * C, C); w[f"{i}.fc2_b"] = p(C, std=0)
    return w


def forward(w, idx, cache=None, pos0=0):
    """idx (B,T); cache: list of (k, v) per layer, each (B,H,T_past,hs) or None."""
    B, T = idx.shape
    hs = C // H
    x = w["wte"][idx] + w["wpe"][pos0:pos0 + T][None]
    new_cache = []
    for i in range(L):
        h = F.layer_norm(x, (C,), w[f"{i}.ln1_w"], w[f"{i}.ln1_b"])
        q, k, v = (h @ w[f"{i}.qkv_w"] + w[f"{i}.qkv_b"]).split(C, dim=2)
        q, k, v = [t.view(B, T, H, hs).transpose(1, 2) for t in (q, k, v)]
        if cache is not None and cache[i] is not None:
            k = torch.cat([cache[i][0], k], dim=2)
            v = torch.cat([cache[i][1], v], dim=2)
        new_cache.append((k, v))
        Tk = k.shape[2]
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        mask = torch.ones(T, Tk, dtype=torch.bool).tril(diagonal=Tk - T)
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ w[f"{i}.proj_w"] + w[f"{i}.proj_b"]
        h = F.layer_norm(x, (C,), w[f"{i}.ln2_w"], w[f"{i}.ln2_b"])
        h = F.gelu(h @ w[f"{i}.fc_w"] + w[f"{i}.fc_b"], approximate="tanh")
        x = x + h @ w[f"{i}.fc2_w"] + w[f"{i}.fc2_b"]
    x = F.layer_norm(x, (C,), w["lnf_w"], w["lnf_b"])
    return x @ w["wte"].t(), new_cache


def median_time(fn, reps):
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    w = make(1)
    opt = torch.optim.AdamW(w.values(), lr=1e-4, weight_decay=0.01)
    B, T = 4, 64
    idx = torch.randint(0, V, (B, T)); tgt = torch.randint(0, V, (B, T))

    def train_step():
        logits, _ = forward(w, idx)
        loss = F.cross_entropy(logits.view(-1, V), tgt.view(-1))
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    train_step()
    train_s = median_time(train_step, a.reps)

    with torch.no_grad():
        prefill_s = median_time(lambda: forward(w, idx), a.reps)
        def decode(bsz, steps=32):
            _, cache = forward(w, torch.randint(0, V, (bsz, 16)))
            tok = torch.randint(0, V, (bsz, 1))
            t0 = time.perf_counter()
            for s in range(steps):
                logits, cache = forward(w, tok, cache, 16 + s)
                tok = logits[:, -1].argmax(-1, keepdim=True)
            return bsz * steps / (time.perf_counter() - t0)
        decode(1, 4)
        d1 = sorted(decode(1) for _ in range(3))[1]
        d8 = sorted(decode(8) for _ in range(3))[1]
    print(json.dumps({"bench": "pytorch_nn", "torch": torch.__version__, "threads": a.threads,
                      "train_tokens_per_s": round(B * T / train_s, 1),
                      "prefill_tokens_per_s": round(B * T / prefill_s, 1),
                      "decode_b1_tokens_per_s": round(d1, 1),
                      "decode_b8_tokens_per_s": round(d8, 1)}))


if __name__ == "__main__":
    main()
