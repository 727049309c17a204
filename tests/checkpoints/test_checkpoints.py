"""Both checkpoint formats: our own (round trip), and the research layouts through ``irexport convert``."""

import json

import pytest
import torch
from conftest import logits, random_ids, research_state_dict, router_tuning_state_dict, tiny
from safetensors.torch import save_file

from irexport.checkpoints import load_model, save_model
from irexport.models.random_init import byte_tokenizer

IDS = random_ids(2, 12)


def assert_same_model(a, b):
    assert a.routing_config == b.routing_config
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert torch.equal(logits(a, IDS), logits(b, IDS))


@pytest.mark.parametrize("name", ["informed", "skipgpt", "router_tuning_seq", "mod"])
@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_native_round_trip(tmp_path, name, arch):
    model = tiny(name, arch)
    save_model(model, tmp_path / "m", tokenizer=byte_tokenizer())
    assert {p.name for p in (tmp_path / "m").iterdir()} >= {"config.json", "model.safetensors", "routing_config.json",
                                                            "routing.safetensors", "tokenizer.json"}
    assert_same_model(model, load_model(tmp_path / "m"))


def test_loading_assigns_the_checkpoint_tensors_without_a_copy():
    """assemble builds on the meta device and takes the state dicts' tensors as the parameters (one copy of
    the weights while loading); views of one storage are made distinct; the rotary buffers are rebuilt."""
    from irexport.checkpoints.assemble import assemble

    model = tiny("informed")
    base = {k: v.clone() for k, v in model.base.state_dict().items()}
    routing = {k: v.clone() for k, v in model.routing.state_dict().items()}
    shared = torch.cat([base["model.norm.weight"], base["model.layers.0.input_layernorm.weight"]]).view(2, -1)
    base["model.norm.weight"], base["model.layers.0.input_layernorm.weight"] = shared[0], shared[1]
    given = {"embed": base["model.embed_tokens.weight"].data_ptr(),  # before assemble, which replaces the dicts' tensors
             "router": routing["layers.0.mlp.router.weight_predictor.weight"].data_ptr()}
    loaded = assemble(model.config, model.routing_config, base, routing, "base", "routing")
    assert loaded.base.model.embed_tokens.weight.data_ptr() == given["embed"]
    assert loaded.routing.layers[0]["mlp"].router.weight_predictor.weight.data_ptr() == given["router"]
    ptrs = [p.untyped_storage().data_ptr()
            for p in (loaded.base.model.norm.weight, loaded.base.model.layers[0].input_layernorm.weight)]
    assert ptrs[0] != ptrs[1] and not any(t.is_meta for t in [*loaded.parameters(), *loaded.buffers()])
    assert_same_model(model, loaded)


def test_tied_embeddings_load_tied(tmp_path):
    from irexport.checkpoints.assemble import build_model
    from irexport.models.random_init import hf_config, routing_config

    cfg = hf_config("llama", 257)
    cfg.tie_word_embeddings = True
    model = build_model(cfg, routing_config("skipgpt", cfg.num_hidden_layers, cfg.hidden_size)).eval()
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.base.lm_head.weight is loaded.base.model.embed_tokens.weight
    assert_same_model(model, loaded)


