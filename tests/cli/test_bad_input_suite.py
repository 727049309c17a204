"""Bad input across every subcommand: malformed, truncated, lying, hostile and out-of-range inputs.

Each case asserts what every bad input must give: exit code 2, exactly one line on stderr that starts
with ``irexport: error:`` and names what is wrong, no traceback, and nothing written or lost (the whole
working directory is the same file for file, byte for byte, before and after).
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import RECIPES, tiny

from irexport.checkpoints import save_model
from irexport.models.random_init import byte_tokenizer


@pytest.fixture(scope="module")
def pristine_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("suite") / "model"
    save_model(tiny("informed", num_hidden_layers=2), path, tokenizer=byte_tokenizer())
    return path


class Work:
    """A working directory with fresh copies of a model, an export and an engine directory on demand."""

    def __init__(self, root: Path, pristine_model: Path, exported, build_dir):
        self.root, self._model, self._exported, self._build_dir = root, pristine_model, exported, build_dir
        self.out = root / "out"

    def model(self) -> Path:
        path = self.root / "model"
        if not path.exists():
            shutil.copytree(self._model, path)
        return path

    def export(self) -> Path:
        path = self.root / "export"
        if not path.exists():
            shutil.copytree(self._exported("informed")[0], path)
        return path

    def engines(self) -> Path:
        engines, _, _ = self._build_dir
        return engines

    def edit_json(self, path: Path, **changes) -> Path:
        data = json.loads(path.read_text())
        for key, value in changes.items():  # a__b edits data["a"]["b"]; None deletes
            *parents, last = key.split("__")
            node = data
            for p in parents:
                node = node[p]
            if value is None:
                node.pop(last)
            else:
                node[last] = value
        path.write_text(json.dumps(data))
        return path

    def write(self, name: str, content) -> Path:
        path = self.root / name
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
        return path

    def npy(self, name: str, array=None, raw: bytes | None = None) -> Path:
        if raw is None:
            buf = io.BytesIO()
            np.save(buf, array, allow_pickle=array.dtype == object)
            raw = buf.getvalue()
        return self.write(name, raw)

    def ids(self) -> Path:
        return self.npy("ids.npy", np.array([[1, 2, 3]], np.int64))


def npy_header(shape, descr="<i8") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def hf(w: Work, text=None, **changes):
    """``run`` on a model whose config.json is edited (``changes``) or replaced (``text``, or text -> text)."""
    _replace(w.edit_json(w.model() / "config.json", **changes), text)
    return ["run", w.model(), "--input-ids", w.ids(), "-o", w.out]


def tokenizer(w: Work, text: str):
    (w.model() / "tokenizer.json").write_text(text)
    return ["run", w.model(), "--text", "hi", "-o", w.out]


def routing(w: Work, text=None, **changes):
    _replace(w.edit_json(w.model() / "routing_config.json", **changes), text)
    return ["inspect", w.model()]


def manifest(w: Work, text=None, **changes):
    _replace(w.edit_json(w.export() / "manifest.json", **changes), text)
    return ["generate", w.export(), "--input-ids", w.ids()]


def _replace(path: Path, text) -> None:
    if text is not None:
        path.write_text(text(path.read_text()) if callable(text) else text)


def weights(w: Work, edit, command: str):
    """``command`` on an export whose weights.data ``edit`` changed."""
    return weights_edit(w, "weights.data", edit, command)


def weights_edit(w: Work, name: str, edit, command: str):
    """``command`` on an export whose file ``name`` ``edit`` changed."""
    edit(w.export() / name)
    return {"generate": ["generate", w.export(), "--input-ids", w.ids()],
            "parity": ["parity", w.export(), "--model", w.model(), "--report", w.out],
            "build": ["build", w.export(), "--recipe", RECIPES / "demo.yaml", "-o", w.out]}[command]


def build_report(w: Work, **changes):
    w.edit_json(w.engines() / "build_report.json", **changes)
    return ["generate", w._exported("informed")[0], "--engine", w.engines(), "--input-ids", w.ids()]


def parity_inputs(w: Work, name: str, content):
    path = w.write(name, content)
    return ["parity", w.export(), "--model", w.model(), "--inputs", path, "--report", w.out]


def npz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def polygraphy_json(**arrays) -> str:
    def encode(raw):
        return {"array": base64.b64encode(raw).decode(), "polygraphy_class": "ndarray"}
    return json.dumps([{k: encode(v) for k, v in arrays.items()}])


def npy_bytes(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def baseline(w: Work, content):
    return ["parity-matrix", w.export(), "--baseline", w.write("baseline.json", json.dumps(content)), "--report", w.out]


def recipe_file(w: Work, text: str):
    return ["build", w.export(), "--recipe", w.write("recipe.yaml", text), "-o", w.out]


HUGE = 1 << 40
CASES = {
    # flags: out of range, malformed
    "seed-negative": (lambda w: ["init", w.out, "--seed", "-1"], ["--seed", "[0, 4294967295]"]),
    "seed-too-large": (lambda w: ["init", w.out, "--seed", str(2**32)], ["--seed"]),
    "seed-not-a-number": (lambda w: ["parity", w.export(), "--seed", "0x1"], ["--seed", "expected an integer"]),
    "size-not-a-number": (lambda w: ["init", w.out, "--hidden-size", "big"], ["--hidden-size"]),
    "size-zero": (lambda w: ["init", w.out, "--layers", "0"], ["--layers", "[1, "]),
    "size-beyond-the-schema": (lambda w: ["init", w.out, "--hidden-size", "100000"], ["hidden_size", "[2, 65536]"]),
    "sizes-beyond-memory": (lambda w: ["init", w.out, "--hidden-size", "65536", "--intermediate-size", "262144",
                                       "--heads", "512", "--kv-heads", "512", "--layers", "64"], ["GiB", "memory"]),
    "capacity-nan": (lambda w: ["init", w.out, "--family", "mod", "--capacity", "nan"], ["--capacity", "(0, 1]"]),
    "units-unknown": (lambda w: ["init", w.out, "--units", "attention,moe"], ["--units"]),
    "batch-zero": (lambda w: ["inspect", w.model(), "--sample-batch", "0"], ["--sample-batch"]),
    "new-tokens-negative": (lambda w: ["generate", w.export(), "--input-ids", w.ids(), "--max-new-tokens", "-3"],
                            ["--max-new-tokens"]),
    "growth-below-one": (lambda w: ["parity-matrix", w.export(), "--growth", "0.5", "--report", w.out], ["--growth"]),
    "unknown-command": (lambda w: ["frobnicate"], ["invalid choice: 'frobnicate'"]),
    "cuda-archs-malformed": (lambda w: ["plugins", "build", "--build-dir", w.out, "--cuda-archs", "90;hopper"],
                             ["--cuda-archs"]),
    "tensorrt-root-without-headers": (lambda w: ["plugins", "build", "--build-dir", w.out, "--tensorrt-root", w.root],
                                      ["no TensorRT headers"]),
    "plugins-check-without-a-build": (lambda w: ["plugins", "check", w.export(), "--build-dir", w.out],
                                      ["irexport-plugin-harness: not found"]),
    # the transformers config.json: wrong types, out of range, inconsistent, absent, malformed
    "hf-heads-a-string": (lambda w: hf(w, num_attention_heads="4"), ["config.json", "'num_attention_heads'"]),
    "hf-zero-heads": (lambda w: hf(w, num_attention_heads=0), ["config.json", "'num_attention_heads'", "got 0"]),
    "hf-negative-vocab": (lambda w: hf(w, vocab_size=-5), ["config.json", "'vocab_size'"]),
    "hf-absurd-hidden": (lambda w: hf(w, hidden_size=HUGE), ["config.json", "'hidden_size'"]),
    "hf-missing-hidden": (lambda w: hf(w, hidden_size=None), ["config.json", "missing key 'hidden_size'"]),
    "hf-kv-heads-not-dividing": (lambda w: hf(w, num_key_value_heads=3), ["config.json", "multiple of num_key_value_heads"]),
    "hf-eos-outside-vocab": (lambda w: hf(w, eos_token_id=10**6), ["config.json", "'eos_token_id'"]),
    "hf-unknown-activation": (lambda w: hf(w, hidden_act="sparkle"), ["config.json", "'hidden_act'"]),
    "hf-eps-nan": (lambda w: hf(w, rms_norm_eps=-1.0, text=lambda t: t.replace("-1.0", "NaN")),
                   ["config.json", "'rms_norm_eps'", "nan"]),
    "hf-not-an-object": (lambda w: hf(w, text="[1, 2]"), ["config.json", "JSON object"]),
    "hf-truncated": (lambda w: hf(w, text='{"model_type": "lla'), ["config.json", "not valid JSON"]),
    "hf-deeply-nested": (lambda w: hf(w, text="[" * 100000 + "]" * 100000), ["config.json", "not valid JSON"]),
    "hf-transformers-strict-check": (lambda w: hf(w, attention_dropout="x"), ["config.json", "transformers refuses"]),
    "hf-rope-theta-negative": (lambda w: hf(w, rope_parameters={"rope_type": "default", "rope_theta": -1.0}),
                               ["config.json", "'rope_parameters.rope_theta'"]),
    "hf-rope-unknown-type": (lambda w: hf(w, rope_parameters={"rope_type": "spiral"}), ["config.json", "'spiral'"]),
    "hf-dtype-unknown": (lambda w: hf(w, dtype="float128"), ["config.json", "'dtype'"]),
    "hf-integer-of-5000-digits": (lambda w: hf(w, vocab_size=0, text=lambda t: t.replace('"vocab_size": 0', '"vocab_size": ' + "9" * 5000)),
                                  ["config.json", "not valid JSON"]),
    "tokenizer-malformed": (lambda w: tokenizer(w, '{"version": "1.0", "model": {"type": "BPE", "vocab": 5}}'),
                            ["cannot load the tokenizer"]),
    # routing_config.json
    "routing-absurd-rank": (lambda w: routing(w, lff_rank=HUGE), ["routing_config.json", "'lff_rank'"]),
    "routing-rank-disagrees-with-weights": (lambda w: routing(w, lff_rank=60000),
                                            ["routing.safetensors", "shape", "the config implies"]),
    "routing-layers-a-string": (lambda w: routing(w, num_layers="2"), ["routing_config.json", "'num_layers'"]),
    "routing-layer-out-of-range": (lambda w: routing(w, units={"attention": [0, 99]}), ["routing_config.json", "0..1"]),
    "routing-threshold-of-400-digits": (lambda w: routing(w, threshold=10**400), ["routing_config.json", "'threshold'"]),
    "routing-threshold-out-of-range": (lambda w: routing(w, threshold=2), ["routing_config.json", "'threshold'"]),
    "routing-format-from-the-future": (lambda w: routing(w, format_version=2), ["routing_config.json", "'format_version'"]),
    "routing-empty-file": (lambda w: routing(w, text=""), ["routing_config.json", "not valid JSON"]),
    "routing-too-large": (lambda w: [*routing(w), _sparse(w.model() / "routing_config.json", 65 << 20)][:2],
                          ["routing_config.json", "too large"]),
    "weights-non-string-keys": (lambda w: _research(w, {1: np.zeros(3)}), ["ckpt.pt", "key 1 is not a string"]),
    "weights-scalar-router": (lambda w: _research(w, {"model.layers.0.router_attention.hidden_layer.weight": 1.0}),
                              ["ckpt.pt", "is a scalar"]),
    # outputs that would destroy inputs
    "output-is-the-input": (lambda w: ["run", w.model(), "--input-ids", w.ids(), "-o", w.model(), "--overwrite"],
                            ["would replace the input"]),
    "output-holds-the-input": (lambda w: ["export", w.model(), "-o", w.root, "--overwrite"], ["would replace the input"]),
    # .npy token ids: lying, truncated, hostile
    "npy-lying-header": (lambda w: ["run", w.model(), "--input-ids", w.npy("ids.npy", raw=npy_header((4096, 4096)) + bytes(48)),
                                    "-o", w.out], ["ids.npy", "header says"]),
    "npy-truncated": (lambda w: ["run", w.model(), "--input-ids", w.npy("ids.npy", raw=npy_bytes(np.ones((4, 8), np.int64))[:-5]),
                                 "-o", w.out], ["ids.npy", "truncated"]),
    "npy-pickle": (lambda w: ["run", w.model(), "--input-ids", w.npy("ids.npy", np.array([1, "x", None], dtype=object)),
                              "-o", w.out], ["ids.npy", "pickle"]),
    "npy-text": (lambda w: ["generate", w.export(), "--input-ids", w.write("ids.npy", "1 2 3\n")], ["ids.npy", ".npy"]),
    "mask-not-zero-one": (lambda w: ["run", w.model(), "--input-ids", w.ids(), "--attention-mask",
                                     w.npy("mask.npy", np.array([[1, 2, 1]])), "-o", w.out], ["mask.npy"]),
    # parity inputs (.npz, Polygraphy JSON)
    "npz-lying-member": (lambda w: parity_inputs(w, "in.npz", npz({"input_ids.npy": npy_header((1 << 24,)) + bytes(8)})),
                         ["in.npz", "'input_ids'", "header says"]),
    "npz-unknown-input": (lambda w: parity_inputs(w, "in.npz", npz({"input_ids.npy": npy_bytes(np.ones((1, 4), np.int64)),
                                                                   "pixels.npy": npy_bytes(np.ones(3))})),
                          ["in.npz", "unknown array 'pixels'"]),
    "npz-record-dtype": (lambda w: parity_inputs(w, "in.npz", npz({"input_ids.npy": npy_bytes(np.zeros(4, [("a", "<i8")]))})),
                         ["in.npz", "not a number type"]),
    "npz-bomb": (lambda w: parity_inputs(w, "in.npz", _deflated("input_ids.npy", npy_bytes(np.zeros((1, 1 << 27), np.int8)))),
                 ["in.npz", "more than 67108864 values"]),
    "npz-corrupt-deflate": (lambda w: parity_inputs(w, "in.npz", _corrupt_deflate(npy_bytes(np.ones((1, 64), np.int64)))),
                            ["in.npz", ".npz"]),
    "file-name-too-long": (lambda w: ["run", w.model(), "--input-ids", w.root / ("x" * 300 + ".npy"), "-o", w.out],
                           ["File name too long"]),
    "npz-not-a-zip": (lambda w: parity_inputs(w, "in.npz", b"PK\x03\x04 not really"), ["in.npz", ".npz"]),
    "json-inputs-not-base64": (lambda w: parity_inputs(w, "in.json", json.dumps([{"input_ids": {
        "array": "***", "polygraphy_class": "ndarray"}}])), ["in.json", "base64"]),
    "json-inputs-wrong-shape": (lambda w: parity_inputs(w, "in.json", json.dumps({"input_ids": [1, 2]})),
                                ["in.json", "must be a non-empty list"]),
    "json-inputs-foreign-class": (lambda w: parity_inputs(w, "in.json", json.dumps([{"input_ids": {
        "polygraphy_class": "RunResults", "array": ""}}])), ["in.json", "'ndarray'"]),
    "json-inputs-lying-array": (lambda w: parity_inputs(w, "in.json", polygraphy_json(input_ids=npy_header((1 << 20, 2)))),
                                ["in.json", "header says"]),
    # the export's manifest.json
    "manifest-missing-graph": (lambda w: manifest(w, graph=None), ["manifest.json", "missing key 'graph'", "re-export"]),
    "manifest-of-two-graphs": (lambda w: manifest(w, format_version=1), ["manifest.json", "'format_version'", "re-export"]),
    "manifest-unknown-dtype": (lambda w: manifest(w, dtype="float64"), ["manifest.json", "'dtype'"]),
    "manifest-path-traversal": (lambda w: manifest(w, graph__file="../../../etc/passwd"),
                                ["manifest.json", "'graph.file'", "plain file name"]),
    "manifest-kv-shape": (lambda w: manifest(w, model__kv_shape=[1, 2]), ["manifest.json", "'model.kv_shape'"]),
    "manifest-vocab-a-float": (lambda w: manifest(w, model__vocab_size=257.0), ["manifest.json", "'model.vocab_size'"]),
    "manifest-format-from-the-future": (lambda w: manifest(w, format_version=99), ["manifest.json", "'format_version'"]),
    "manifest-layers-lie": (lambda w: manifest(w, model__num_layers=3), ["manifest.json", "disagree with model.num_layers"]),
    "manifest-graph-replaced": (lambda w: [*manifest(w, graph__file="other.onnx"), _other_onnx(w.export() / "other.onnx")][:4],
                                ["other.onnx", "sha256", "other or corrupted graph"]),
    "manifest-graph-replaced-unhashed": (lambda w: [*manifest(w, graph__file="other.onnx", graph__sha256=None),
                                                    _other_onnx(w.export() / "other.onnx")][:4],
                                         ["other.onnx", "not the ones manifest.json lists"]),
    "graph-byte-flipped": (lambda w: weights_edit(w, "model.onnx", _flip_byte, "generate"), ["model.onnx", "sha256"]),
    "weights-missing": (lambda w: [*manifest(w), (w.export() / "weights.data").unlink()][:4], ["weights.data", "not found"]),
    "weights-truncated": (lambda w: [*manifest(w), _truncate(w.export() / "weights.data", 4096)][:4],
                          ["weights.data", "truncated, extended or replaced"]),
    "weights-extended": (lambda w: weights(w, _append, "generate"), ["weights.data", "truncated, extended or replaced"]),
    "weights-byte-flipped": (lambda w: weights(w, _flip_byte, "generate"),
                             ["weights.data", "sha256", "the export wrote", "re-export"]),
    "weights-byte-flipped-parity": (lambda w: weights(w, _flip_byte, "parity"), ["weights.data", "sha256"]),
    "weights-byte-flipped-build": (lambda w: weights(w, _flip_byte, "build"), ["weights.data", "sha256"]),
    "weights-truncated-no-verify": (lambda w: [*weights(w, lambda p: _truncate(p, 4096), "generate"), "--no-verify"],
                                    ["weights.data", "truncated, extended or replaced"]),
    "manifest-truncated": (lambda w: manifest(w, text='{"format_version": 1, "dty'), ["manifest.json", "not valid JSON"]),
    # the build record runtimes check
    "build-report-missing-engine": (lambda w: build_report(w, engine=None), ["build_report.json", "missing key 'engine'"]),
    "build-report-bytes-a-string": (lambda w: build_report(w, engine__bytes="many"),
                                    ["build_report.json", "'engine.bytes'"]),
    "build-report-unknown-profile": (lambda w: build_report(w, engine__profiles__draft={}),
                                     ["build_report.json", "'engine.profiles.draft'"]),
    "build-report-missing-profile": (lambda w: build_report(w, engine__profiles__decode=None),
                                     ["build_report.json", "'engine.profiles.decode'"]),
    "build-report-profile-index": (lambda w: build_report(w, engine__profiles__decode__index=2),
                                   ["build_report.json", "'engine.profiles.decode.index'"]),
    "build-report-version-a-number": (lambda w: build_report(w, tensorrt_version=10), ["build_report.json", "'tensorrt_version'"]),
    "build-report-other-weights": (lambda w: build_report(w, engine__weights_sha256="0" * 64),
                                   ["built from a different weights file", "rebuild"]),
    "build-report-other-graph": (lambda w: build_report(w, engine__onnx_sha256="0" * 64),
                                 ["built from a different graph file", "rebuild"]),
    "build-report-engine-elsewhere": (lambda w: build_report(w, engine__file="/dev/zero"),
                                      ["build_report.json", "'engine.file'"]),
    # parity-matrix baselines
    "baseline-not-a-summary": (lambda w: baseline(w, {"rows": []}), ["baseline.json", "missing key 'entries'"]),
    "baseline-metric-a-string": (lambda w: baseline(w, {"entries": [{"export": "x", "backend": "onnxrt", "passed": True,
                                                                      "logits_max_abs": "small"}]}),
                                 ["baseline.json", "'entries[0].logits_max_abs'"]),
    "baseline-metric-past-floats": (lambda w: baseline(w, {"entries": [{"export": "x", "backend": "onnxrt", "passed": True,
                                                                         "logits_max_abs": 10 ** 400}]}),
                                    ["baseline.json", "'entries[0].logits_max_abs'"]),
    # recipes
    "recipe-python-tag": (lambda w: recipe_file(w, "!!python/object/apply:os.system ['touch pwned']\n"), ["recipe.yaml"]),
    "recipe-key-twice": (lambda w: recipe_file(w, (RECIPES / "demo.yaml").read_text() + "name: other\n"),
                         ["recipe.yaml", "'name' given twice"]),
    "recipe-integer-key": (lambda w: recipe_file(w, (RECIPES / "demo.yaml").read_text() + "1: one\n"),
                           ["recipe.yaml", "is not a string"]),
    "recipe-alias-bomb": (lambda w: recipe_file(w, _alias_bomb(6)), ["recipe.yaml", "'description'"]),
    "recipe-huge-hex": (lambda w: recipe_file(w, (RECIPES / "demo.yaml").read_text().replace(
        "max: 4}", "max: 0x" + "f" * 4000 + "}", 1)), ["recipe.yaml", "integer of 16000 bits"]),
    "recipe-inverted-range": (lambda w: recipe_file(w, (RECIPES / "demo.yaml").read_text().replace(
        "{min: 1, opt: 2, max: 4}", "{min: 8, opt: 2, max: 4}")), ["recipe.yaml", "min <= opt <= max"]),
    # research checkpoints
    "router-tuning-threshold-a-string": (lambda w: _router_tuning(w, {"threshold": "high"}), ["config.json", "'threshold'"]),
}


def _other_onnx(path: Path) -> Path:
    """A valid ONNX file that is not the export's graph (other inputs and outputs)."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "other", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def _sparse(path: Path, size: int) -> Path:
    with open(path, "r+b") as f:
        f.truncate(size)  # a large file that takes no disk space
    return path


