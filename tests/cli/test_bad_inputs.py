"""Bad input: one line naming the file and the key, exit code 2, no traceback, nothing written."""

import json
import os

import numpy as np
import pytest
import torch
from conftest import research_state_dict, tiny
from safetensors.torch import load_file, save_file

from irexport.checkpoints import save_model


def expect_error(result, *needles):
    code, out, err = result
    assert code == 2, (code, err)
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("irexport: error: ")]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])


@pytest.fixture
def informed_research(tmp_path):
    """A full informed-routing dict and a config-only base directory."""
    model = tiny("informed")
    model.base.save_pretrained(tmp_path / "base")
    (tmp_path / "base" / "model.safetensors").unlink()
    return model, research_state_dict(model), tmp_path / "base"


def convert(cli, tmp_path, state, base, family="informed"):
    torch.save(state, tmp_path / "ckpt.pt")
    out = tmp_path / "out"
    result = cli("convert", tmp_path / "ckpt.pt", "--family", family, "--base", base, "-o", out)
    assert not out.exists(), "nothing may be written on bad input"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")], "no temporary output left behind"
    return result


def test_missing_key(tmp_path, cli, informed_research):
    _, state, base = informed_research
    del state["model.layers.2.block.mlp.up_proj.weight"]
    expect_error(convert(cli, tmp_path, state, base), "ckpt.pt", "'model.layers.2.mlp.up_proj.weight'", "missing key")


def test_unexpected_key(tmp_path, cli, informed_research):
    _, state, base = informed_research
    state["model.layers.1.block.mlp.extra.weight"] = torch.zeros(3)
    expect_error(convert(cli, tmp_path, state, base), "ckpt.pt", "unexpected key", "model.layers.1.mlp.extra.weight")


def test_misshaped_key(tmp_path, cli, informed_research):
    _, state, base = informed_research
    state["model.layers.0.lw_mlp.linear1.weight"] = torch.zeros(8, 63)
    expect_error(convert(cli, tmp_path, state, base), "ckpt.pt", "'layers.0.mlp.lff.linear1.weight'", "shape [8, 63]")


def test_router_for_a_layer_the_config_does_not_have(tmp_path, cli, informed_research):
    _, state, base = informed_research
    state["model.layers.9.router_mlp.weight_predictor.weight"] = torch.zeros(2, 16)
    expect_error(convert(cli, tmp_path, state, base), "ckpt.pt", "layers.9", "0..3")


def test_lff_weights_under_skipgpt(tmp_path, cli, informed_research):
    _, state, base = informed_research
    expect_error(convert(cli, tmp_path, state, base, family="skipgpt"), "ckpt.pt", "lff", "--family informed")


def test_informed_without_lff(tmp_path, cli, informed_research):
    model, _, base = informed_research
    state = research_state_dict(model, include=("base", "router"))
    expect_error(convert(cli, tmp_path, state, base), "ckpt.pt", "lw_attn.linear1.weight")


