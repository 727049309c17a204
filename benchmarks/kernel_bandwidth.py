"""Achieved memory bandwidth of the routing kernels against a device-to-device copy on the same GPU.

Needs a CUDA GPU, torch with CUDA, and the kernel library (irexport plugins build). Bytes counted:
gather reads and writes the executed rows; scatter-add copies x (read + write) and reads the unit's
rows and the rows it adds to, then writes them; the copy reads and writes the whole [tokens, hidden].

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
    fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeats / 1e3  # seconds


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
    rows = []
    for dtype_name, (dtype, code) in DTYPES.items():
        size = torch.finfo(dtype).bits // 8
        for tokens in map(int, args.tokens.split(",")):
            for hidden in map(int, args.hidden.split(",")):
                x = torch.randn(1, tokens, hidden, device="cuda", dtype=dtype)
                execute = torch.rand(1, tokens, device="cuda") < args.fraction
                index = torch.nonzero(execute[0]).T.contiguous()  # [1, Tq], executed positions in order
                tq = index.shape[1]
                y = torch.randn(1, tq, hidden, device="cuda", dtype=dtype)
                packed, out, copy = (torch.empty(1, tq, hidden, device="cuda", dtype=dtype), torch.empty_like(x),
                                     torch.empty_like(x))
                t_copy = timed(lambda: copy.copy_(x))
                t_gather = timed(lambda: lib.irx_cuda_gather(ptr(x), ptr(index), code, 1, tokens, tq, hidden, ptr(packed)))
                t_scatter = timed(lambda: lib.irx_cuda_scatter_add(ptr(x), ptr(y), ptr(index), code, 1, tokens, tq, hidden, ptr(out)))
                bw_copy = 2 * tokens * hidden * size / t_copy
                bw_gather = 2 * tq * hidden * size / t_gather
                bw_scatter = (2 * tokens * hidden + 3 * tq * hidden) * size / t_scatter
                row = {"dtype": dtype_name, "tokens": tokens, "hidden": hidden, "executed": tq / tokens,
                       "copy_GBps": bw_copy / 1e9, "gather_GBps": bw_gather / 1e9, "scatter_add_GBps": bw_scatter / 1e9,
                       "gather_of_copy": bw_gather / bw_copy, "scatter_add_of_copy": bw_scatter / bw_copy}
                rows.append(row)
                print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    result = {"benchmark": "kernel_bandwidth", "date": datetime.date.today().isoformat(),
              "gpu": torch.cuda.get_device_name(), "note": "the C ABI synchronises after each call; times include it",
              "rows": rows}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
