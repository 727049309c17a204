"""The PyTorch reference: modes agree, all-execute equals plain transformers, padding, KV cache."""

import pytest
import torch
from conftest import ARCHS, CAUSAL, FAMILY_SETTINGS, left_padding_mask, random_ids, tiny

from irexport.models.config import UNITS

FAMILIES = list(FAMILY_SETTINGS)
SEQ = 24  # longer than Mistral's tiny sliding window (16), so the window is exercised


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", FAMILIES)
@torch.no_grad()
def test_masked_equals_compact(name, arch):
    model = tiny(name, arch)
    ids = random_ids(3, SEQ)
    mask = left_padding_mask([SEQ, 17, 9], SEQ)
    masked = model(ids, attention_mask=mask, mode="masked")
    compact = model(ids, attention_mask=mask, mode="compact")
    assert torch.equal(masked.execute, compact.execute)
    valid = masked.valid
    assert (masked.logits - compact.logits)[valid].abs().max() <= 1e-5
    frac = masked.execute[:, :, valid].float().mean().item()
    assert 0.05 < frac < 0.95, f"decisions are not mixed: executed fraction {frac}"


def force_all_execute(model):
    """Router weights that send every token to the unit (MoD: gate 1, capacity 1)."""
    with torch.no_grad():
        for unit_routing in (m for layer in model.routing.layers for m in layer.values()):
            router = unit_routing.router
            if hasattr(router, "weight_predictor"):
                router.weight_predictor.weight.zero_()
                router.weight_predictor.bias.copy_(torch.tensor([1.0, 0.0]))
            else:
                router.proj.weight.zero_()  # router-tuning: sigmoid(0) = 0.5 >= threshold 0.5
                if router.proj.bias is not None:
                    router.proj.bias.fill_(1.0)  # MoD: gate r = 1
                    router.capacity = 1.0
    return model


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("mode", ["masked", "compact"])
@torch.no_grad()
def test_all_execute_reproduces_transformers(name, arch, mode):
    model = force_all_execute(tiny(name, arch))
    ids = random_ids(2, SEQ)
    mask = left_padding_mask([SEQ, 15], SEQ)
    position_ids = (mask.cumsum(1) - 1).clamp(min=0)
    out = model(ids, attention_mask=mask, position_ids=position_ids, mode=mode)
    assert out.execute[:, :, out.valid].all()
    plain = model.base(input_ids=ids, attention_mask=mask, position_ids=position_ids).logits
    assert (out.logits - plain)[out.valid].abs().max() <= 1e-5


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("mode", ["masked", "compact"])
@torch.no_grad()
def test_padding_does_not_change_a_sequence(name, mode):
    """A left-padded sequence in a batch gives the logits and decisions it gets alone."""
    model = tiny(name, "qwen3")
    ids = random_ids(3, SEQ, seed=4)
    lengths = [SEQ, 13, 6]
    batch = model(ids, attention_mask=left_padding_mask(lengths, SEQ), mode=mode)
    for b, n in enumerate(lengths):
        alone = model(ids[b : b + 1, SEQ - n :], mode=mode)
        assert torch.equal(batch.execute[:, :, b, SEQ - n :], alone.execute[:, :, 0])
        assert (batch.logits[b, SEQ - n :] - alone.logits[0]).abs().max() <= 1e-5
        assert not batch.execute[:, :, b, : SEQ - n].any(), "padding must not execute"


def decode_steps(model, ids, mask, prefill_len, mode):
    """Prefill ``prefill_len`` tokens, then decode the rest one token per step."""
    out = model(ids[:, :prefill_len], attention_mask=mask[:, :prefill_len], mode=mode)
    logits, execute, cache = [out.logits], [out.execute], out.past_key_values
    for t in range(prefill_len, ids.shape[1]):
        step = model(ids[:, t : t + 1], attention_mask=mask[:, : t + 1], past_key_values=cache, mode=mode)
        logits.append(step.logits)
        execute.append(step.execute)
        cache = step.past_key_values
    return torch.cat(logits, 1), torch.cat(execute, 3), cache


