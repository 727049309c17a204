"""Schemas for the records irexport reads (its own JSON records, the parts of users' configs it relies on).

A record is checked once, where it is read and before anything is allocated or used, so that a wrong type,
a missing key or an out-of-range value is one line naming the file and the key, never a crash deep inside
a command. The specs are plain values::

    SCHEMA = Obj({"dtype": Str(choices=DTYPES), "model": Obj({"num_layers": Int(1, 4096)})})
    validate(record, SCHEMA, "out/manifest.json")   # IrexportError: out/manifest.json: key 'model.num_layers' ...

``Obj`` lists the keys a record must have (``optional`` ones may be absent) and, unless ``closed``,
lets other keys through: records written by a newer irexport keep loading in an older one where they can.
"""

from __future__ import annotations

import math
import re
import reprlib

from .errors import IrexportError


class _ShortRepr(reprlib.Repr):
    def repr_int(self, x, level):
        # repr() of an int past 4300 digits raises (e.g. a YAML hex literal, which PyYAML reads unbounded)
        return super().repr_int(x, level) if x.bit_length() <= 128 else f"<an integer of {x.bit_length()} bits>"


_SHORT = _ShortRepr()  # reprs of values in errors: bounded in depth and length
_SHORT.maxlevel, _SHORT.maxdict, _SHORT.maxlist, _SHORT.maxstring, _SHORT.maxlong, _SHORT.maxother = 2, 3, 3, 50, 40, 50


class Spec:
    def describe(self) -> str:
        raise NotImplementedError

    def check(self, value, key: str, where: str):
        """The value (normalized where the spec says so); raises for a value the spec does not admit."""
        raise NotImplementedError

    def fail(self, value, key: str, where: str):
        shown = _SHORT.repr(value)  # bounded: a value may be a YAML alias bomb
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        subject = f"key {key!r}" if key else "the whole record"
        raise IrexportError(f"{where}: {subject} must be {self.describe()}, got {shown}")


class Int(Spec):
    def __init__(self, lo: int | None = None, hi: int | None = None):
        self.lo, self.hi = lo, hi

    def describe(self):
        if self.lo is not None and self.lo == self.hi:
            return str(self.lo)
        if self.lo is not None and self.hi is not None:
            return f"an integer in [{self.lo}, {self.hi}]"
        return "an integer" + (f" >= {self.lo}" if self.lo is not None else f" <= {self.hi}" if self.hi is not None else "")

    def check(self, value, key, where):
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(value, key, where)
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            self.fail(value, key, where)
        return value


class Num(Spec):
    """A number in [lo, hi]; ``open_lo`` excludes lo. Finite unless ``finite=False`` (NaN and infinities
    admitted: a measured error that overflowed is still a measurement)."""

    def __init__(self, lo: float | None = None, hi: float | None = None, open_lo: bool = False, finite: bool = True):
        self.lo, self.hi, self.open_lo, self.finite = lo, hi, open_lo, finite

    def describe(self):
        left = "(" if self.open_lo else "["
        if self.lo is not None and self.hi is not None:
            return f"a number in {left}{self.lo}, {self.hi}]"
        if self.lo is not None:
            return f"a number {'>' if self.open_lo else '>='} {self.lo}"
        return f"a number <= {self.hi}" if self.hi is not None else "a number"

    def check(self, value, key, where):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(value, key, where)
        if isinstance(value, int):
            try:
                float(value)  # the value is used as a float: an int past the float range is not a number here
            except OverflowError:
                self.fail(value, key, where)
        elif not math.isfinite(value):
            if self.finite:
                self.fail(value, key, where)
            if math.isnan(value):
                return value
        if self.lo is not None and (value < self.lo or (self.open_lo and value == self.lo)):
            self.fail(value, key, where)
        if self.hi is not None and value > self.hi:
            self.fail(value, key, where)
        return value


class Bool(Spec):
    def describe(self):
        return "true or false"

    def check(self, value, key, where):
        if not isinstance(value, bool):
            self.fail(value, key, where)
        return value


class Str(Spec):
    def __init__(self, choices=None, pattern: str | None = None, what: str | None = None):
        self.choices = tuple(choices) if choices is not None else None
        self.pattern = re.compile(pattern) if pattern else None
        self.what = what

    def describe(self):
        if self.choices is not None:
            return "one of " + ", ".join(map(repr, self.choices))
        return self.what or "a string"

    def check(self, value, key, where):
        if not isinstance(value, str):
            self.fail(value, key, where)
        if self.choices is not None and value not in self.choices:
            self.fail(value, key, where)
        if self.pattern is not None and not self.pattern.fullmatch(value):
            self.fail(value, key, where)
        return value