def _truncate(path: Path, size: int) -> Path:
    with open(path, "r+b") as f:
        f.truncate(size)
    return path


def _append(path: Path) -> Path:
    with open(path, "ab") as f:
        f.write(bytes(64))
    return path


def _flip_byte(path: Path) -> Path:
    """One bit of one byte in the middle of the file changed: the size stays, the weights differ a little."""
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 1]))
    return path


def _corrupt_deflate(data: bytes) -> bytes:
    """An .npz whose one member's compressed bytes are garbled (its header, and so the sizes, intact)."""
    archive = _deflated("input_ids.npy", data)
    start = archive.index(b"input_ids.npy") + len("input_ids.npy")
    return archive[:start] + bytes(b ^ 0x5A for b in archive[start:start + 40]) + archive[start + 40:]


def _alias_bomb(levels: int) -> str:
    """A recipe of a few hundred bytes whose description expands to 9**levels values (YAML aliases)."""
    anchors = ["x"] + [f"&a{i} [" + ", ".join([f"*a{i - 1}" if i else "x"] * 9) + "]" for i in range(levels)]
    return ("description: [" + ", ".join(anchors[1:]) + "]\n"
            "precision: fp32\nprofile: {batch: {min: 1, opt: 1, max: 1}, sequence: {min: 1, opt: 1, max: 1}, "
            "cache: {min: 1, opt: 1, max: 1}}\n")


