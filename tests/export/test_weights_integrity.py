"""No reader runs weights other than the ones the export wrote: weights.data is checked against the
manifest (size, sha256) before ONNX Runtime or TensorRT sees it, and a verified file is remembered (by its
identity, in the user's cache directory) only while it provably has not changed."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest
from conftest import EXPORT_LAYERS, tiny

from irexport import filehash
from irexport.checkpoints import save_model
from irexport.cli.main import main as cli_main
from irexport.errors import IrexportError
from irexport.export.manifest import load_manifest


@pytest.fixture(scope="module")
def other_seed_export(tmp_path_factory):
    """An export of the same shapes as exported("informed"), from other random weights."""
    root = tmp_path_factory.mktemp("other-seed")
    save_model(tiny("informed", seed=1, num_hidden_layers=EXPORT_LAYERS), root / "model")
    assert cli_main(["export", str(root / "model"), "-o", str(root / "export")]) == 0
    return root / "export"


def _flip_byte(path):
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 1]))


TAMPERS = {
    "swapped": lambda path, other: shutil.copyfile(other / "weights.data", path),
    "truncated": lambda path, other: os.truncate(path, path.stat().st_size - 1),
    "extended": lambda path, other: open(path, "ab").write(b"\0"),
    "one-byte-flipped": lambda path, other: _flip_byte(path),
}


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_other_weights_are_refused_before_any_session(tamper, exported, other_seed_export, tmp_path, monkeypatch):
    import onnxruntime as ort

    from irexport.runtime import OnnxGenerator

    export = tmp_path / "export"
    shutil.copytree(exported("informed")[0], export)
    weights = export / "weights.data"
    assert weights.stat().st_size == (other_seed_export / "weights.data").stat().st_size  # a swap keeps the size
    monkeypatch.setattr(filehash, "SETTLED_NS", 20_000_000)
    time.sleep(0.1)
    load_manifest(export)  # verified and remembered while intact: the change below must still be seen
    assert filehash._remembered(str(weights.resolve()), weights.stat()) is not None
    time.sleep(0.05)
    TAMPERS[tamper](weights, other_seed_export)

    sessions = []

    class Spy(ort.InferenceSession):
        def __init__(self, *args, **kwargs):
            sessions.append(args[0])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", Spy)
    with pytest.raises(IrexportError, match=r"weights\.data: .*(sha256|truncated, extended or replaced)"):
        OnnxGenerator(export)
    assert sessions == []
    OnnxGenerator(exported("informed")[0])  # the spy sees sessions that are created
    assert len(sessions) == 1


def test_parity_matrix_fails_the_entry_with_other_weights(exported, other_seed_export, tmp_path, cli):
    export = tmp_path / "exports" / "informed"
    shutil.copytree(exported("informed")[0], export)
    shutil.copyfile(other_seed_export / "weights.data", export / "weights.data")
    code, out, _ = cli("parity-matrix", tmp_path / "exports", "--report", tmp_path / "matrix.json", "--new-tokens", "1")
    assert code == 1 and "FAIL" in out
    [entry] = json.loads((tmp_path / "matrix.json").read_text())["entries"]
    assert "weights.data" in entry["error"] and "sha256" in entry["error"]


def test_no_verify_skips_the_hash_not_the_size(exported, tmp_path, cli):
    export = tmp_path / "export"
    shutil.copytree(exported("informed")[0], export)
    _flip_byte(export / "weights.data")
    with pytest.raises(IrexportError, match="sha256"):
        load_manifest(export)
    load_manifest(export, verify=False)
    ids = tmp_path / "ids.npy"
    import numpy as np

    np.save(ids, np.array([[1, 2, 3]]))
    code, out, err = cli("generate", export, "--input-ids", ids, "--max-new-tokens", "2", "--no-verify")
    assert code == 0 and len(json.loads(out)["tokens"]) == 2, err
    os.truncate(export / "weights.data", 100)
    with pytest.raises(IrexportError, match="truncated, extended or replaced"):
        load_manifest(export, verify=False)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache directory, and a file last changed long enough ago to be remembered."""
    monkeypatch.setenv("IREXPORT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(filehash, "_MEMORY", {})
    monkeypatch.setattr(filehash, "SETTLED_NS", 20_000_000)  # 20 ms: more than a timestamp tick, less than the wait
    path = tmp_path / "weights.data"
    path.write_bytes(os.urandom(1 << 16))
    time.sleep(0.1)
    return path


def _remembered(path) -> dict:
    files = json.loads((filehash.cache_dir() / filehash.CACHE_FILE).read_text())["files"]
    return files.get(str(path.resolve()))


def test_a_verified_file_is_remembered_across_processes(cache):
    import hashlib
    import subprocess
    import sys

    digest = filehash.sha256(cache)
    assert digest == hashlib.sha256(cache.read_bytes()).hexdigest()
    assert _remembered(cache)["sha256"] == digest
    # another process reads the record, not the file: a planted record with the file's identity is believed
    record = json.loads((filehash.cache_dir() / filehash.CACHE_FILE).read_text())
    record["files"][str(cache.resolve())]["sha256"] = "0" * 64
    (filehash.cache_dir() / filehash.CACHE_FILE).write_text(json.dumps(record))
    child = subprocess.run([sys.executable, "-c", "import sys; from irexport.filehash import sha256; print(sha256(sys.argv[1]))",
                            str(cache)], capture_output=True, text=True, check=True)
    assert child.stdout.strip() == "0" * 64


def test_a_changed_file_is_hashed_again_even_with_its_old_mtime(cache):
    first = filehash.sha256(cache)
    stat = cache.stat()
    time.sleep(0.05)
    _flip_byte(cache)
    os.utime(cache, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # size and mtime as before; ctime is now
    assert (cache.stat().st_size, cache.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    assert filehash.sha256(cache) != first
    original = cache.with_name("original")  # the first bytes back, renamed over it with the same mtime: a new inode
    original.write_bytes(cache.read_bytes())
    _flip_byte(original)
    os.utime(original, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(original, cache)
    assert filehash.sha256(cache) == first


def test_a_file_changed_just_now_is_not_remembered(cache, monkeypatch):
    monkeypatch.setattr(filehash, "SETTLED_NS", 60_000_000_000)
    filehash.sha256(cache)
    assert not (filehash.cache_dir() / filehash.CACHE_FILE).exists()


def test_a_broken_or_unwritable_cache_only_costs_a_hash(cache, monkeypatch):
    import hashlib

    filehash.cache_dir().mkdir(parents=True)
    (filehash.cache_dir() / filehash.CACHE_FILE).write_text('{"files": {"x": {"identity": "nope"}}}')
    assert filehash.sha256(cache) == hashlib.sha256(cache.read_bytes()).hexdigest()
    assert _remembered(cache) is not None  # the malformed record was replaced
    not_a_directory = cache.with_name("not-a-directory")
    not_a_directory.write_text("")
    monkeypatch.setenv("IREXPORT_CACHE_DIR", str(not_a_directory))
    monkeypatch.setattr(filehash, "_MEMORY", {})
    assert filehash.sha256(cache) == hashlib.sha256(cache.read_bytes()).hexdigest()