@pytest.mark.parametrize("arch", ["llama", "mistral"])
@pytest.mark.parametrize("name", CAUSAL)
@pytest.mark.parametrize("mode", ["masked", "compact"])
@torch.no_grad()
def test_prefill_and_decode_equal_full_forward(name, arch, mode):
    model = tiny(name, arch)
    ids = random_ids(2, 22, seed=7)
    mask = left_padding_mask([22, 14], 22)
    full = model(ids, attention_mask=mask, mode=mode)
    logits, execute, cache = decode_steps(model, ids, mask, 12, mode)
    valid = full.valid
    assert torch.equal(execute & valid, full.execute & valid)
    assert (logits - full.logits)[valid].abs().max() <= 1e-5
    for (k, v), (fk, fv) in zip(cache, full.past_key_values, strict=True):
        assert k.shape == fk.shape and (k - fk).abs().max() <= 1e-5 and (v - fv).abs().max() <= 1e-5


@torch.no_grad()
def test_mod_decode_uses_the_causal_threshold():
    """MoD decode (with a cache) executes where sigmoid(r) >= decode_threshold, with gate r."""
    model = tiny("mod")
    ids = random_ids(4, 17, seed=9)
    prefill = model(ids[:, :16])
    seen = {}
    router = model.routing.layers[1]["mlp"].router
    hook = router.register_forward_hook(lambda m, args, out: seen.update(x=args[0]))
    step = model(ids[:, 16:], past_key_values=prefill.past_key_values)
    hook.remove()
    r = router.proj(seen["x"])[..., 0]
    expected = torch.sigmoid(r) >= model.routing_config.decode_threshold
    assert torch.equal(step.execute[1, UNITS.index("mlp")], expected)
    capacity = prefill.execute[:, :, :, :].float().mean(-1)
    assert torch.allclose(capacity, torch.full_like(capacity, 0.5)), "prefill keeps top ceil(0.5 * 16) = 8 tokens"


@torch.no_grad()
@pytest.mark.parametrize("name", list(FAMILY_SETTINGS))
def test_an_empty_cache_is_a_prefill(name):
    """The exported graph always takes a cache; with no token in it (past length 0) the forward is the
    prefill, for MoD too (top-k capacity, not the decode threshold)."""
    model = tiny(name)
    ids, mask = random_ids(3, 10, seed=4), left_padding_mask([10, 7, 4], 10)
    cfg = model.config
    empty = tuple((torch.zeros(3, cfg.num_key_value_heads, 0, cfg.head_dim),) * 2 for _ in range(cfg.num_hidden_layers))
    for mode in ("masked", "compact"):
        plain = model(ids, attention_mask=mask, mode=mode)
        cached = model(ids, attention_mask=mask, past_key_values=empty, mode=mode)
        assert torch.equal(plain.execute, cached.execute)
        assert torch.allclose(plain.logits, cached.logits, atol=1e-6)  # cat with an empty cache may change the layout


@torch.no_grad()
def test_sequence_pooling_routes_whole_sequences():
    model = tiny("router_tuning_seq")
    ids = random_ids(6, 20, seed=3)
    out = model(ids)
    per_seq = out.execute.all(-1) | (~out.execute).all(-1)
    assert per_seq.all(), "every sequence is executed or skipped as a whole"


