"""gradc import: an ONNX model as a readable ``.model`` file and an ``.npz`` of its parameters.

Each ONNX node becomes one statement, ``name = expression``, in the language's own ops (one entry of
:data:`ONNX_TO_LANGUAGE` per ONNX op: a table, as the exporter's); the graph's inputs become ``input``
statements (the first symbolic dimension is the batch, ``N``), its initializers ``param`` statements whose values
go to the ``.npz``, its Constant nodes literals (a number, or a bracketed list), its outputs ``output``
statements. Names are the ONNX names where they are identifiers, else made into identifiers. An op the language
has no form for stops the import with the node's name and op. The model then runs with ``gradc run --params``,
trains with ``gradc train --params`` and draws with ``gradc graph``.

Infinite constants (an exported causal mask's -inf) are written as float32's largest magnitude, which gives the
same softmax; the language has no literal for infinity.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gradc.compiler.ops import REGISTRY
from gradc.dsl.diagnostics import DataError, GradcError

INSTALL_HINT = 'install the onnx extra: pip install -e ".[onnx]"'
DTYPES = {1: "f32", 11: "f64", 7: "i64", 6: "i32"}  # ONNX TensorProto element types the language has
KEYWORDS = {"model", "input", "param", "output", "loss", "train", "block", "import", "return", "true", "false",
            "none", "N", "std"}
FLOAT32_MAX = float(np.finfo(np.float32).max)


class ImportFailure(GradcError):
    pass


@dataclass
class Imported:
    text: str
    params: dict[str, np.ndarray]
    outputs: list[str] = field(default_factory=list)


@dataclass
class _Node:
    """One ONNX node as the translations see it: its operands as language expressions, its constant operands
    as arrays (None where an operand is computed), its attributes."""

    op: str
    name: str
    operands: list[str]
    constants: list[np.ndarray | None]
    attrs: dict[str, Any]

    def ints(self, k: int, what: str) -> list[int]:
        value = self.constants[k] if k < len(self.constants) else None
        if value is None:
            raise ImportFailure(f"import: node '{self.name}' ({self.op}) takes its {what} from a computed value; "
                                "only a constant can be written in the language")
        return [int(v) for v in np.ravel(value)]


def _list(values) -> str:
    return "[" + ", ".join(str(int(v)) for v in values) + "]"


def _pads(pads) -> str:
    """ONNX's [top, left, bottom, right] as the language's [top, bottom, left, right]."""
    top, left, bottom, right = pads
    return _list([top, bottom, left, right])


def _binary(symbol: str) -> Callable[[_Node], str]:
    return lambda n: f"{n.operands[0]} {symbol} {n.operands[1]}"


def _call(function: str) -> Callable[[_Node], str]:
    return lambda n: f"{function}({', '.join(n.operands)})"


def _reduce(function: str) -> Callable[[_Node], str]:
    def translate(n: _Node) -> str:
        axes = n.ints(1, "axes") if len(n.operands) > 1 else list(n.attrs.get("axes", []))
        keep = "true" if n.attrs.get("keepdims", 1) else "false"
        axis = f", axis={_list(axes)}" if axes else ""
        return f"{function}({n.operands[0]}{axis}, keepdims={keep})"
    return translate


def _gemm(n: _Node) -> str:
    a, b = n.operands[:2]
    a = f"transpose({a})" if n.attrs.get("transA") else a
    b = f"transpose({b})" if n.attrs.get("transB") else b
    alpha, beta = float(n.attrs.get("alpha", 1.0)), float(n.attrs.get("beta", 1.0))
    product = f"{a} @ {b}" + (f" * {alpha!r}" if alpha != 1.0 else "")
    if len(n.operands) < 3:
        return product
    return f"{product} + {n.operands[2]}" + (f" * {beta!r}" if beta != 1.0 else "")


def _geometry(n: _Node, kernel_rank: int = 2) -> list[str]:
    if n.attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise ImportFailure(f"import: node '{n.name}' ({n.op}) uses auto_pad; give explicit pads")
    parts = [f"stride={_list(n.attrs.get('strides', [1] * kernel_rank))}",
             f"padding={_pads(n.attrs.get('pads', [0] * 2 * kernel_rank))}"]
    if "dilations" in n.attrs:
        parts.append(f"dilation={_list(n.attrs['dilations'])}")
    return parts


def _conv(function: str) -> Callable[[_Node], str]:
    def translate(n: _Node) -> str:
        parts = [*n.operands[:2], *_geometry(n), f"groups={int(n.attrs.get('group', 1))}"]
        if function == "conv_transpose2d" and "output_padding" in n.attrs:
            parts.append(f"output_padding={_list(n.attrs['output_padding'])}")
        call = f"{function}({', '.join(parts)})"
        return f"{call} + unsqueeze({n.operands[2]}, axis=[1, 2])" if len(n.operands) > 2 else call
    return translate


def _pool(function: str) -> Callable[[_Node], str]:
    def translate(n: _Node) -> str:
        parts = [n.operands[0], f"kernel={_list(n.attrs['kernel_shape'])}", *_geometry(n),
                 f"ceil_mode={'true' if n.attrs.get('ceil_mode') else 'false'}"]
        if function == "avg_pool2d":
            parts = [p for p in parts if not p.startswith("dilation")]
            parts.append(f"count_include_pad={'true' if n.attrs.get('count_include_pad') else 'false'}")
        return f"{function}({', '.join(parts)})"
    return translate


def _reshape(n: _Node) -> str:
    shape = n.ints(1, "shape")
    if 0 in shape:
        raise ImportFailure(f"import: node '{n.name}' (Reshape) copies a dimension (0 in its shape)")
    return f"reshape({n.operands[0]}, shape={_list(shape)})"


def _flatten(n: _Node) -> str:
    if int(n.attrs.get("axis", 1)) != 1:
        raise ImportFailure(f"import: node '{n.name}' (Flatten) flattens from axis {n.attrs['axis']}, not 1")
    return f"flatten({n.operands[0]})"


def _axes_call(function: str) -> Callable[[_Node], str]:
    def translate(n: _Node) -> str:
        axes = n.ints(1, "axes") if len(n.operands) > 1 else list(n.attrs.get("axes", []))
        return f"{function}({n.operands[0]}, axis={_list(axes)})" if axes else f"{function}({n.operands[0]})"
    return translate


def _axis_call(function: str, default: int) -> Callable[[_Node], str]:
    return lambda n: f"{function}({', '.join(n.operands)}, axis={int(n.attrs.get('axis', default))})"


def _slice(n: _Node) -> str:
    """``x[a:b:s, ...]`` from constant starts, ends, axes and steps (an end beyond the axis left out)."""
    starts, ends = n.ints(1, "starts"), n.ints(2, "ends")
    axes = n.ints(3, "axes") if len(n.operands) > 3 and n.operands[3] != "" else list(range(len(starts)))
    steps = n.ints(4, "steps") if len(n.operands) > 4 and n.operands[4] != "" else [1] * len(starts)
    if any(a < 0 for a in axes):
        raise ImportFailure(f"import: node '{n.name}' (Slice) counts axes from the end")
    parts = [":"] * (max(axes) + 1)
    for axis, start, end, step in zip(axes, starts, ends, steps, strict=True):
        text = ("" if start == 0 and step > 0 else str(start)) + ":" + ("" if abs(end) >= 2 ** 31 else str(end))
        parts[axis] = text + (f":{step}" if step != 1 else "")
    return f"{n.operands[0]}[{', '.join(parts)}]"


def _expand(n: _Node) -> str:
    shape = n.constants[1]
    if shape is None:
        raise ImportFailure(f"import: node '{n.name}' (Expand) takes its shape from a computed value")
    dims = ", ".join(str(d) for d in np.ravel(shape).tolist())
    return f"expand({n.operands[0]}, shape=[{dims}])"


def _transpose(n: _Node) -> str:
    perm = n.attrs.get("perm")
    return f"transpose({n.operands[0]}, axes={_list(perm)})" if perm is not None else f"transpose({n.operands[0]})"


ONNX_TO_LANGUAGE: dict[str, Callable[[_Node], str]] = {
    "Add": _binary("+"), "Sub": _binary("-"), "Mul": _binary("*"), "Div": _binary("/"), "MatMul": _binary("@"),
    "Pow": _binary("^"),
    **{op: _call(f) for op, f in {"Relu": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid", "Exp": "exp",
                                  "Log": "log", "Sqrt": "sqrt", "Abs": "abs", "Neg": "neg", "Max": "maximum",
                                  "Min": "minimum", "Identity": ""}.items()},
    "Gemm": _gemm,
    "Softmax": _axis_call("softmax", -1), "LogSoftmax": _axis_call("log_softmax", -1),
    "Concat": _axis_call("concat", 0), "Gather": _axis_call("gather", 0),
    "Transpose": _transpose, "Reshape": _reshape, "Flatten": _flatten, "Slice": _slice,
    "Expand": _expand,
    "Unsqueeze": _axes_call("unsqueeze"), "Squeeze": _axes_call("squeeze"),
    "ReduceSum": _reduce("sum"), "ReduceMean": _reduce("mean"), "ReduceMax": _reduce("max"),
    "Conv": _conv("conv2d"), "ConvTranspose": _conv("conv_transpose2d"),
    "MaxPool": _pool("max_pool2d"), "AveragePool": _pool("avg_pool2d"),
}
# constant operands written as attributes (or lists) rather than as tensors
ATTRIBUTE_OPERANDS = {"Reshape": (1,), "Unsqueeze": (1,), "Squeeze": (1,), "ReduceSum": (1,), "ReduceMean": (1,),
                      "ReduceMax": (1,), "Slice": (1, 2, 3, 4), "Expand": (1,)}


class _Names:
    """ONNX names made into unique identifiers of the language."""

    def __init__(self):
        self.by_onnx: dict[str, str] = {}
        self.taken: set[str] = set(KEYWORDS) | set(REGISTRY)

    def __call__(self, onnx_name: str) -> str:
        if onnx_name not in self.by_onnx:
            base = re.sub(r"\W", "_", onnx_name) or "v"
            base = f"v_{base}" if base[0].isdigit() or keyword.iskeyword(base) else base
            name, k = base, 1
            while name in self.taken:
                k += 1
                name = f"{base}_{k}"
            self.taken.add(name)
            self.by_onnx[onnx_name] = name
        return self.by_onnx[onnx_name]


def _literal(array: np.ndarray) -> str:
    """A number, or a bracketed list of numbers."""
    def number(v) -> str:
        if isinstance(v, (bool, np.bool_)):
            return "1" if v else "0"
        if isinstance(v, (int, np.integer)):
            return str(int(v))
        v = float(v)
        if np.isnan(v):
            raise ImportFailure("import: a constant holds NaN, which the language cannot write")
        return repr(float(np.clip(v, -FLOAT32_MAX, FLOAT32_MAX)))

    def nested(a) -> str:
        return "[" + ", ".join(nested(x) for x in a) + "]" if isinstance(a, list) else number(a)

    array = np.asarray(array)
    return number(array.item()) if array.ndim == 0 else nested(array.tolist())


def _inferred_dims(inferred: dict, name: str, label: str) -> list:
    if name not in inferred:
        raise ImportFailure(f"import: node '{label}' (Shape) reads '{name}', whose shape ONNX's inference leaves open")
    dims = []
    for k, dim in enumerate(inferred[name].type.tensor_type.shape.dim):
        dims.append(dim.dim_value if dim.HasField("dim_value") else ("N" if k == 0 else dim.dim_param or "T"))
    return dims


def _shape(value_info) -> str:
    """The language's shape of an ONNX input: its first symbolic dimension the batch (N), the others lengths."""
    dims = []
    for k, dim in enumerate(value_info.type.tensor_type.shape.dim):
        if dim.HasField("dim_value"):
            dims.append(str(dim.dim_value))
        elif k == 0:
            dims.append("N")
        else:
            symbol = re.sub(r"\W", "_", dim.dim_param) or "T"
            dims.append(symbol if symbol != "N" else "T")
    return f"[{', '.join(dims)}]" if dims else ""


