"""Llama-3-8B units on a GPU, dense against compact, bf16: the MLP (SwiGLU 4096 -> 14336 -> 4096) and the
attention query path (Q projection, attention core over a KV cache, O projection; 32 heads, 8 KV heads,
head_dim 128). Matrix products through torch (cuBLAS), the core through scaled_dot_product_attention; the
compaction through the project's CUDA kernels (C ABI, ctypes), as the compact export runs it: RouteIndex [N]
-> RouteGather [N, d] -> unit -> RouteScatterAdd, the attention core on RouteSeqIndex's [B, Tq] slots.

Tokens <= 64 are a decode step of that many sequences (one token each) over a KV cache of --context tokens;
more are one prefill sequence attending causally to itself. K and V (8 heads) are repeated to the 32 query
heads beforehand, for both paths, so that SDPA's flash (dense, causal) and memory-efficient (compact, a mask
by position) kernels serve them. Per row: a random mask with round(fraction * tokens) executed tokens (at
least one), dense and compact interleaved in each repeat, CUDA events, medians; the compact time includes
the routing kernels and the host read of N and Tq (torch allocates [N, d] by it, as TensorRT does by a size
tensor). ideal = the unit's FLOPs over every token / over the executed ones. Also the bandwidth of gather
and scatter-add against a device-to-device copy of the same bytes (target >= 85%).

    cmake -S plugins -B build/plugins -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build/plugins
    python benchmarks/gpu_units.py [--lib build/plugins/libirexport_kernels.so] [--context 2048]

Writes benchmarks/results/gpu_units.json, and gpu_units.png when matplotlib is importable.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

D, I, H, HKV, HD = 4096, 14336, 32, 8, 128  # noqa: E741 - Llama-3-8B; I: the MLP's size
TOKENS = (1, 8, 64, 512, 2048, 8192)
FRACTIONS = (0.25, 0.5, 0.75)
BF16 = 7  # the kernels' dtype code (TensorRT's DataType numbering)
RESULTS = Path(__file__).with_name("results")


class Kernels:
    """libirexport_kernels.so's C ABI on the current torch stream (a non-default one: the calls only enqueue)."""

    def __init__(self, path: Path):
        self.lib = ctypes.CDLL(str(path))
        for name in ("irx_cuda_index_workspace_size", "irx_cuda_seq_index_workspace_size"):
            getattr(self.lib, name).restype = ctypes.c_size_t

    def __call__(self, name, *args):
        args = [ctypes.c_void_p(a.data_ptr()) if isinstance(a, torch.Tensor) else a for a in args]
        error = getattr(self.lib, f"irx_cuda_{name}")(*args, ctypes.c_void_p(torch.cuda.current_stream().cuda_stream))
        if error:
            raise RuntimeError(f"irx_cuda_{name}: CUDA error {error}")

    def index(self, execute):
        """RouteIndex's rows [N] and RouteSeqIndex's slots [B, Tq], with one host read for N and Tq."""
        B, T = execute.shape
        index, slots = (torch.empty(B * T, dtype=torch.int64, device="cuda") for _ in range(2))  # upper bounds
        counts = torch.empty(2, dtype=torch.int32, device="cuda")
        words = max(self.lib.irx_cuda_index_workspace_size(B, T), self.lib.irx_cuda_seq_index_workspace_size(B, T)) // 4
        workspace = torch.empty(words + 1, dtype=torch.int32, device="cuda")
        self("index", execute, B, T, index, counts, workspace)
        self("seq_index", execute, B, T, slots, counts[1:], workspace)
        n, tq = counts.tolist()
        return index[:n], slots[: B * tq].view(B, tq)

    def gather(self, x, index):
        out = torch.empty(*index.shape, x.shape[-1], dtype=x.dtype, device="cuda")
        self("gather", x, index, BF16, index.numel(), x.shape[-1], out)
        return out

    def scatter_add(self, x, y, index):
        out = torch.empty_like(x)
        self("scatter_add", x, y.contiguous(), index, BF16, x.numel() // x.shape[-1], index.numel(), x.shape[-1], out)
        return out


def mlp(w, x):
    gate, up = F.linear(x, w["gate_up"]).chunk(2, dim=-1)
    return F.linear(F.silu(gate) * up, w["down"])


def core(q, k, v, mask):
    """q [B, Tq, H*hd] against the cache k, v [B, H, S, hd]; no mask: causal when Tq > 1 (dense prefill)."""
    B, Tq, _ = q.shape
    out = F.scaled_dot_product_attention(q.view(B, Tq, H, HD).transpose(1, 2), k, v, attn_mask=mask,
                                         is_causal=mask is None and Tq > 1)
    return out.transpose(1, 2).reshape(B, Tq, H * HD)


def units(w, kernels, execute, k, v):
    """{unit: (dense, compact)}, each x [B*T, d] -> x + the unit's output (compact: on the executed rows only)."""
    B, T = execute.shape

    def dense_attention(x):
        return x + F.linear(core(F.linear(x, w["q"]).view(B, T, H * HD), k, v, None).flatten(0, 1), w["o"])

    def compact_attention(x):
        index, slots = kernels.index(execute)
        q = kernels.gather(F.linear(kernels.gather(x, index), w["q"]), slots)  # [B, Tq, H*hd]
        mask = None  # decode: each query sees the whole cache
        if T > 1:  # prefill: the query at position t sees keys <= t (padding slots see key 0; they are dropped)
            position = torch.where(slots >= 0, index[slots.clamp(min=0)] % T, 0)
            mask = (torch.arange(k.shape[2], device=k.device) <= position[..., None])[:, None]
        o = kernels.scatter_add(x.new_zeros(index.numel(), H * HD), core(q, k, v, mask), slots)  # back to [N, H*hd]
        return kernels.scatter_add(x, F.linear(o, w["o"]), index)

    def compact_mlp(x):
        index, _ = kernels.index(execute)
        return kernels.scatter_add(x, mlp(w, kernels.gather(x, index)), index)

    return {"mlp": (lambda x: x + mlp(w, x), compact_mlp), "attention": (dense_attention, compact_attention)}


def timed(a, b, repeats):
    """Median milliseconds of a and of b, run one after the other in each repeat."""
    for _ in range(3):  # warm-up: cuBLAS heuristics, the caching allocator
        a(), b()
    events = [[torch.cuda.Event(enable_timing=True) for _ in range(3)] for _ in range(repeats)]
    for e0, e1, e2 in events:
        e0.record()
        a()
        e1.record()
        b()
        e2.record()
    torch.cuda.synchronize()

    def median(values):
        return sorted(values)[len(values) // 2]

    return median([e0.elapsed_time(e1) for e0, e1, _ in events]), median([e1.elapsed_time(e2) for _, e1, e2 in events])


def random_mask(B, T, fraction, g):
    execute = torch.zeros(B * T, dtype=torch.int32)
    execute[torch.randperm(B * T, generator=g)[: max(1, round(fraction * B * T))]] = 1
    return execute.view(B, T).cuda()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lib", type=Path, default=Path("build/plugins/libirexport_kernels.so"))
    p.add_argument("--context", type=int, default=2048, help="KV cache length of the decode rows")
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("gpu_units: needs a CUDA GPU (torch.cuda.is_available() is False)", file=sys.stderr)
        sys.exit(2)
    if not args.lib.is_file():
        print(f"gpu_units: {args.lib}: no kernel library (build plugins/ first, see --help)", file=sys.stderr)
        sys.exit(2)
    kernels = Kernels(args.lib)
    stream = torch.cuda.Stream()
    torch.cuda.set_stream(stream)
    g = torch.Generator().manual_seed(0)
    bf16 = dict(dtype=torch.bfloat16, device="cuda")
    w = {"gate_up": torch.randn(2 * I, D, **bf16) * 0.02, "down": torch.randn(D, I, **bf16) * 0.02,
         "q": torch.randn(H * HD, D, **bf16) * 0.02, "o": torch.randn(D, H * HD, **bf16) * 0.02}
    rows, bandwidth = [], []
    for tokens in TOKENS:
        B, T, S = (tokens, 1, args.context) if tokens <= 64 else (1, tokens, tokens)
        k, v = (torch.randn(B, HKV, S, HD, **bf16).repeat_interleave(H // HKV, dim=1) for _ in range(2))
        x = torch.randn(B * T, D, **bf16)
        keys = torch.full((B * T,), S) if T == 1 else torch.arange(1, T + 1)  # keys each query sees
        flops = {"mlp": torch.full((B * T,), 6.0 * D * I), "attention": 4.0 * D * H * HD + 4.0 * H * HD * keys}
        for fraction in FRACTIONS:
            execute = random_mask(B, T, fraction, g)
            executed = execute.flatten().bool()
            for unit, (dense, compact) in units(w, kernels, execute, k, v).items():
                want, got = dense(x), compact(x)  # the kernels have not run on a GPU before: check them here
                assert torch.equal(got[~executed], x[~executed]), unit
                torch.testing.assert_close(got[executed], want[executed], atol=5e-2, rtol=2e-2)
                dense_ms, compact_ms = timed(lambda: dense(x), lambda: compact(x), args.repeats)
                row = {"unit": unit, "tokens": tokens, "batch": B, "context": S, "fraction": fraction,
                       "executed": executed.float().mean().item(),
                       "dense_ms": dense_ms, "compact_ms": compact_ms, "speedup": dense_ms / compact_ms,
                       "ideal_speedup": (flops[unit].sum() / flops[unit][executed.cpu()].sum()).item()}
                rows.append(row)
                print(json.dumps({key: round(val, 4) if isinstance(val, float) else val for key, val in row.items()}), flush=True)
        if tokens >= 512:  # below that a kernel is its launch, not its bytes
            index, _ = kernels.index(random_mask(1, tokens, 0.5, g))
            n = index.numel()
            y = torch.randn(n, D, **bf16)
            row = {"tokens": tokens, "executed": n}
            # elements read + written: gather its rows; scatter-add the copy of x, then y and the rows it adds to
            for name, kernel, moved in (("gather", lambda: kernels.gather(x, index), 2 * n * D),
                                        ("scatter_add", lambda: kernels.scatter_add(x, y, index), 2 * tokens * D + 3 * n * D)):
                src = torch.empty(moved // 2, **bf16)  # a copy reads and writes it: the kernel's bytes
                dst = torch.empty_like(src)
                kernel_ms, copy_ms = timed(kernel, lambda: dst.copy_(src), args.repeats)
                row |= {f"{name}_of_copy": copy_ms / kernel_ms, f"{name}_GBps": 2 * moved / kernel_ms / 1e6}
            bandwidth.append(row)
            print(json.dumps(row), flush=True)
    result = {"benchmark": "gpu_units", "date": datetime.date.today().isoformat(), "gpu": torch.cuda.get_device_name(),
              "torch": torch.__version__, "model": "Llama-3-8B (d 4096, SwiGLU 14336, 32 heads / 8 KV heads, head_dim 128), bf16",
              "rows": rows, "bandwidth": {"target_of_copy": 0.85, "rows": bandwidth}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gpu_units.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS / 'gpu_units.json'}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, unit in zip(axes, ("mlp", "attention"), strict=False):
        for fraction, color in zip(FRACTIONS, ("C0", "C1", "C2"), strict=False):
            mine = [r for r in rows if r["unit"] == unit and r["fraction"] == fraction]
            ax.plot([r["tokens"] for r in mine], [r["speedup"] for r in mine], "o-", color=color, label=f"executed {fraction}")
            ax.plot([r["tokens"] for r in mine], [r["ideal_speedup"] for r in mine], "--", color=color)
        ax.set(xscale="log", title=f"{unit} (dashed: ideal)", xlabel="tokens")
        ax.axhline(1, color="gray", lw=0.5)
    axes[0].set_ylabel("dense / compact")
    axes[0].legend()
    fig.suptitle(f"Llama-3-8B units, bf16, {torch.cuda.get_device_name()}")
    fig.savefig(RESULTS / "gpu_units.png", dpi=120, bbox_inches="tight")
    print(f"wrote {RESULTS / 'gpu_units.png'}")


if __name__ == "__main__":
    main()
