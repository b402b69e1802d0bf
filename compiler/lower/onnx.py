"""The ONNX target: a model's inference graph as an ONNX model (opset 18), for onnxruntime, Netron and every runtime
that reads ONNX.

It renders the graph the evaluation pipeline leaves before autodiff (dropout gone, batchnorm on its running
statistics), restricted to what the exported outputs need. Each op is rendered by one entry of :data:`ONNX_OPS` (a
table, as the other targets lower op kernels); a composite op without an entry (a loss, a log_softmax) is first
replaced by its primitives with the op's own decomposition, so the table holds the primitives and the composites
that ONNX has natively (softmax, conv2d, the pools). The batch dimension stays symbolic (``N``); every named value
keeps its ``.model`` name (outputs, inputs, parameters as initializers, and the node that computes a named value),
the others are ``v<id>``. Parameters alone are initializers; constants (numbers, shapes, the standardization's
statistics) are Constant nodes, so an importer can tell them apart. The training standardization, when given,
becomes each input's first nodes: ``(x - mean) / std``. An op with no ONNX form stops the export with a message
naming the node, its op and its line.

``onnx`` is an optional dependency (the ``onnx`` extra); this module imports it only when called.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import networkx as nx
import numpy as np

from ..graph import Graph, Node
from ..ops.attention import effective_scale
from .common import LoweringError

OPSET = 18
INSTALL_HINT = 'install the onnx extra: pip install -e ".[onnx]"'
ELEMENTWISE = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow", "maximum": "Max",
               "minimum": "Min", "neg": "Neg", "exp": "Exp", "log": "Log", "tanh": "Tanh", "sigmoid": "Sigmoid",
               "relu": "Relu", "sqrt": "Sqrt", "abs": "Abs", "sin": "Sin", "cos": "Cos", "matmul": "MatMul",
               "erf": "Erf", "floor": "Floor", "ceil": "Ceil", "sign": "Sign"}
REDUCTIONS = {"sum": "ReduceSum", "mean": "ReduceMean", "max": "ReduceMax"}


def import_onnx() -> Any:
    try:
        import onnx
    except ImportError as error:
        raise LoweringError(f"ONNX export needs the onnx package ({error}); {INSTALL_HINT}") from None
    return onnx


class OnnxWriter:
    """The nodes, initializers and value names of the model being written."""

    def __init__(self, graph: Graph, prefix: str = ""):
        self.onnx = import_onnx()
        self.g = graph
        self.prefix = prefix  # a scan body's values: named apart from the enclosing graph's
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.named: set[int] = set()  # computed values that keep their .model name
        self.renamed: dict[int, str] = {}  # standardized inputs: the name their readers read
        self.scan_results: dict[int, list[str]] = {}  # a scan node -> the ONNX names of its results, in order
        self._counter = 0

    def value(self, node_id: int) -> str:
        if node_id in self.renamed:
            return self.renamed[node_id]
        node = self.g.node(node_id)
        if node.op in ("input", "param") or node_id in self.named:
            return self.prefix + node.name
        return f"{self.prefix}v{node_id}"

    def fresh(self, hint: str) -> str:
        self._counter += 1
        return f"{self.prefix}{hint}_{self._counter}"

    def render(self, node_ids) -> None:
        """Each computed node of ``node_ids`` (in order) through its :data:`ONNX_OPS` entry."""
        for node_id in node_ids:
            node = self.g.node(node_id)
            if node.op in SOURCES:
                continue
            render = ONNX_OPS.get(node.op)
            if render is None:
                where = f" at line {node.line}" if node.line else ""
                label = f"'{node.name}'" if node.name else f"%{node.id}"
                raise LoweringError(f"export: no ONNX form for op '{node.op}' (node {label}{where})")
            render(self, node)

    def constant(self, array: np.ndarray, hint: str = "const", name: str | None = None) -> str:
        """A Constant node (parameters alone are initializers: what an importer may train)."""
        name = name or self.fresh(hint)
        tensor = self.onnx.numpy_helper.from_array(np.array(array, order="C"), name)
        return self.add("Constant", [], name, name=f"{name}_constant", value=tensor)

    def ints(self, values, hint: str = "shape") -> str:
        return self.constant(np.asarray(values, dtype=np.int64), hint)

    def add(self, op_type: str, inputs: list[str], output: str | list[str], name: str | None = None,
            **attrs: Any) -> str | list[str]:
        outputs = output if isinstance(output, list) else [output]
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, outputs, name=name or self.fresh(op_type),
                                                     **attrs))
        return output

    def emit(self, node: Node, op_type: str, inputs: list[str], **attrs: Any) -> None:
        self.add(op_type, inputs, self.value(node.id), name=self._node_name(node), **attrs)

    def _node_name(self, node: Node) -> str:
        return self.prefix + (node.name if node.id in self.named else f"{node.op}_{node.id}")

    def operand(self, node: Node, k: int) -> str:
        return self.value(node.inputs[k])


# ---------------------------------------------------------------- one entry per op


def _elementwise(w: OnnxWriter, node: Node) -> None:
    w.emit(node, ELEMENTWISE[node.op], [w.operand(node, k) for k in range(len(node.inputs))])


def _const(w: OnnxWriter, node: Node) -> None:
    value = np.broadcast_to(np.asarray(node.attrs["value"]), _static(node.type.shape, node)).astype(
        node.type.numpy_dtype)
    w.constant(value, name=w.value(node.id))


def _static(shape: tuple, node: Node) -> tuple[int, ...]:
    if any(isinstance(d, str) for d in shape):
        raise LoweringError(f"export: {node.op} %{node.id} has a batch-sized constant")
    return tuple(shape)


def _cast(w: OnnxWriter, node: Node) -> None:
    w.emit(node, "Cast", [w.operand(node, 0)], to=_onnx_type(w, node.type.numpy_dtype))


def _transpose(w: OnnxWriter, node: Node) -> None:
    w.emit(node, "Transpose", [w.operand(node, 0)], perm=list(node.attrs["axes"]))


def _target_shape(node: Node) -> list[int]:
    """A Reshape's shape: the batch (symbolic) as -1, the rest as numbers."""
    symbolic = [d for d in node.type.shape if isinstance(d, str)]
    if len(symbolic) > 1:
        raise LoweringError(f"export: reshape %{node.id} to {node.type} has more than one symbolic dimension")
    return [-1 if isinstance(d, str) else int(d) for d in node.type.shape]


