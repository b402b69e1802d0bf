"""How every target hands attention's ops (compiler/ops/attention.py) to its kernels: each operand as a view
with the leading dimensions flattened into one (q [E, T, D], lse [E, T], ...), the mask as [Em, Tm, Sm] with
Tm in {1, T} and Sm in {1, S}, the mask's leading dimensions (right-aligned against q's, 1 where the mask
broadcasts) for ``attention_entries``, the dropout seed as a view [1] (an int64 array of -1, no dropout,
where the op has none: evaluation) and the attributes as numbers."""

from __future__ import annotations

from dataclasses import dataclass

from ..graph import Graph, Node
from ..ops.attention import effective_scale

MASK, SEED = "mask", "seed"
# per op: the operands, each with how many trailing axes it keeps after the flattened leading ones
KEPT_AXES = {
    "attention": (2, 2, 2, MASK, SEED),
    "attention_lse": (2, 2, MASK),
    "attention_dq": (2, 2, 2, 2, 1, 1, MASK, SEED),
    "attention_dk": (2, 2, 2, 2, 1, 1, MASK, SEED),
    "attention_dv": (2, 2, 2, 1, MASK, SEED),
    "attention_ds": (2, 2, 2, 2, 1, 1, MASK, SEED),
}
KERNELS = {"attention": "attention_forward3", "attention_lse": "attention_lse3", "attention_dq": "attention_dq3",
           "attention_dk": "attention_dk3", "attention_dv": "attention_dv3",
           "attention_ds": "attention_ds3"}


@dataclass(frozen=True)
class AttentionCall:
    kernel: str  # the library function
    # (value, its view's shape: "E" for the flattened leading dimensions, "M" for the mask's); the value None:
    # no mask given (attention(q, k, v)), a [1, 1, 1] array of zeros stands for it; the view (1,) is the seed,
    # the value None for none: a [1] array holding -1 stands for it
    operands: list[tuple[int | None, tuple]]
    lead: tuple  # q's leading dimensions (numbers and the batch symbol)
    mask_lead: tuple  # the mask's, right-aligned against ``lead``
    causal: bool
    scale: float
    dropout: float | None  # None: the kernel takes no dropout (attention_lse)

    @property
    def numbers(self) -> str:
        """The kernel's last arguments after the entries: causal, scale (and dropout)."""
        tail = (self.causal, self.scale) if self.dropout is None else (self.causal, self.scale, self.dropout)
        return ", ".join(repr(x) for x in tail)


def attention_call(graph: Graph, node: Node) -> AttentionCall:
    q = graph.node(node.inputs[0]).type
    lead = q.shape[:-2]
    operands: list[tuple[int, tuple]] = []
    mask_lead: tuple = ()
    kept_axes = KEPT_AXES[node.op]
    values = [*node.inputs, *[None] * (len(kept_axes) - len(node.inputs))]
    for value, kept in zip(values, kept_axes, strict=True):
        if kept == SEED:
            operands.append((value, (1,)))
            continue
        if value is None:  # no mask
            operands.append((None, ("M", 1, 1)))
            continue
        shape = graph.node(value).type.shape
        if kept == MASK:
            padded = (1, 1, *shape)[-2:] if len(shape) < 2 else shape[-2:]
            mask_lead = shape[:-2]
            operands.append((value, ("M", *padded)))
        else:
            operands.append((value, ("E", *shape[len(shape) - kept:])))
    dropout = float(node.attrs["dropout"]) if SEED in kept_axes else None
    return AttentionCall(KERNELS[node.op], operands, lead, mask_lead, bool(node.attrs["causal"]),
                         effective_scale(node.attrs, q.shape[-1]), dropout)
