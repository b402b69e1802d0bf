"""Every op, declared once. Importing this package fills :data:`REGISTRY`."""

from . import (  # noqa: F401  (each module registers its ops)
    attention,
    collectives,
    convolution,
    elementwise,
    indexing,
    linalg,
    lookups,
    losses,
    nn,
    pooling,
    reductions,
    reshaping,
    results,
    scan,
    windows,
)
from .registry import REGISTRY, AttrSpec, OpDef, get_op, public_ops

__all__ = ["REGISTRY", "AttrSpec", "OpDef", "get_op", "public_ops"]