def _reshape(w: OnnxWriter, node: Node) -> None:
    w.emit(node, "Reshape", [w.operand(node, 0), w.ints(_target_shape(node))])


def _expand_dims(w: OnnxWriter, node: Node) -> None:
    w.emit(node, "Unsqueeze", [w.operand(node, 0), w.ints(list(node.attrs["axis"]), "axes")])


def _squeeze(w: OnnxWriter, node: Node) -> None:
    w.emit(node, "Squeeze", [w.operand(node, 0), w.ints(list(node.attrs["axis"]), "axes")])


def _reduction(w: OnnxWriter, node: Node) -> None:
    axes = list(node.attrs["axis"]) or list(range(w.g.node(node.inputs[0]).type.rank))
    w.emit(node, REDUCTIONS[node.op], [w.operand(node, 0), w.ints(axes, "axes")],
           keepdims=int(bool(node.attrs["keepdims"])))


def _softmax(w: OnnxWriter, node: Node) -> None:
    w.emit(node, "Softmax", [w.operand(node, 0)], axis=int(node.attrs["axis"]))


def _log_softmax(w: OnnxWriter, node: Node) -> None:
    w.emit(node, "LogSoftmax", [w.operand(node, 0)], axis=int(node.attrs["axis"]))


def _pads(padding) -> list[int]:
    top, bottom, left, right = padding
    return [top, left, bottom, right]


def _conv(w: OnnxWriter, node: Node) -> None:
    a = node.attrs
    w.emit(node, "Conv", [w.operand(node, 0), w.operand(node, 1)], strides=list(a["stride"]),
           dilations=list(a["dilation"]), pads=_pads(a["padding"]), group=int(a["groups"]))


