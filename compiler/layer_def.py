"""What a layer is: a call that creates its own parameters, then expands into ordinary ops (``layers.py``,
``recurrent_layers.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .builder import Builder, Ref
from .ops.registry import AttrSpec

# new_param(role, shape, init_spec) -> a param node named <statement>.<layer><k>.<role>
NewParam = Callable[[str, tuple[int, ...], dict[str, Any]], Ref]


@dataclass(frozen=True)
class LayerDef:
    name: str
    attrs: tuple[AttrSpec, ...]
    build: Callable[[Builder, Ref, dict[str, Any], NewParam], Ref]
    formula: str
    params: str
    # keyword arguments whose values are tensors of the model (an initial state, lengths), not constants; the
    # build function finds each in ``attrs`` (None when not given)
    tensors: tuple[AttrSpec, ...] = ()
