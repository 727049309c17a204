"""``irexport plugins build``: configure and build plugins/ with CMake (kernels, and the TensorRT
plugin library when TensorRT is found)."""

from __future__ import annotations

from pathlib import Path

from .common import log

SOURCE = Path(__file__).resolve().parents[2] / "plugins"


def add_parser(sub) -> None:
    p = sub.add_parser("plugins", help="build the routing kernels and TensorRT plugins (CMake)",
                       description="Build plugins/ with CMake: the host library, the CUDA kernels (with nvcc) and "
                                   "libirexport_plugins.so (with TensorRT). Same as: cmake -S plugins -B BUILD_DIR && "
                                   "cmake --build BUILD_DIR")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = actions.add_parser("build", help="configure and build")
    b.add_argument("--build-dir", type=Path, default=Path("build/plugins"), help="default: build/plugins")
    b.add_argument("--tensorrt-root", type=Path, help="TensorRT install (include/, lib/); default: auto-detect")
    b.add_argument("--cuda-archs", help="CUDA architectures, e.g. '90' (default: 80;86;89;90)")
    b.set_defaults(func=main)


def main(args) -> int:
    import shutil
    import subprocess

    from ..errors import IrexportError

    if not (SOURCE / "CMakeLists.txt").is_file():
        raise IrexportError(f"{SOURCE}: plugin sources not found (build from a checkout of the irexport repository)")
    if shutil.which("cmake") is None:
        raise IrexportError("cmake is not installed (pip install cmake, or your system's package)")
    configure = ["cmake", "-S", str(SOURCE), "-B", str(args.build_dir)]
    if args.tensorrt_root:
        configure.append(f"-DTensorRT_ROOT={args.tensorrt_root.resolve()}")
    if args.cuda_archs:
        configure.append(f"-DCMAKE_CUDA_ARCHITECTURES={args.cuda_archs}")
    for step in (configure, ["cmake", "--build", str(args.build_dir), "-j"]):
        log(" ".join(step))
        if subprocess.run(step).returncode != 0:
            log(f"build failed at: {' '.join(step)}")
            return 1
    built = sorted(p.name for p in args.build_dir.glob("libirexport_*.so"))
    log(f"built in {args.build_dir}: {', '.join(built)}")
    return 0
