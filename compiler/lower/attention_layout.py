"""How every target hands attention's ops (compiler/ops/attention.py) to its kernels: each operand as a view
with the leading dimensions flattened into one (q [E, T, D], lse [E, T], ...), the mask as [Em, Tm, Sm] with
Tm in {1, T} and Sm in {1, S}, the mask's leading dimensions (right-aligned against q's, 1 where the mask
broadcasts) for ``attention_entries``, and the two attributes as numbers."""

from __future__ import annotations

from dataclasses import dataclass

from ..graph import Graph, Node
from ..ops.attention import effective_scale

# per op: the operands, each with how many trailing axes it keeps after the flattened leading ones
KEPT_AXES = {
    "attention": (2, 2, 2, None),
    "attention_lse": (2, 2, None),
    "attention_dq": (2, 2, 2, 2, 1, 1, None),
    "attention_dk": (2, 2, 2, 2, 1, 1, None),
    "attention_dv": (2, 2, 2, 1, None),
    "attention_ds": (2, 2, 2, 2, 1, 1, None),
}
KERNELS = {"attention": "attention_forward3", "attention_lse": "attention_lse3", "attention_dq": "attention_dq3",
           "attention_dk": "attention_dk3", "attention_dv": "attention_dv3",
           "attention_ds": "attention_ds3"}


@dataclass(frozen=True)
class AttentionCall:
    kernel: str  # the library function
    # (value, its view's shape: "E" for the flattened leading dimensions, "M" for the mask's); the value None:
    # no mask given (attention(q, k, v)), a [1, 1, 1] array of zeros stands for it
    operands: list[tuple[int | None, tuple]]
    lead: tuple  # q's leading dimensions (numbers and the batch symbol)
    mask_lead: tuple  # the mask's, right-aligned against ``lead``
    causal: bool
    scale: float


def attention_call(graph: Graph, node: Node) -> AttentionCall:
    q = graph.node(node.inputs[0]).type
    lead = q.shape[:-2]
    operands: list[tuple[int, tuple]] = []
    mask_lead: tuple = ()
    for value, kept in zip(node.inputs, KEPT_AXES[node.op], strict=False):
        shape = graph.node(value).type.shape
        if kept is None:  # the mask
            padded = (1, 1, *shape)[-2:] if len(shape) < 2 else shape[-2:]
            mask_lead = shape[:-2]
            operands.append((value, ("M", *padded)))
        else:
            operands.append((value, ("E", *shape[len(shape) - kept:])))
    if len(operands) < len(KEPT_AXES[node.op]):
        operands.append((None, ("M", 1, 1)))
    return AttentionCall(KERNELS[node.op], operands, lead, mask_lead, bool(node.attrs["causal"]),
                         effective_scale(node.attrs, q.shape[-1]))
