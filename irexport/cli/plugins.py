"""``irexport plugins build``: configure and build plugins/ with CMake (kernels, the TensorRT plugin library
when TensorRT's headers are found, and the ONNX Runtime kernels when ONNX Runtime's C API header is).
``irexport plugins check``: run the plugin harness (a stand-in for TensorRT, built with the plugins) on the
routing nodes of exports, without TensorRT or a GPU."""

from __future__ import annotations

from pathlib import Path

from ..resources import plugin_build_dir, plugin_sources
from .common import log

SOURCE = plugin_sources()
BUILD_HELP = "build/plugins of the checkout; installed from a wheel, ~/.local/share/irexport/plugins ($XDG_DATA_HOME)"


def add_parser(sub) -> None:
    p = sub.add_parser("plugins", help="build the routing kernels and TensorRT plugins (CMake)",
                       description="Build plugins/ with CMake: the host library, the CUDA kernels (with nvcc), "
                                   "libirexport_plugins.so (with TensorRT's headers) and libirexport_onnxrt.so, ONNX "
                                   "Runtime kernels for the routing ops (with ONNX Runtime's C API header). Same as: "
                                   "cmake -S plugins -B BUILD_DIR && cmake --build BUILD_DIR")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = actions.add_parser("build", help="configure and build")
    b.add_argument("--build-dir", type=Path, default=plugin_build_dir(), help=f"default: {BUILD_HELP}")
    b.add_argument("--tensorrt-root", type=Path, help="TensorRT install (include/, lib/); default: auto-detect")
    b.add_argument("--onnxruntime-root", type=Path, help="directory whose include/ holds ONNX Runtime's C API header "
                                                        "onnxruntime_c_api.h (default: $ONNXRUNTIME_ROOT, else system paths)")
    b.add_argument("--cuda-archs", help="CUDA architectures, e.g. '90' (default: 80;86;89;90)")
    b.set_defaults(func=main)
    c = actions.add_parser("check", help="check the plugin library against exports, as TensorRT would call it",
                           description="Run irexport-plugin-harness (built by `plugins build` when TensorRT headers are "
                                       "found): every distinct routing node of the exports goes through the plugin "
                                       "library as TensorRT's ONNX parser and builder would use it (creator lookup, "
                                       "fields, outputs, types, symbolic shapes, formats, serialization), then "
                                       "registration under each loader style. No TensorRT or GPU needed. "
                                       "Exit 0 when everything conforms, 1 when a check fails.")
    c.add_argument("exports", nargs="+", type=Path, help="export directories (their *.onnx) or .onnx files")
    c.add_argument("--build-dir", type=Path, default=plugin_build_dir(),
                   help=f"where `plugins build` wrote (default: {BUILD_HELP})")
    c.set_defaults(func=check)


def check(args) -> int:
    import subprocess
    import tempfile

    from ..engine.loading import plugin_tensorrt_major
    from ..errors import IrexportError
    from ..ops.plugin_cases import write_cases

    build = args.build_dir
    harness, library, register = (build / "irexport-plugin-harness", build / "libirexport_plugins.so",
                                  build / "libirexport_plugins_register.so")
    for path in (harness, library, register):
        if not path.is_file():
            raise IrexportError(f"{path}: not found; build it with `irexport plugins build` (needs CUDA and the TensorRT "
                                "headers: --tensorrt-root DIR)")
    # the harness's stand-in libnvinfer, of the major the plugin library was built for
    standin = build / "standin" / f"libnvinfer.so.{plugin_tensorrt_major(library.resolve())}"
    files = []
    for export in args.exports:
        found = sorted(export.glob("*.onnx")) if export.is_dir() else [export]
        if not found or not all(f.is_file() and f.suffix == ".onnx" for f in found):
            raise IrexportError(f"{export}: no .onnx file here")
        files += found
    with tempfile.TemporaryDirectory() as tmp:
        cases = Path(tmp) / "cases.tsv"
        try:
            count = write_cases(files, cases)
        except Exception as e:  # noqa: BLE001 - onnx's DecodeError and friends: a file that is not ONNX
            raise IrexportError(f"cannot read the routing nodes of {', '.join(map(str, files))}: {e}") from None
        log(f"{count} distinct routing-node signatures in {len(files)} ONNX file(s)")
        steps = [["contract", str(library), str(cases)]] if count else []
        steps.append(["loaders", str(library), str(register), str(standin)])
        try:
            codes = [subprocess.run([str(harness), *step]).returncode for step in steps]
        except OSError as e:
            raise IrexportError(f"{harness}: cannot run ({e.strerror}); rebuild with `irexport plugins build`") from None
    if any(code not in (0, 1) for code in codes):
        raise IrexportError(f"{harness} could not run (exit codes {codes})")
    return 1 if any(codes) else 0


def main(args) -> int:
    import re
    import shutil
    import subprocess

    from ..errors import IrexportError

    if not (SOURCE / "CMakeLists.txt").is_file():
        raise IrexportError(f"{SOURCE}: plugin sources not found (this irexport install lacks its package data: "
                            "reinstall it, or build from a checkout of the irexport repository)")
    if shutil.which("cmake") is None:
        raise IrexportError("cmake is not installed (pip install cmake, or your system's package)")
    if args.build_dir.exists() and not args.build_dir.is_dir():
        raise IrexportError(f"--build-dir {args.build_dir}: exists and is not a directory")
    configure = ["cmake", "-S", str(SOURCE), "-B", str(args.build_dir)]
    if args.tensorrt_root:
        if not (args.tensorrt_root / "include" / "NvInferRuntime.h").is_file():
            raise IrexportError(f"{args.tensorrt_root}: no TensorRT headers here (expected include/NvInferRuntime.h)")
        configure.append(f"-DTensorRT_ROOT={args.tensorrt_root.resolve()}")
    if args.onnxruntime_root:
        if not (args.onnxruntime_root / "include" / "onnxruntime_c_api.h").is_file():
            raise IrexportError(f"{args.onnxruntime_root}: no ONNX Runtime C API header here (expected "
                                "include/onnxruntime_c_api.h)")
        configure.append(f"-DONNXRUNTIME_ROOT={args.onnxruntime_root.resolve()}")
    if args.cuda_archs:
        if not re.fullmatch(r"([1-9]\d+a?(-real|-virtual)?)(;[1-9]\d+a?(-real|-virtual)?)*|native|all|all-major", args.cuda_archs):
            raise IrexportError(f"--cuda-archs {args.cuda_archs!r}: expected CUDA architectures such as '90' or '80;90' "
                                "(or native, all, all-major)")
        configure.append(f"-DCMAKE_CUDA_ARCHITECTURES={args.cuda_archs}")
    for step in (configure, ["cmake", "--build", str(args.build_dir), "-j"]):
        log(" ".join(step))
        if subprocess.run(step).returncode != 0:
            log(f"build failed at: {' '.join(step)}")
            return 1
    built = sorted(p.name for p in [*args.build_dir.glob("libirexport_*.so"), *args.build_dir.glob("irexport-plugin-harness")])
    log(f"built in {args.build_dir}: {', '.join(built)}")
    return 0