def test_random_models_are_deterministic():
    a, b = tiny("informed", seed=3), tiny("informed", seed=3)
    c = tiny("informed", seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@torch.no_grad()
def test_low_precision_runs_close_to_float32(dtype):
    model = tiny("skipgpt")
    ids = random_ids(2, 16)
    ref = model(ids)
    low = model.to(dtype)(ids)
    agree = (low.execute == ref.execute).float().mean()
    assert agree > 0.9
    assert low.logits.dtype == dtype and torch.isfinite(low.logits).all()


@torch.no_grad()
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("mode", ["masked", "compact"])
def test_computing_in_float32_equals_a_float32_copy(dtype, mode):
    """Parity's float32 reference of a low-precision model: module by module in float32 gives exactly what a
    float32 copy of the model gives, holds no such copy, and leaves the model as it was (a forward that
    raised included)."""
    import copy

    from irexport.models.compute_dtype import computing_in

    model = tiny("informed").to(dtype)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    storages = [p.data_ptr() for p in model.parameters()]
    ids = random_ids(2, 10)
    with torch.no_grad():
        expected = copy.deepcopy(model).float()(ids, mode=mode)
        float32_modules = []
        probe = model.base.model.layers[1].mlp.register_forward_pre_hook(
            lambda m, a: float32_modules.append(sum(p.dtype == torch.float32 for p in model.parameters())))
        with computing_in(model, torch.float32):
            got = model(ids, mode=mode)
        probe.remove()
    assert got.logits.dtype == torch.float32 and torch.equal(got.logits, expected.logits)
    assert torch.equal(got.execute, expected.execute)
    assert float32_modules == [0]  # entering the MLP: no module's weights are float32 (its own are cast within)

    def fail(module, args, output):  # runs before computing_in's own hook would cast the weight back
        raise RuntimeError("stop")

    failing = model.base.model.layers[1].mlp.down_proj.register_forward_hook(fail)
    with pytest.raises(RuntimeError, match="stop"), torch.no_grad(), computing_in(model, torch.float32):
        model(ids)
    failing.remove()
    after = model.state_dict()
    assert all(after[k].dtype == dtype and torch.equal(after[k], before[k]) for k in before)
    assert [p.data_ptr() for p in model.parameters()] == storages  # its own tensors back, not copies


def test_float16_padding_stays_finite():
    """Fully masked padding rows must not turn into NaN in float16 (and poison the valid tokens)."""
    model = tiny("informed").to(torch.float16)
    ids = random_ids(2, 16, seed=11)
    out = model(ids, attention_mask=left_padding_mask([16, 6], 16))
    assert torch.isfinite(out.logits).all()
    assert all(torch.isfinite(k).all() and torch.isfinite(v).all() for k, v in out.past_key_values)


@pytest.mark.parametrize("name", sorted(FAMILY_SETTINGS))
def test_router_calibration_is_one_forward_and_equals_unit_by_unit(name):
    """``irexport init`` centres each router on its inputs in one forward (linear in depth); the result is
    the one of centring unit by unit with a whole forward each, the definition."""
    from irexport.models.random_init import _centre, calibrate, calibration_ids

    one, reference = (tiny(name, calibrate_routers=False) for _ in range(2))
    ids = calibration_ids(one.config.vocab_size, seed=0)
    forwards = []
    one.base.model.embed_tokens.register_forward_hook(lambda *a: forwards.append(1))
    calibrate(one, ids)
    assert len(forwards) == 1
    rc = reference.routing_config
    with torch.no_grad():
        for i in range(rc.num_layers):
            for unit in UNITS:
                if rc.is_routed(i, unit):
                    router, seen = reference.routing.layers[i][unit].router, []
                    hook = router.register_forward_pre_hook(lambda mod, args: seen.append(args[0].float()))
                    reference(ids)
                    hook.remove()
                    _centre(router, rc, seen[0], 0.5)
    for (key, a), b in zip(one.routing.state_dict().items(), reference.routing.state_dict().values(), strict=True):
        assert torch.equal(a, b), key
    assert 0.2 < one(ids).execute.float().mean() < 0.8  # mixed decisions, what calibration is for


@pytest.mark.parametrize("name", ["informed", "skipgpt", "router_tuning"])
@pytest.mark.parametrize("fraction", [0.25, 0.75])
def test_routers_calibrate_to_a_fraction(name, fraction):
    """The benchmarks calibrate routers to execute a given fraction of the calibration tokens."""
    from irexport.models.random_init import calibrate, calibration_ids

    model = tiny(name, calibrate_routers=False)
    ids = calibration_ids(model.config.vocab_size, seed=0, seq=64)
    calibrate(model, ids, fraction)
    with torch.no_grad():
        executed = model(ids).execute.float().mean().item()
    assert abs(executed - fraction) < 0.1, executed


@torch.no_grad()
def test_flops_of_a_decode_step_are_the_next_token_of_a_prefill():
    """Dense FLOPs are counted per token, the attention core over the cache: a decode step over P cached
    tokens costs what the (P+1)-th token adds to a prefill."""
    from irexport.models.stats import flops

    model = tiny("informed")
    ids = random_ids(1, 12)
    longer, shorter = model(ids), model(ids[:, :-1])
    step = model(ids[:, -1:], past_key_values=shorter.past_key_values)
    got = flops(model, step, past_tokens=torch.tensor([11]))["dense_flops"]
    assert got == flops(model, longer)["dense_flops"] - flops(model, shorter)["dense_flops"]


@torch.no_grad()
def test_decode_bytes_count_the_weights_and_cache_a_step_reads():
    from irexport.models.attention import head_dim
    from irexport.models.stats import decode_bytes

    model = tiny("informed")
    ids = random_ids(3, 9)
    prefill = model(ids[:, :-1])
    nbytes = lambda modules: sum(p.numel() * p.element_size() for m in modules for p in m.parameters())  # noqa: E731
    layers = model.base.model.layers
    routed = [(i, u) for i in range(len(layers)) for u in model.routing.layers[i]]
    assert len(routed) == 2 * len(layers)  # every unit routed, so forcing decisions decides every unit
    routers = nbytes(model.routing.layers[i][u].router for i, u in routed)
    lffs = nbytes(model.routing.layers[i][u].lff for i, u in routed)
    L = len(layers)
    cache = 3 * L * 2 * model.config.num_key_value_heads * head_dim(model.config) * 4 * 9  # B x L x K,V x heads x hd x fp32 x slots
    every = model(ids[:, -1:], past_key_values=prefill.past_key_values, force_execute=torch.ones(L, 2, 3, 1, dtype=torch.bool))
    got = decode_bytes(model, every, past_tokens=8)
    assert got["routed_bytes"] - got["dense_bytes"] == routers  # routing only adds its routers
    none = model(ids[:, -1:], past_key_values=prefill.past_key_values, force_execute=torch.zeros(L, 2, 3, 1, dtype=torch.bool))
    got = decode_bytes(model, none, past_tokens=8)
    units = nbytes([*(m.self_attn.q_proj for m in layers), *(m.self_attn.o_proj for m in layers), *(m.mlp for m in layers)])
    assert got["dense_bytes"] - got["routed_bytes"] == units + cache - routers - lffs


@torch.no_grad()
def test_decode_bytes_as_exported_add_the_cache_copy_and_every_sequence_s_core():
    """As the exported graph moves them: the cache is copied past -> present on both sides, and once one
    sequence executes attention the core reads every sequence's cache (Tq = 1 for the whole batch)."""
    from irexport.models.attention import head_dim
    from irexport.models.stats import decode_bytes

    model = tiny("informed")
    ids = random_ids(3, 9)
    prefill = model(ids[:, :-1])
    L = model.config.num_hidden_layers
    kv_token = 2 * model.config.num_key_value_heads * head_dim(model.config) * 4
    first_only = torch.zeros(L, 2, 3, 1, dtype=torch.bool)
    first_only[:, :, 0] = True
    step = model(ids[:, -1:], past_key_values=prefill.past_key_values, force_execute=first_only)
    ideal, graph = decode_bytes(model, step, 8), decode_bytes(model, step, 8, as_exported=True)
    copy = L * 2 * 3 * kv_token * 8  # layers x (read + write) x sequences x slots
    assert graph["dense_bytes"] - ideal["dense_bytes"] == copy
    assert graph["routed_bytes"] - ideal["routed_bytes"] == copy + L * 2 * kv_token * 9  # two more sequences' cores

    # no sequence executes: no core reads the cache; all execute: no LFF is read (it runs on skipped tokens only)
    for force in (torch.zeros(L, 2, 3, 1, dtype=torch.bool), torch.ones(L, 2, 3, 1, dtype=torch.bool)):
        step = model(ids[:, -1:], past_key_values=prefill.past_key_values, force_execute=force)
        ideal, graph = decode_bytes(model, step, 8), decode_bytes(model, step, 8, as_exported=True)
        assert graph["routed_bytes"] - ideal["routed_bytes"] == copy


@torch.no_grad()
def test_flops_as_exported_count_the_core_over_every_key(monkeypatch):
    from irexport.models import attention
    from irexport.models.attention import head_dim
    from irexport.models.stats import _router_flops, flops

    model = tiny("informed")
    cfg = model.config
    L = cfg.num_hidden_layers
    ids = random_ids(2, 7)
    routings = [model.routing.layers[i][u] for i in range(L) for u in model.routing.layers[i]]
    assert len(routings) == 2 * L
    every = model(ids, force_execute=torch.ones(L, 2, 2, 7, dtype=torch.bool))
    got = flops(model, every, as_exported=True)
    assert got["routed_flops"] - got["dense_flops"] == sum(_router_flops(r) for r in routings) * 14  # no LFF runs

    # attention runs for tokens 0-2 of sequence 0 and token 6 of sequence 1, no MLP: the compact core is
    # [2 sequences, Tq = 3] queries over all 7 keys, the ideal counts each query's causal keys (1+2+3 + 7)
    force = torch.zeros(L, 2, 2, 7, dtype=torch.bool)
    force[:, 0, 0, :3] = True
    force[:, 0, 1, 6] = True
    core = []  # what the compact forward's attention core runs: sequences x queries x keys, per layer
    real = attention.attend

    def spy(attn, q, k, *rest):
        core.append(q.shape[0] * q.shape[2] * k.shape[2])
        return real(attn, q, k, *rest)

    monkeypatch.setattr(attention, "attend", spy)
    out = model(ids, mode="compact", force_execute=force)
    assert core == [2 * 3 * 7] * L
    ideal, graph = flops(model, out), flops(model, out, as_exported=True)
    scores = 2 * 2 * cfg.num_attention_heads * head_dim(cfg)
    assert graph["dense_flops"] - ideal["dense_flops"] == L * scores * (2 * 7 * 7 - 2 * 28)
    assert graph["routed_flops"] - ideal["routed_flops"] == scores * (sum(core) - 13 * L)


@torch.no_grad()
def test_compact_runs_the_lff_on_the_skipped_tokens_only(monkeypatch):
    """Compact mode's LFF sees the rows of the valid tokens that skip the unit, none else, and the result
    equals masked mode's (which runs the LFF on every token and selects)."""
    from irexport.models.routers import LFF

    model = tiny("informed")
    L = model.config.num_hidden_layers
    ids = random_ids(2, 7)
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, :2] = 0  # left padding: neither executes nor approximates
    force = torch.rand(L, 2, 2, 7, generator=torch.Generator().manual_seed(0)) < 0.5
    force[0, 1] = True  # layer 0's MLP: every token executes, the LFF runs on no row
    rows = []
    real = LFF.forward
    monkeypatch.setattr(LFF, "forward", lambda self, x: rows.append(x.shape[0]) or real(self, x))
    compact = model(ids, attention_mask=mask, mode="compact", force_execute=force)
    valid = mask.bool()
    assert rows == [int((valid & ~force[i, u]).sum()) for i in range(L) for u in range(2)]
    assert rows[1] == 0
    masked = model(ids, attention_mask=mask, mode="masked", force_execute=force)
    torch.testing.assert_close(compact.logits[valid], masked.logits[valid], rtol=1e-4, atol=1e-5)