def _conv_transpose(w: OnnxWriter, node: Node) -> None:
    a = node.attrs
    w.emit(node, "ConvTranspose", [w.operand(node, 0), w.operand(node, 1)], strides=list(a["stride"]),
           dilations=list(a["dilation"]), pads=_pads(a["padding"]), group=int(a["groups"]),
           output_padding=list(a["output_padding"]))


def _max_pool(w: OnnxWriter, node: Node) -> None:
    a = node.attrs
    w.emit(node, "MaxPool", [w.operand(node, 0)], kernel_shape=list(a["kernel"]), strides=list(a["stride"]),
           pads=_pads(a["padding"]), dilations=list(a.get("dilation", (1, 1))), ceil_mode=int(a["ceil_mode"]))


def _avg_pool(w: OnnxWriter, node: Node) -> None:
    a = node.attrs
    w.emit(node, "AveragePool", [w.operand(node, 0)], kernel_shape=list(a["kernel"]), strides=list(a["stride"]),
           pads=_pads(a["padding"]), ceil_mode=int(a["ceil_mode"]),
           count_include_pad=int(a["count_include_pad"]))


def _flatten(w: OnnxWriter, node: Node) -> None:
    w.emit(node, "Reshape", [w.operand(node, 0), w.ints(_target_shape(node))])


def _gather(w: OnnxWriter, node: Node) -> None:
    w.emit(node, "Gather", [w.operand(node, 0), w.operand(node, 1)], axis=int(node.attrs["axis"]))


def _concat(w: OnnxWriter, node: Node) -> None:
    w.emit(node, "Concat", [w.operand(node, k) for k in range(len(node.inputs))], axis=int(node.attrs["axis"]))


def _slice(w: OnnxWriter, node: Node) -> None:
    a = node.attrs
    starts, steps, counts = list(a["starts"]), list(a["steps"]), list(a["counts"])
    ends = [_slice_end(s, c, t) for s, c, t in zip(starts, counts, steps, strict=True)]
    axes = list(range(len(starts)))
    if not a["drop"]:
        w.emit(node, "Slice", [w.operand(node, 0), w.ints(starts), w.ints(ends), w.ints(axes), w.ints(steps)])
        return
    sliced = w.add("Slice", [w.operand(node, 0), w.ints(starts), w.ints(ends), w.ints(axes), w.ints(steps)],
                   w.fresh("slice"))
    w.emit(node, "Squeeze", [sliced, w.ints(list(a["drop"]), "axes")])


def _slice_end(start: int, count: int | str, step: int) -> int:
    """ONNX's exclusive end of ``count`` indices from ``start`` by ``step``; to the end of the axis for a whole
    batch-sized axis (a symbolic count), and past the front for a backward run that reaches index 0."""
    if isinstance(count, str):
        return 2 ** 62 if step > 0 else -(2 ** 62)
    end = start + count * step
    return end if end >= 0 else -(2 ** 62)


def _broadcast_like(w: OnnxWriter, node: Node) -> None:
    shape = w.add("Shape", [w.operand(node, 1)], w.fresh("shape"))
    w.emit(node, "Expand", [w.operand(node, 0), shape])


def _attention(w: OnnxWriter, node: Node) -> None:
    """softmax(scale q k^T + mask) v, written out: ONNX's own Attention op is newer than opset 18. A causal
    mask is a constant of -inf above the diagonal."""
    q, k = (w.g.node(i).type for i in node.inputs[:2])
    rank = q.rank
    perm = [*range(rank - 2), rank - 1, rank - 2]
    keys = w.add("Transpose", [w.operand(node, 1)], w.fresh("keys_t"), perm=perm)
    scores = w.add("MatMul", [w.operand(node, 0), keys], w.fresh("scores"))
    scale = np.asarray(effective_scale(node.attrs, int(q.shape[-1])), dtype=q.numpy_dtype)
    scores = w.add("Mul", [scores, w.constant(scale, "scale")], w.fresh("scaled"))
    if len(node.inputs) > 3:
        scores = w.add("Add", [scores, w.operand(node, 3)], w.fresh("masked"))
    if node.attrs["causal"]:
        t, s = int(q.shape[-2]), int(k.shape[-2])
        above = np.triu(np.full((t, s), -np.inf, dtype=q.numpy_dtype), k=1)
        scores = w.add("Add", [scores, w.constant(above, "causal")], w.fresh("causal_scores"))
    weights = w.add("Softmax", [scores], w.fresh("weights"), axis=-1)
    w.emit(node, "MatMul", [weights, w.operand(node, 2)])