def test_init_is_byte_for_byte_deterministic(tmp_path, cli):
    for d in ("a", "b"):
        assert cli("init", tmp_path / d, "--family", "skipgpt", "--seed", "5")[0] == 0
    for f in ("model.safetensors", "routing.safetensors", "routing_config.json", "config.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def base_dir(model, path, weights=True):
    """A transformers directory: config.json, and the base weights unless ``weights`` is False."""
    model.base.save_pretrained(path)
    if not weights:
        (path / "model.safetensors").unlink()
    return path


@pytest.mark.parametrize("prefix", ["", "base_model.model."])
def test_convert_full_informed_dict(tmp_path, cli, prefix):
    model = tiny("informed")
    torch.save(research_state_dict(model, prefix=prefix), tmp_path / "full.pt")
    base = base_dir(model, tmp_path / "base", weights=False)
    code, _, err = cli("convert", tmp_path / "full.pt", "--family", "informed", "--base", base, "-o", tmp_path / "out")
    assert code == 0, err
    assert_same_model(model, load_model(tmp_path / "out"))


def test_convert_partial_dicts_over_a_base_model(tmp_path, cli):
    """The training code's router-only and lw-only dicts, overlaid on the transformers base model."""
    model = tiny("informed", "qwen2")
    torch.save(research_state_dict(model, include=("router",)), tmp_path / "router.pt")
    torch.save(research_state_dict(model, include=("lw",)), tmp_path / "lw.pt")
    base = base_dir(model, tmp_path / "base")
    code, _, err = cli("convert", tmp_path / "router.pt", tmp_path / "lw.pt", "--family", "informed", "--base", base,
                       "-o", tmp_path / "out")
    assert code == 0, err
    assert_same_model(model, load_model(tmp_path / "out"))


def test_convert_released_skipgpt_routers(tmp_path, cli):
    """Released SkipGPT: single-Linear routers reading the layer input, PEFT prefix, some units unrouted."""
    model = tiny("skipgpt", router_hidden=0, router_input="layer_residual", units=("attention",))
    state = research_state_dict(model, include=("router",), prefix="base_model.model.")
    assert "base_model.model.model.layers.0.router_attention.weight_predictor.weight" in state
    torch.save(state, tmp_path / "routers.bin")
    base = base_dir(model, tmp_path / "base")
    code, _, err = cli("convert", tmp_path / "routers.bin", "--family", "skipgpt", "--base", base, "-o", tmp_path / "out")
    assert code == 0, err
    assert_same_model(model, load_model(tmp_path / "out"))


@pytest.mark.parametrize("granularity,pooling", [("attn_token", "token"), ("attn_sequence", "sequence")])
def test_convert_router_tuning(tmp_path, cli, granularity, pooling):
    model = tiny("router_tuning", units=("attention",), router_input="layer_norm", pooling=pooling)
    ckpt = tmp_path / "router_tuning"
    ckpt.mkdir()
    save_file(router_tuning_state_dict(model), str(ckpt / "model.safetensors"))
    (ckpt / "config.json").write_text(json.dumps({"granularity": granularity, "threshold": 0.5, "is_mindskip": True}))
    base = base_dir(model, tmp_path / "base")
    code, _, err = cli("convert", ckpt, "--family", "router_tuning", "--base", base, "-o", tmp_path / "out")
    assert code == 0, err
    assert_same_model(model, load_model(tmp_path / "out"))


def test_convert_then_run_matches_the_original(tmp_path, cli):
    """End to end: research dict -> convert -> irexport run, logits equal to the original model's."""
    import numpy as np

    model = tiny("informed")
    torch.save(research_state_dict(model), tmp_path / "full.pt")
    base = base_dir(model, tmp_path / "base", weights=False)
    assert cli("convert", tmp_path / "full.pt", "--family", "informed", "--base", base, "-o", tmp_path / "m")[0] == 0
    np.save(tmp_path / "ids.npy", IDS.numpy())
    assert cli("run", tmp_path / "m", "--input-ids", tmp_path / "ids.npy", "-o", tmp_path / "run")[0] == 0
    saved = np.load(tmp_path / "run" / "outputs.npz")
    out = model(IDS)
    np.testing.assert_array_equal(saved["logits"], out.logits.detach().numpy())
    np.testing.assert_array_equal(saved["decisions"], out.execute.numpy())


def test_init_writes_its_dtype_deterministically_with_mixed_routing(tmp_path, cli):
    """--dtype bfloat16 builds, calibrates and writes the model in bfloat16 (never float32 first): every tensor
    on disk is bfloat16, two runs are byte-identical, and the calibrated routers still split the tokens.
    --vocab-size sizes the embedding and LM head as a real model's."""
    from safetensors import safe_open

    for d in ("a", "b"):
        assert cli("init", tmp_path / d, "--dtype", "bfloat16", "--seed", "3", "--vocab-size", "300")[0] == 0
    for f in ("model.safetensors", "routing.safetensors"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
        with safe_open(str(tmp_path / "a" / f), "pt") as st:
            assert {st.get_slice(k).get_dtype() for k in st.keys()} == {"BF16"}
    model = load_model(tmp_path / "a", torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    # a vocabulary larger than the byte tokenizer's keeps its end-of-text id
    assert (model.config.vocab_size, model.config.eos_token_id) == (300, byte_tokenizer().eos_token_id)
    with torch.no_grad():
        executed = model(random_ids(4, 32, seed=9)).execute.float().mean((2, 3))  # [layers, units]
    assert ((executed > 0.1) & (executed < 0.9)).all(), executed


def test_loading_casts_to_the_requested_dtype(tmp_path):
    """load_model(dtype) gives what loading and then casting gives, from either stored dtype."""
    model = tiny("informed")
    save_model(model, tmp_path / "f32")
    save_model(tiny("informed").to(torch.bfloat16), tmp_path / "bf16")
    as_bf16 = load_model(tmp_path / "f32", torch.bfloat16)
    assert_same_model(model.to(torch.bfloat16), as_bf16)
    upcast, stored = load_model(tmp_path / "bf16"), tiny("informed").to(torch.bfloat16)
    # the weights upcast exactly (the rotary frequencies are not stored: rebuilt in float32, not rounded)
    assert all(torch.equal(a, b.float()) and a.dtype == torch.float32
               for a, b in zip(upcast.state_dict().values(), stored.state_dict().values(), strict=True))


def test_loading_in_a_smaller_dtype_holds_one_copy(tmp_path):
    """A float32 checkpoint loaded as bfloat16 peaks near the bfloat16 weights (each tensor cast as it is read),
    not at the float32 ones and their cast. Measured in a child process (Linux: /proc/self/status)."""
    import subprocess
    import sys

    from irexport.models.random_init import make_random_model

    model = make_random_model("skipgpt", hidden_size=1024, intermediate_size=4096, num_hidden_layers=4,
                              num_attention_heads=16, num_key_value_heads=4, calibrate_routers=False)
    save_model(model, tmp_path / "m")
    bf16_bytes = 2 * sum(p.numel() for p in model.parameters())
    del model
    # the peak is reset once imports are done (clear_refs 5 resets VmHWM), so it is the load's own
    child = ("import sys, torch\n"
             "from irexport.checkpoints import load_model\n"
             "def kib(key): return int(next(l for l in open('/proc/self/status') if l.startswith(key)).split()[1]) * 1024\n"
             "open('/proc/self/clear_refs', 'w').write('5')\n"
             "before = kib('VmRSS:')\n"
             "m = load_model(sys.argv[1], {dtype})\n"
             "print(kib('VmHWM:') - before)\n")
    grown = {dtype: int(subprocess.run([sys.executable, "-c", child.format(dtype=dtype), str(tmp_path / "m")],
                                       capture_output=True, text=True, check=True).stdout)
             for dtype in ("torch.bfloat16", "torch.float32")}
    assert grown["torch.float32"] > 1.8 * bf16_bytes  # the measure sees a float32 load
    assert grown["torch.bfloat16"] < 1.5 * bf16_bytes, (grown, bf16_bytes)