def test_truncated_torch_file(tmp_path, cli, informed_research):
    _, state, base = informed_research
    torch.save(state, tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    expect_error(cli("convert", tmp_path / "cut.pt", "--family", "informed", "--base", base, "-o", tmp_path / "out"),
                 "cut.pt", "truncated or corrupt")
    assert not (tmp_path / "out").exists()


class RunsCode:
    """An object whose unpickling would create a file: a pickle that carries code."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_pickle_with_code_is_refused_and_never_run(tmp_path, cli, informed_research):
    _, state, base = informed_research
    sentinel = tmp_path / "code-ran"
    state["model.norm.weight"] = RunsCode(str(sentinel))
    torch.save(state, tmp_path / "evil.pt")
    expect_error(cli("convert", tmp_path / "evil.pt", "--family", "informed", "--base", base, "-o", tmp_path / "out"),
                 "evil.pt", "refused to unpickle")
    assert not sentinel.exists()
    assert not (tmp_path / "out").exists()


@pytest.fixture
def native(tmp_path):
    path = tmp_path / "model"
    save_model(tiny("informed"), path)
    np.save(tmp_path / "ids.npy", np.arange(10).reshape(2, 5))
    return path


def run_native(cli, tmp_path, model):
    out = tmp_path / "run"
    result = cli("run", model, "--input-ids", tmp_path / "ids.npy", "-o", out)
    assert not out.exists()
    return result


def edit_routing_config(model, **changes):
    cfg = json.loads((model / "routing_config.json").read_text())
    cfg.update(changes)
    (model / "routing_config.json").write_text(json.dumps(cfg))


def test_unknown_family(tmp_path, cli, native):
    edit_routing_config(native, family="mixture_of_experts")
    expect_error(run_native(cli, tmp_path, native), "routing_config.json", "key 'family' must be one of", "'mixture_of_experts'")


def test_config_contradicting_the_weights(tmp_path, cli, native):
    edit_routing_config(native, lff_rank=16)
    expect_error(run_native(cli, tmp_path, native), "routing.safetensors", "'layers.0.attention.lff.linear1.", "shape")


def test_config_routing_a_unit_without_weights(tmp_path, cli, native):
    weights = load_file(str(native / "routing.safetensors"))
    save_file({k: v for k, v in weights.items() if not k.startswith("layers.3.mlp.")}, str(native / "routing.safetensors"))
    expect_error(run_native(cli, tmp_path, native), "routing.safetensors", "missing key 'layers.3.mlp.")


def test_truncated_safetensors(tmp_path, cli, native):
    data = (native / "model.safetensors").read_bytes()
    (native / "model.safetensors").write_bytes(data[:-1000])
    expect_error(run_native(cli, tmp_path, native), "model.safetensors", "truncated or corrupt")


def test_unknown_config_key(tmp_path, cli, native):
    edit_routing_config(native, capcity=0.3)
    expect_error(run_native(cli, tmp_path, native), "routing_config.json", "unknown key 'capcity'")


def test_research_checkpoint_given_to_run(tmp_path, cli, native):
    (native / "routing_config.json").unlink()
    expect_error(run_native(cli, tmp_path, native), "irexport convert")


@pytest.mark.parametrize("ids,needle", [(np.array([[1, 2, 999]]), "[0, 257)"), (np.zeros((2, 2, 2), dtype=np.int64), "[batch, seq]"),
                                        (np.array([[0.5, 1.0]]), "integers")])
def test_bad_input_ids(tmp_path, cli, native, ids, needle):
    np.save(tmp_path / "ids.npy", ids)
    expect_error(run_native(cli, tmp_path, native), "ids.npy", needle)


def test_router_tuning_granularity_not_supported(tmp_path, cli):
    model = tiny("router_tuning", units=("attention",))
    model.base.save_pretrained(tmp_path / "base")
    ckpt = tmp_path / "rt"
    ckpt.mkdir()
    save_file({"model.layers.0.router.weight": torch.zeros(1, 64)}, str(ckpt / "model.safetensors"))
    (ckpt / "config.json").write_text(json.dumps({"granularity": "mlp_token"}))
    result = cli("convert", ckpt, "--family", "router_tuning", "--base", tmp_path / "base", "-o", tmp_path / "out")
    expect_error(result, "config.json", "mlp_token")
    assert not (tmp_path / "out").exists()


def test_output_directory_is_not_clobbered(tmp_path, cli, native):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("mine")
    expect_error(cli("run", native, "--input-ids", tmp_path / "ids.npy", "-o", tmp_path / "run"), "--overwrite")
    assert (tmp_path / "run" / "keep.txt").read_text() == "mine"


def test_unwritable_output_directory(tmp_path, cli, native):
    if os.geteuid() == 0:
        target = "/proc/irexport-out"  # not writable even for root
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "run"
    expect_error(cli("run", native, "--input-ids", tmp_path / "ids.npy", "-o", target), "irexport-out" if os.geteuid() == 0 else "locked")


def test_unsupported_architecture(tmp_path, cli, native):
    config = json.loads((native / "config.json").read_text())
    (native / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    expect_error(run_native(cli, tmp_path, native), "model_type 'gpt2' is not supported")


def test_init_rejects_an_odd_head_size(tmp_path, cli):
    expect_error(cli("init", tmp_path / "m", "--hidden-size", "12", "--heads", "4"), "even head size")
    assert not (tmp_path / "m").exists()


def test_outputs_get_the_modes_the_umask_gives(tmp_path, cli):
    """Every output file (safetensors and the export's weights.data included) gets the mode a plain create gives
    under the user's umask, so a service account can read them."""
    np.save(tmp_path / "ids.npy", np.arange(6).reshape(2, 3))
    model, export, run = tmp_path / "model", tmp_path / "export", tmp_path / "run"
    umask = os.umask(0o027)
    try:
        assert cli("init", model, "--layers", "2")[0] == 0
        assert cli("export", model, "-o", export)[0] == 0
        assert cli("run", model, "--input-ids", tmp_path / "ids.npy", "-o", run)[0] == 0
    finally:
        os.umask(umask)
    assert (export / "weights.data").is_file() and (model / "model.safetensors").is_file()
    for root in (model, export, run):
        for path in [root, *root.rglob("*")]:
            assert path.stat().st_mode & 0o777 == (0o750 if path.is_dir() else 0o640), path