def _needed(graph: Graph, roots) -> set[int]:
    needed: set[int] = set()
    for node_id in roots:
        needed |= nx.ancestors(graph.dag, node_id) | {node_id}
    return needed


def _scan(w: OnnxWriter, node: Node) -> None:
    """ONNX's Scan: the carries its state variables, the sequences its scan inputs (read backwards with
    ``reverse``), the constants read by name from the enclosing graph. ONNX returns a state's final value only,
    so a carry whose history is a result is also a scan output of the body (an Identity of the new carry)."""
    from ..ops.scan import body_inputs, body_outputs

    a = node.attrs
    body, k, m = a["body"], a["carries"], a["sequences"]
    if m == 0:
        raise LoweringError(f"export: scan %{node.id} has no sequence (ONNX's Scan steps over one)")
    ins, outs = body_inputs(body), body_outputs(body)
    sub = OnnxWriter(body, prefix=f"scan{node.id}_")
    needed = _needed(body, outs)
    sub.named = {i for i in needed if body.node(i).name and body.node(i).op not in SOURCES}
    for j, inp in enumerate(ins[k + m:]):  # the constants: the enclosing graph's values, by name
        sub.renamed[inp] = w.operand(node, k + m + j)
    body_in = [_value_info(sub, sub.value(i), body.node(i)) for i in ins[:k + m]]
    sub.render(i for i in body.order() if i in needed)
    states = [sub.value(o) for o in outs[:k]]
    histories = [] if a["final_carries"] else [sub.add("Identity", [v], sub.fresh("history"), name=sub.fresh(
        "history")) for v in states]
    per_step = [sub.value(o) for o in outs[k:]]
    given = {sub.value(i) for i in ins}
    if len(set(states + per_step)) < len(states + per_step) or given & set(states + per_step):
        # a graph's outputs are distinct values of its own (a body may return a value twice, or an input)
        per_step = [sub.add("Identity", [v], sub.fresh("step_out"), name=sub.fresh("step_out")) for v in per_step]
        states = [sub.add("Identity", [v], sub.fresh("state_out"), name=sub.fresh("state_out")) for v in states]
    body_out = [_value_info(sub, name, body.node(o)) for name, o in
                zip([*states, *histories, *per_step], [*outs[:k], *outs[:len(histories)], *outs[k:]], strict=True)]
    subgraph = w.onnx.helper.make_graph(sub.nodes, f"scan{node.id}_body", body_in, body_out, sub.initializers)
    results = [f"{w.value(node.id)}_{j}" for j in range(len(body_out))]
    scanned = len(histories) + len(per_step)
    w.add("Scan", [w.operand(node, j) for j in range(k + m)], results, name=w._node_name(node), body=subgraph,
          num_scan_inputs=m, scan_input_directions=[int(a["reverse"])] * m,
          scan_output_directions=[int(a["reverse"])] * scanned)
    carries = results[:k] if a["final_carries"] else results[k:2 * k]  # final values, or their histories
    w.scan_results[node.id] = [*carries, *results[k + len(histories):]]


def _result(w: OnnxWriter, node: Node) -> None:
    of = node.inputs[0]
    if of not in w.scan_results:
        raise LoweringError(f"export: no ONNX form for the results of op '{w.g.node(of).op}'")
    w.emit(node, "Identity", [w.scan_results[of][node.attrs["index"]]])