def _deflated(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, data)
    return buf.getvalue()


def _research(w: Work, state: dict):
    import torch

    torch.save({k: torch.tensor(v) for k, v in state.items()}, w.root / "ckpt.pt")
    return ["convert", w.root / "ckpt.pt", "--family", "informed", "--base", w.model(), "-o", w.out]


def _router_tuning(w: Work, config: dict):
    from safetensors.numpy import save_file

    ckpt = w.root / "rt"
    ckpt.mkdir()
    save_file({"model.layers.0.router.weight": np.zeros((1, 64), np.float32)}, str(ckpt / "model.safetensors"))
    (ckpt / "config.json").write_text(json.dumps(config))
    return ["convert", ckpt, "--family", "router_tuning", "--base", w.model(), "-o", w.out]


def snapshot(root: Path) -> dict:
    return {p.relative_to(root): (p.stat().st_size, p.read_bytes() if p.is_file() and p.stat().st_size < 1 << 20 else None)
            for p in sorted(root.rglob("*")) if not p.is_dir()}


def subcommands() -> list[list[str]]:
    """Every command line the CLI has, down to the last subcommand ("plugins build", "plugins check", ...)."""
    import argparse

    from irexport.cli.main import build_parser

    def walk(parser, prefix):
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not actions:
            return [prefix]
        return [line for name, child in actions[0].choices.items() for line in walk(child, [*prefix, name])]

    return walk(build_parser(), [])


