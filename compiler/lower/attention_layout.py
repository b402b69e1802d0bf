"""How every target hands attention's ops (compiler/ops/attention.py) to its kernels: each operand as a view
with the leading dimensions flattened into one (q [E, T, D], lse [E, T], ...), the mask as [Em, Tm, Sm] with
Tm in {1, T} and Sm in {1, S}, the mask's leading dimensions (right-aligned against q's, 1 where the mask
broadcasts) for ``attention_entries``, the dropout seed as a view [1] (an int64 array of -1, no dropout,
where the op has none: evaluation) and the attributes as numbers."""

from __future__ import annotations

from dataclasses import dataclass

from ..graph import Graph, Node
from ..ops.attention import effective_scale, gradient_types, with_lse_types
from ..ops.registry import get_op
from ..types import TensorType

MASK, SEED = "mask", "seed"
# per op: the operands, each with how many trailing axes it keeps after the flattened leading ones
KEPT_AXES = {
    "attention": (2, 2, 2, MASK, SEED),
    "attention_with_lse": (2, 2, 2, MASK, SEED),
    "attention_lse": (2, 2, MASK),
    "attention_grads": (2, 2, 2, 2, 1, 1, MASK, SEED),
    "attention_ds": (2, 2, 2, 2, 1, 1, MASK, SEED),
}
# the library function of each op; attention's forward kernel makes the log-sum-exp too (attention_with_lse
# keeps it, attention drops it)
KERNELS = {"attention": "attention_forward3", "attention_with_lse": "attention_forward3",
           "attention_lse": "attention_lse3", "attention_grads": "attention_grads3", "attention_ds": "attention_ds3"}


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
    outputs: list[tuple[tuple, tuple]]  # the kernel's results: (the full shape, the view's shape) each
    results: int  # how many of them the node returns (a multi-result node: all; attention: its output only)

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
    types = kernel_outputs(graph, node)
    outputs = [(t.shape, ("E", *t.shape[len(lead):])) for t in types]
    return AttentionCall(KERNELS[node.op], operands, lead, mask_lead, bool(node.attrs["causal"]),
                         effective_scale(node.attrs, q.shape[-1]), dropout, outputs,
                         len(outputs) if get_op(node.op).multi_result else 1)


def kernel_outputs(graph: Graph, node: Node) -> list[TensorType]:
    """The types of the results the op's kernel makes."""
    types = [graph.node(i).type for i in node.inputs]
    if node.op in ("attention", "attention_with_lse"):
        return with_lse_types(types)
    if node.op == "attention_grads":
        return gradient_types(types)
    return [node.type]