SHA256 = Str(pattern=r"[0-9a-f]{64}", what="a sha256 hex digest")
# a file named by a record lives in the record's own directory: no separators, no "..", no hidden names
FILE_NAME = Str(pattern=r"[A-Za-z0-9_][A-Za-z0-9_.+-]*", what="a plain file name in the record's directory")


class Opt(Spec):
    """``spec`` or null."""

    def __init__(self, spec: Spec):
        self.spec = spec

    def describe(self):
        return f"{self.spec.describe()} or null"

    def check(self, value, key, where):
        return None if value is None else self.spec.check(value, key, where)


class OneOf(Spec):
    def __init__(self, *specs: Spec):
        self.specs = specs

    def describe(self):
        return " or ".join(s.describe() for s in self.specs)

    def check(self, value, key, where):
        for spec in self.specs:
            try:
                return spec.check(value, key, where)
            except IrexportError:
                continue
        self.fail(value, key, where)


class List(Spec):
    def __init__(self, item: Spec, min_len: int = 0, max_len: int | None = None):
        self.item, self.min_len, self.max_len = item, min_len, max_len

    def describe(self):
        if self.max_len is None:
            return "a non-empty list" if self.min_len == 1 else f"a list of at least {self.min_len} items" if self.min_len else "a list"
        return f"a list of {self.min_len} to {self.max_len} items"

    def check(self, value, key, where):
        if not isinstance(value, list):
            self.fail(value, key, where)
        if len(value) < self.min_len or (self.max_len is not None and len(value) > self.max_len):
            self.fail(value, key, where)
        return [self.item.check(v, f"{key}[{i}]", where) for i, v in enumerate(value)]


class Tuple(Spec):
    """A list of fixed length whose items each have their own spec."""

    def __init__(self, *items: Spec):
        self.items = items

    def describe(self):
        return f"a list of {len(self.items)} items"

    def check(self, value, key, where):
        if not isinstance(value, list) or len(value) != len(self.items):
            self.fail(value, key, where)
        return [spec.check(v, f"{key}[{i}]", where) for i, (spec, v) in enumerate(zip(self.items, value, strict=False))]


class _Mapping(Spec):
    def describe(self):
        return "an object"

    def mapping(self, value, key, where) -> None:
        """A mapping with string keys (JSON's always are; YAML's need not be)."""
        if not isinstance(value, dict):
            self.fail(value, key, where)
        for k in value:
            if not isinstance(k, str):
                raise IrexportError(f"{where}: key {_join(key, k)!r} is not a string")


class Map(_Mapping):
    """An object with any string keys (``keys`` restricts them), each value of ``value``."""

    def __init__(self, value: Spec, keys=None):
        self.value, self.keys = value, keys

    def check(self, value, key, where):
        self.mapping(value, key, where)
        out = {}
        for k, v in value.items():
            if self.keys is not None and k not in self.keys:
                raise IrexportError(f"{where}: unknown key {_join(key, k)!r} (known: {', '.join(self.keys)})")
            out[k] = self.value.check(v, _join(key, k), where)
        return out


class Obj(_Mapping):
    def __init__(self, fields: dict, optional=(), closed: bool = False):
        self.fields, self.optional, self.closed = fields, set(optional), closed

    def check(self, value, key, where):
        self.mapping(value, key, where)
        if self.closed:
            unknown = sorted(set(value) - set(self.fields))
            if unknown:
                raise IrexportError(f"{where}: unknown key {_join(key, unknown[0])!r}")
        out = dict(value)
        for name, spec in self.fields.items():
            if name not in value:
                if name in self.optional:
                    continue
                raise IrexportError(f"{where}: missing key {_join(key, name)!r}")
            out[name] = spec.check(value[name], _join(key, name), where)
        return out


def _join(key: str, name) -> str:
    return f"{key}.{name}" if key else str(name)


def validate(record, spec: Spec, where: str):
    """``record`` checked against ``spec`` (normalized); one IrexportError naming ``where`` and the key."""
    if not isinstance(spec, Obj) or isinstance(record, dict):
        return spec.check(record, "", where)
    raise IrexportError(f"{where}: expected a JSON object, got {type(record).__name__}")
