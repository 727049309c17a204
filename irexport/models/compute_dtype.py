"""Run a model in another precision without a second copy of its weights.

Parity compares a float16 / bfloat16 backend with the reference computed in float32. A float32 copy of
an 8B-class model is 32 GB beside its 16 GB of bfloat16 weights; instead, each module's own parameters
and buffers are cast to float32 as the module starts and given their own storage back as it ends, so the
forward holds one module's float32 copy at a time. Casting float16 / bfloat16 to float32 is exact, so every
module computes on the weights a float32 copy of the model would hold.
"""

from __future__ import annotations

import contextlib

import torch


def _own_floats(module: torch.nn.Module) -> list[torch.Tensor]:
    own = [*module.parameters(recurse=False), *module.buffers(recurse=False)]
    return [t for t in own if t.is_floating_point()]


@contextlib.contextmanager
def computing_in(model: torch.nn.Module, dtype: torch.dtype):
    """Forwards of ``model`` inside compute in ``dtype``; the model is as it was afterwards."""
    modules = [m for m in model.modules() if _own_floats(m)]
    stored: dict[int, tuple] = {}  # id -> (tensor, its own data); tied weights: one entry

    def start(module, *_):
        for t in _own_floats(module):
            stored.setdefault(id(t), (t, t.data))
            t.data = t.data.to(dtype)

    def end(module, *_):
        for t in _own_floats(module):
            t.data = stored[id(t)][1]  # the very tensor it held: nothing copied back, storages shared as before

    handles = [h for m in modules for h in (m.register_forward_pre_hook(start), m.register_forward_hook(end))]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        for t, data in stored.values():  # a forward that raised left its modules' tensors cast
            t.data = data
