"""Every op, declared once. Importing this package fills :data:`REGISTRY`."""

from . import elementwise, indexing, linalg, lookups, losses, nn, reductions, reshaping  # noqa: F401  (each module registers its ops)
from .registry import REGISTRY, AttrSpec, OpDef, get_op, public_ops

__all__ = ["REGISTRY", "AttrSpec", "OpDef", "get_op", "public_ops"]