def import_onnx(path: str | Path, model_name: str | None = None) -> Imported:
    """The ``.model`` text and the parameters of the ONNX model at ``path``."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as error:
        raise GradcError(f"gradc import needs the onnx package ({error}); {INSTALL_HINT}") from None
    try:
        model = onnx.load(str(path))
    except FileNotFoundError:
        raise DataError(f"ONNX file not found: {path}") from None
    except Exception as error:  # onnx raises DecodeError and others for a file that is not a model
        raise DataError(f"{path} is not an ONNX model ({type(error).__name__}: {error})") from None
    graph = model.graph
    inferred = {v.name: v for v in (*onnx.shape_inference.infer_shapes(model).graph.value_info, *graph.input)}
    names = _Names()
    initializers = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    constants: dict[str, np.ndarray] = dict(initializers)
    lines = [f"# imported from {Path(path).name} by gradc import (ONNX opset "
             f"{max((o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')), default=0)}"
             + (f", written by {model.producer_name}" if model.producer_name else "") + ")",
             f"model {names(model_name or graph.name or Path(path).stem)}"]
    for value in graph.input:
        if value.name in initializers:
            continue
        dtype = DTYPES.get(value.type.tensor_type.elem_type)
        if dtype is None:
            raise ImportFailure(f"import: input '{value.name}' has an element type the language lacks "
                                f"({onnx.TensorProto.DataType.Name(value.type.tensor_type.elem_type)})")
        lines.append(f"input {names(value.name)}: {dtype}{_shape(value)}")
    params: dict[str, np.ndarray] = {}
    used = {name for node in graph.node for name in node.input}
    for name, array in initializers.items():
        if name not in used:
            continue
        dtype = DTYPES.get(onnx.helper.np_dtype_to_tensor_dtype(array.dtype))
        if dtype is None:
            raise ImportFailure(f"import: initializer '{name}' has dtype {array.dtype}, which the language lacks")
        param = names(name)
        params[param] = array
        lines.append(f"param {param}: {dtype}{_list(array.shape) if array.ndim else ''} = zeros")
    expressions: dict[str, str] = {}  # an ONNX value -> how the language writes it where it is used
    for node in graph.node:
        label = node.name or (node.output[0] if node.output else node.op_type)
        if node.domain not in ("", "ai.onnx"):
            raise ImportFailure(f"import: node '{label}' is op {node.domain}.{node.op_type}, outside ONNX's "
                                "standard domain")
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Shape":  # a shape the language writes as a list (N for the batch), from inference
            constants[node.output[0]] = np.array(_inferred_dims(inferred, node.input[0], label), dtype=object)
            continue
        if node.op_type == "Constant":
            if "value" not in attrs:
                raise ImportFailure(f"import: node '{label}' is a Constant without a tensor value")
            constants[node.output[0]] = numpy_helper.to_array(attrs["value"])
            continue
        translate = ONNX_TO_LANGUAGE.get(node.op_type)
        if translate is None:
            raise ImportFailure(f"import: node '{label}' is op {node.op_type}, which the language has no form for "
                                f"(it imports {', '.join(sorted(ONNX_TO_LANGUAGE))})")
        attribute_operands = ATTRIBUTE_OPERANDS.get(node.op_type, ())
        operands, values = [], []
        for k, name in enumerate(node.input):
            values.append(constants.get(name))
            if k in attribute_operands:
                operands.append("")
            elif name in expressions:
                operands.append(expressions[name])
            elif name in initializers:
                operands.append(names(name))
            elif name in constants:
                operands.append(_literal(constants[name]))
            else:
                operands.append(names(name))
        if len(node.output) != 1:
            raise ImportFailure(f"import: node '{label}' ({node.op_type}) has {len(node.output)} outputs; the "
                                "importer writes ops of one")
        expression = translate(_Node(node.op_type, label, operands, values, attrs))
        if node.op_type == "Identity":
            expression = operands[0]
        lines.append(f"{names(node.output[0])} = {expression}")
    outputs = []
    for value in graph.output:
        name = names(value.name)
        outputs.append(name)
        lines.append(f"output {name}")
    lines += _training_hint(graph, names)
    return Imported("\n".join(lines) + "\n", params, outputs)


def _training_hint(graph, names: _Names) -> list[str]:
    """ONNX holds no loss: a comment saying what to add to train the model (for a classifier whose output is a
    softmax, the cross-entropy of the scores before it)."""
    producers = {out: node for node in graph.node for out in node.output}
    first = producers.get(graph.output[0].name) if graph.output else None
    if first is not None and first.op_type == "Softmax":
        scores = names(first.input[0])
        return ["", "# To train it, add labels and a loss, then run gradc train with --params:",
                "# input label: i64[N]", f"# loss L = cross_entropy({scores}, label)"]
    return ["", "# To train it, add the targets and a loss (the ONNX file holds none), then run gradc train with "
                "--params."]