@pytest.mark.parametrize("command", subcommands(), ids=" ".join)
def test_every_command_refuses_a_bad_command_line_in_one_line(command, cli):
    """Usage errors too are one line and exit 2, in every subcommand the CLI has (argparse's own usage dump would be
    several lines): the unknown flag, or first the missing arguments, which argparse reports before it."""
    code, out, err = cli(*command, "--no-such-flag")
    assert code == 2 and out == "", (code, out, err)
    assert len(err.splitlines()) == 1 and err.startswith("irexport: error: "), err
    assert "--no-such-flag" in err or "the following arguments are required" in err, err


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(case, tmp_path, cli, capsys, pristine_model, exported, build_dir):
    make, needles = CASES[case]
    work = Work(tmp_path / "work", pristine_model, exported, build_dir)
    work.root.mkdir()
    argv = make(work)
    before, engines_before = snapshot(work.root), snapshot(build_dir[0])
    capsys.readouterr()  # what the fixtures printed
    code, out, err = cli(*argv)
    assert code == 2, (code, err)
    assert "Traceback" not in err and out == ""
    lines = err.splitlines()
    assert len(lines) <= 2 and lines[-1].startswith("irexport: error: "), err  # at most one progress line first
    for needle in needles:
        assert needle in lines[-1], (needle, lines[-1])
    assert snapshot(work.root) == before, "bad input wrote, changed or removed a file"
    assert snapshot(build_dir[0]) == engines_before
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
