"""A scan's weights in the layout its step's products read fastest: a weight the body multiplies by on the
right, ``x @ W``, enters the scan transposed once (``Wt = transpose(W)``, outside the loop) and the body reads
``x @ transpose(Wt)``.

Inside a recurrence the product of a step has few rows (a chunk of the batch: 16 examples for an LSTM's
step), and a BLAS then spends most of the product packing the large operand. In the ``x @ transpose(Wt)`` form
with ``Wt`` stored row by row, the cpu target computes it as ``(Wt @ x^T)^T`` (``cpu_lib.dot_nt``), the
orientation OpenBLAS is fastest in. Measured with one BLAS thread (2-core AMD EPYC), [16, 512] @ [512, 128]:
49.5 us read as ``x @ W``, 35.2 us as ``x @ transpose(Wt)``; [8, 1024] @ [1024, 256]: 138 -> 85 us; from 32
rows on, the two are equally fast, so the rewrite is never slower. The transpose costs one pass over the weight
per call of the program, not one per step. The forward scan of an RNN, LSTM or GRU already reads
``h @ transpose(W_hh)`` (PyTorch's layout); its gradient, ``dgates @ W_hh``, is what this rewrites.

A weight qualifies when it is one of the scan's constants (the same at every step), a matrix, and every use of
it in the body is the right operand of a matrix product whose left operand is a matrix. The outer transpose
of a weight that is itself a transpose cancels in the simplifier that runs next.
"""

from __future__ import annotations

from ..builder import Builder, Ref
from ..graph import Graph, Node
from ..ops.scan import body_inputs
from ..types import TensorType


def transpose_scan_weights(graph: Graph) -> Graph:
    """A copy of ``graph`` whose scans take their right-hand product weights transposed."""
    g = graph.copy()
    for node in list(g.nodes()):
        if node.op == "scan":
            _rewrite(g, node)
    return g


def _rewrite(g: Graph, scan: Node) -> None:
    attrs = scan.attrs
    body = attrs["body"]
    first_constant = attrs["carries"] + attrs["sequences"]
    ins = body_inputs(body)
    chosen = [j for j in range(first_constant, len(ins)) if _right_operand_only(body, ins[j])]
    if not chosen:
        return
    new_body = body.copy()
    inner = Builder(new_body)
    outer = Builder(g)
    operands = list(scan.inputs)
    for j in chosen:
        weight = new_body.node(ins[j])
        rows, cols = weight.type.shape
        new_body.update(weight.id, type=TensorType((cols, rows), weight.type.dtype))
        consumers = new_body.consumers(weight.id)
        with inner.at(weight.line, weight.col, origin=weight.origin):
            read = inner.transpose(Ref(weight.id), axes=(1, 0))
        for consumer in consumers:
            node = new_body.node(consumer)
            new_body.update(consumer, inputs=(node.inputs[0], int(read)))
        with outer.at(scan.line, scan.col, origin=scan.origin):
            operands[j] = int(outer.transpose(Ref(operands[j]), axes=(1, 0)))
    g.update(scan.id, inputs=tuple(operands), attrs={**attrs, "body": new_body})


def _right_operand_only(body: Graph, value: int) -> bool:
    """Whether the body input ``value`` is a matrix read only as the right operand of matrix products of a
    matrix by it, and is not an output of the body."""
    if body.node(value).type.rank != 2 or value in body.outputs.values():
        return False
    consumers = [body.node(c) for c in body.consumers(value)]
    return bool(consumers) and all(
        c.op == "matmul" and c.inputs[1] == value and c.inputs[0] != value
        and body.node(c.inputs[0]).type.rank == 2 for c in consumers)
