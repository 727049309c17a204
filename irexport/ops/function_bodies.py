"""Each routing op's portable body in standard ONNX ops, written with onnxscript (the library torch.onnx
itself uses), one function per op, named as the op.

These bodies are what ONNX Runtime runs, and what TensorRT inlines when the plugin library is not
loaded, so every data-dependent size comes from NonZero (TensorRT's INonZeroLayer); no value reduced
from data feeds a shape input. Masks arrive as int32 and are read through bool, so any non-zero value
means true, as in the torch ops and the kernels.
"""

from __future__ import annotations

from onnx import TensorProto
from onnxscript import opset18 as op
from onnxscript import script
from onnxscript.values import Opset

from .spec import DOMAIN, DOMAIN_OPSET, OPS

BODY_OPSET = 18  # Reduce* with axes inputs, CastLike
_irexport = Opset(DOMAIN, DOMAIN_OPSET)
F32, I32, I64, BOOL = TensorProto.FLOAT, TensorProto.INT32, TensorProto.INT64, TensorProto.BOOL
NEG_INF = float("-inf")


@script(_irexport, default_opset=op)
def RouteArgmax(scores):
    s = op.Cast(scores, to=F32)
    margin = op.Squeeze(op.Gather(s, [0], axis=-1), [-1]) - op.Squeeze(op.Gather(s, [1], axis=-1), [-1])
    return margin


@script(_irexport, default_opset=op)
def RouteThreshold(scores, threshold: float):
    s0 = op.Squeeze(op.Gather(op.Cast(scores, to=F32), [0], axis=-1), [-1])
    margin = op.Sigmoid(s0) - threshold
    return margin


@script(_irexport, default_opset=op)
def RouteTopK(scores, valid, capacity: float):
    s0 = op.Squeeze(op.Gather(op.Cast(scores, to=F32), [0], axis=-1), [-1])  # [B, T]
    valid_b = op.Cast(valid, to=BOOL)
    n = op.ReduceSum(op.Cast(valid_b, to=I64), [1], keepdims=1)  # valid tokens [B, 1]
    k = op.Cast(op.Ceil(op.Cast(n, to=F32) * capacity), to=I64)  # float32, as the torch op and the kernels
    t = op.Shape(s0, start=1, end=2)
    # every output named: onnxscript keeps Python names, and TensorRT-RTX's builder (Myelin) fails on a tensor
    # named "_" ("duplicate tensor name")
    ranked, ranked_positions = op.TopK(op.Where(valid_b, s0, NEG_INF), t, axis=1, largest=1, sorted=1)
    kth = op.GatherElements(ranked, op.Max(k - 1, 0), axis=1)
    after = op.GatherElements(ranked, op.Min(k, t - 1), axis=1)
    nxt = op.Where(k < n, after, kth - 1.0)  # k covers every valid token: halfway to kth - 1
    margin = s0 - (kth + nxt) / 2.0
    return margin


@script(_irexport, default_opset=op)
def RouteIndex(execute):
    rows = op.Reshape(op.Cast(execute, to=BOOL), [-1])  # the B*T token rows
    index = op.Squeeze(op.NonZero(rows), [0])  # [N], increasing
    count = op.Cast(op.Squeeze(op.Shape(index), [0]), to=I32)  # N, the size tensor
    return index, count


@script(_irexport, default_opset=op)
def RouteSeqIndex(execute):
    executed = op.ReduceSum(op.Cast(op.Cast(execute, to=BOOL), to=I64), [1], keepdims=1)  # per sequence [B, 1]
    first = op.CumSum(executed, op.Constant(value_int=0), exclusive=1)  # where each sequence starts in RouteIndex's list
    t = op.Squeeze(op.Shape(execute, start=1, end=2), [0])
    filled = op.Range(0, t, 1) < executed  # [B, T]: sequence b has a j-th executed token
    # Tq through NonZero: the columns some sequence fills (0 on an empty batch, where ReduceMax would not be)
    j = op.Squeeze(op.NonZero(op.ReduceSum(op.Cast(filled, to=I64), [0], keepdims=0)), [0])  # [Tq]
    count = op.Cast(op.Squeeze(op.Shape(j), [0]), to=I32)
    slots = op.Where(j < executed, first + j, -1)  # [B, Tq]
    return slots, count


@script(_irexport, default_opset=op)
def RouteGather(x, index):
    rows = op.Reshape(x, op.Concat([-1], op.Shape(x, start=-1), axis=0))  # [R, D]
    picked = op.Gather(rows, op.Max(index, 0), axis=0)  # whole rows: [*index.shape, D]
    out = op.Where(op.Unsqueeze(index >= 0, [-1]), picked, op.CastLike(0.0, x))
    return out


@script(_irexport, default_opset=op)
def RouteScatterAdd(x, y, index):
    # x's rows plus one spare row (the target of every -1 entry, dropped at the end); read, add and
    # write back whole rows: the entries >= 0 are distinct, so ScatterND writes each row once
    row_shape = op.Concat([-1], op.Shape(x, start=-1), axis=0)
    rows = op.Reshape(x, row_shape)
    r = op.Shape(rows, start=0, end=1)
    spare = op.Expand(op.CastLike(0.0, x), op.Concat([1], op.Shape(x, start=-1), axis=0))
    padded = op.Concat(rows, spare, axis=0)  # [R + 1, D]
    dest = op.Reshape(op.Where(index >= 0, index, op.Squeeze(r)), [-1])
    summed = op.Gather(padded, dest, axis=0) + op.Reshape(op.CastLike(y, x), row_shape)
    written = op.ScatterND(padded, op.Unsqueeze(dest, [-1]), summed)
    first = op.Constant(value_ints=[0])  # a plain constant: TensorRT's parser wants Slice's axes as weights
    out = op.Reshape(op.Slice(written, first, r, first), op.Shape(x))
    return out


# every op of spec.py has its body here, the function named as the op (a KeyError names an op without one)
BODIES = {name: globals()[name] for name in OPS}
