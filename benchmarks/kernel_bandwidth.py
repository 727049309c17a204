"""Achieved memory bandwidth of the routing kernels against a device-to-device copy on the same GPU.

Needs a CUDA GPU, torch with CUDA, and the kernel library (irexport plugins build). The kernels take
the flat index of RouteIndex ([N] rows of x [tokens, hidden]) and run on a torch stream, so nothing
synchronises between calls. Bytes counted: gather reads and writes the executed rows; scatter-add copies
x (read + write) and reads the unit's rows and the rows it adds to, then writes them; the copy reads and
writes the whole [tokens, hidden].

    python benchmarks/kernel_bandwidth.py --lib build/plugins/libirexport_kernels.so
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import sys
from pathlib import Path

import torch

DTYPES = {"float16": (torch.float16, 1), "bfloat16": (torch.bfloat16, 7), "float32": (torch.float32, 0)}


def timed(fn, repeats=20):
    """Seconds per call, on the current (non-default) stream: the C ABI then only enqueues."""
    fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeats / 1e3


def check(error: int):
    if error:
        sys.exit(f"kernel_bandwidth: a kernel failed with CUDA error {error}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lib", type=Path, default=Path("build/plugins/libirexport_kernels.so"))
    p.add_argument("--tokens", default="512,4096,16384")
    p.add_argument("--hidden", default="2048,4096,8192")
    p.add_argument("--fraction", type=float, default=0.5)
    p.add_argument("--output", type=Path, default=Path(__file__).with_name("results") / "kernel_bandwidth.json")
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("kernel_bandwidth: needs a CUDA GPU (torch.cuda.is_available() is False)")
    lib = ctypes.CDLL(str(args.lib))
    ptr = lambda t: ctypes.c_void_p(t.data_ptr())  # noqa: E731
    stream = torch.cuda.Stream()
    torch.cuda.set_stream(stream)
    on = ctypes.c_void_p(stream.cuda_stream)
    rows = []
    for dtype_name, (dtype, code) in DTYPES.items():
        size = torch.finfo(dtype).bits // 8
        for tokens in map(int, args.tokens.split(",")):
            for hidden in map(int, args.hidden.split(",")):
                x = torch.randn(tokens, hidden, device="cuda", dtype=dtype)
                index = torch.nonzero(torch.rand(tokens, device="cuda") < args.fraction).flatten()  # RouteIndex's [N]
                n = index.numel()
                y = torch.randn(n, hidden, device="cuda", dtype=dtype)
                packed, out, copy = torch.empty_like(y), torch.empty_like(x), torch.empty_like(x)
                t_copy = timed(lambda: copy.copy_(x))
                t_gather = timed(lambda: check(lib.irx_cuda_gather(ptr(x), ptr(index), code, n, hidden, ptr(packed), on)))
                t_scatter = timed(lambda: check(lib.irx_cuda_scatter_add(ptr(x), ptr(y), ptr(index), code, tokens, n, hidden,
                                                                         ptr(out), on)))
                bw_copy = 2 * tokens * hidden * size / t_copy
                bw_gather = 2 * n * hidden * size / t_gather
                bw_scatter = (2 * tokens * hidden + 3 * n * hidden) * size / t_scatter
                row = {"dtype": dtype_name, "tokens": tokens, "hidden": hidden, "executed": n / tokens,
                       "copy_GBps": bw_copy / 1e9, "gather_GBps": bw_gather / 1e9, "scatter_add_GBps": bw_scatter / 1e9,
                       "gather_of_copy": bw_gather / bw_copy, "scatter_add_of_copy": bw_scatter / bw_copy}
                rows.append(row)
                print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    result = {"benchmark": "kernel_bandwidth", "date": datetime.date.today().isoformat(),
              "gpu": torch.cuda.get_device_name(), "rows": rows}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