ONNX_OPS: dict[str, Callable[[OnnxWriter, Node], None]] = {
    **dict.fromkeys(ELEMENTWISE, _elementwise),
    **dict.fromkeys(REDUCTIONS, _reduction),
    "const": _const,
    "cast": _cast,
    "transpose": _transpose,
    "reshape": _reshape,
    "expand_dims": _expand_dims,
    "squeeze": _squeeze,
    "softmax": _softmax,
    "log_softmax": _log_softmax,
    "conv2d": _conv,
    "conv_transpose2d": _conv_transpose,
    "max_pool2d": _max_pool,
    "avg_pool2d": _avg_pool,
    "flatten": _flatten,
    "gather": _gather,
    "concat": _concat,
    "slice": _slice,
    "broadcast_like": _broadcast_like,
    "attention": _attention,
    "scan": _scan,
    "result": _result,
}
SOURCES = ("input", "param")


def _onnx_type(w: OnnxWriter, dtype: np.dtype) -> int:
    return w.onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _value_info(w: OnnxWriter, name: str, node: Node) -> Any:
    dims = [d if isinstance(d, str) else int(d) for d in node.type.shape]
    return w.onnx.helper.make_tensor_value_info(name, _onnx_type(w, node.type.numpy_dtype), dims)


def to_onnx(graph: Graph, outputs: Mapping[str, int], params: Mapping[str, np.ndarray],
            scaling: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
            unscaling: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None, producer: str = "gradc") -> bytes:
    """The serialized ONNX model of ``graph``'s values ``outputs`` (name -> node id), ``params`` as
    initializers, each float input standardized by ``scaling`` (name -> (mean, std)) first, and each output
    in ``unscaling`` (an autoencoder's reconstruction) brought back to the data's units, x * std + mean."""
    needed = _needed(graph, outputs.values())
    w = OnnxWriter(graph)
    w.named = {i for i in needed if graph.node(i).name and graph.node(i).op not in SOURCES}
    w.named -= {outputs[name] for name in unscaling or ()}  # its name goes to the value in the data's units
    inputs = []
    for node_id in graph.order():
        if node_id not in needed:
            continue
        node = graph.node(node_id)
        if node.op == "input":
            inputs.append(_value_info(w, node.name, node))
            if scaling and node.name in scaling:  # its readers read the standardized value
                w.renamed[node_id] = _standardize(w, node, *scaling[node.name])
            continue
        if node.op == "param":
            w.initializers.append(w.onnx.numpy_helper.from_array(
                np.array(params[node.name], dtype=node.type.numpy_dtype, order="C"), node.name))
            continue
        w.render([node_id])
    results = []
    for name, node_id in outputs.items():
        value = w.value(node_id)
        if unscaling and name in unscaling:
            dtype = graph.node(node_id).type.numpy_dtype
            mean, std = (np.asarray(a, dtype) for a in unscaling[name])
            scaled = w.add("Mul", [value, w.constant(std, f"{name}.std")], w.fresh(f"{name}_scaled"),
                           name=f"unstandardize_{name}_mul")
            w.add("Add", [scaled, w.constant(mean, f"{name}.mean")], name, name=f"unstandardize_{name}_add")
        elif value != name:
            w.add("Identity", [value], name, name=f"output_{name}")
        results.append(_value_info(w, name, graph.node(node_id)))
    model_graph = w.onnx.helper.make_graph(w.nodes, graph.model_name or "model", inputs, results, w.initializers)
    model = w.onnx.helper.make_model(model_graph, producer_name=producer,
                                     opset_imports=[w.onnx.helper.make_opsetid("", OPSET)])
    model.ir_version = min(model.ir_version, 10)
    return model.SerializeToString()


def _standardize(w: OnnxWriter, node: Node, mean: np.ndarray, std: np.ndarray) -> str:
    """(x - mean) / std, as the training data was standardized; the name of the result."""
    dtype = node.type.numpy_dtype
    centered = w.add("Sub", [node.name, w.constant(np.asarray(mean, dtype), f"{node.name}.mean")],
                     w.fresh(f"{node.name}_centered"), name=f"standardize_{node.name}_sub")
    return w.add("Div", [centered, w.constant(np.asarray(std, dtype), f"{node.name}.std")],
                 f"{node.name}.standardized", name=f"standardize_{node.name}_div")
