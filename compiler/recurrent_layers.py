"""Recurrent layers: ``rnn``, ``lstm`` and ``gru`` over a sequence ``x [N, T, F]``, each one scan node.

Their formulas, gate order, weight layouts and initialization are PyTorch's (``nn.RNN``, ``nn.LSTM``,
``nn.GRU`` with ``batch_first=True``), so weights can be copied one to one: ``weight_ih [G*units, F]``,
``weight_hh [G*units, units]``, ``bias_ih`` and ``bias_hh [G*units]`` with G = 1, 4 (gates i, f, g, o) or 3
(gates r, z, n), every entry drawn from U(-1/sqrt(units), 1/sqrt(units)); a bidirectional layer adds the
same four with ``_reverse``. The state starts at zero.

Options: ``return_sequences``, ``bidirectional``, a given initial state (``initial=h0``, and ``initial_cell=c0``
for an LSTM) and ``lengths=n`` for padded batches (integers [N]; steps past an example's length keep its
state and output 0, as PyTorch's packed sequences).

The input products of every step are one matrix product before the recurrence (``[T*N, F] @ [F, G*units]``);
the scan's body is the rest of a step: the recurrent product, the biases (an RNN's and an LSTM's two biases
added once, as their sum) and the gates.

T may be a symbolic length (``input x: f32[N, T, F]``). The graph over a symbolic T is the one ``gradc check``
types and shows: its scan's length is ``T``, a last state is the scan's final carry instead of step T-1 of
the stacked states, and a padded batch's step indices come from the sequence's shape. A program is compiled
from the model bound to its data's length (``ModelSpec.bind``), which builds the fixed-T graph.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradc.dsl.diagnostics import ShapeError

from .builder import Builder, Ref
from .layer_def import LayerDef, NewParam
from .ops.indexing import take
from .ops.registry import AttrSpec
from .recurrence import make_body, scan, step
from .types import TensorType

# cell(builder, carries, input gates x_t W_ih^T + b_ih, recurrent gates h W_hh^T + b_hh, units, attrs) ->
# the new carries (the first is the layer's output state)
Cell = Callable[[Builder, list[Ref], Ref, Ref, int, dict[str, Any]], list[Ref]]


def _gate(b: Builder, gates: Ref, k: int, units: int) -> Ref:
    return take(b, gates, 1, k * units, units)


def _rnn_cell(b: Builder, carries: list[Ref], xg: Ref, hg: Ref, units: int, attrs: dict[str, Any]) -> list[Ref]:
    return [b.emit(attrs["activation"], b.add(xg, hg))]


def _lstm_cell(b: Builder, carries: list[Ref], xg: Ref, hg: Ref, units: int, attrs: dict[str, Any]) -> list[Ref]:
    _, c = carries
    gates = b.add(xg, hg)
    i, f, g, o = (_gate(b, gates, k, units) for k in range(4))
    c_new = b.add(b.mul(b.sigmoid(f), c), b.mul(b.sigmoid(i), b.tanh(g)))
    return [b.mul(b.sigmoid(o), b.tanh(c_new)), c_new]


def _gru_cell(b: Builder, carries: list[Ref], xg: Ref, hg: Ref, units: int, attrs: dict[str, Any]) -> list[Ref]:
    (h,) = carries
    r = b.sigmoid(b.add(_gate(b, xg, 0, units), _gate(b, hg, 0, units)))
    z = b.sigmoid(b.add(_gate(b, xg, 1, units), _gate(b, hg, 1, units)))
    n = b.tanh(b.add(_gate(b, xg, 2, units), b.mul(r, _gate(b, hg, 2, units))))
    return [b.add(b.mul(b.sub(1.0, z), n), b.mul(z, h))]


@dataclass(frozen=True)
class CellDef:
    gates: int
    carries: int  # the state (h), and an LSTM's cell (c)
    cell: Cell
    # The cell reads only x_gates + h_gates, so the two biases only ever add up: their sum is taken once and
    # added in the step (with the recurrent product), not to every step's input product. A GRU's n gate
    # multiplies h_gates (with bias_hh) by r: not for it.
    biases_add: bool


CELLS: dict[str, CellDef] = {
    "rnn": CellDef(1, 1, _rnn_cell, biases_add=True),
    "lstm": CellDef(4, 2, _lstm_cell, biases_add=True),
    "gru": CellDef(3, 1, _gru_cell, biases_add=False),
}


def _sequence_type(b: Builder, x: Ref, layer: str) -> TensorType:
    t: TensorType = b.type(x)
    if t.rank != 3 or not isinstance(t.shape[2], int) or t.shape[1] == b.graph.batch_symbol or not t.is_float:
        raise ShapeError(f"{layer} needs a float sequence [N, T, F] of fixed F, got {t}")
    return t


def _initial_states(b: Builder, layer: str, attrs: dict[str, Any], like: Ref, direction: int,
                    directions: int) -> list[Ref]:
    """The carries a direction starts from: zeros, or its part of ``initial`` (and of an LSTM's
    ``initial_cell``): ``[N, units]``, or ``[N, 2*units]`` for a bidirectional layer (forward part first)."""
    units, state = attrs["units"], b.type(like)
    names = ("initial", "initial_cell")[:CELLS[layer].carries]
    starts = []
    for name in names:
        given = attrs.get(name)
        if given is None:
            starts.append(b.broadcast_like(b.const(0.0, state.dtype), like))
            continue
        want = TensorType((state.shape[0], units * directions), state.dtype)
        if b.type(given) != want:
            raise ShapeError(f"{layer}: {name} is {b.type(given)}; the layer's state is {want}")
        starts.append(take(b, given, 1, direction * units, units))
    return starts


def _step_mask(b: Builder, lengths: Ref | None, sequence: Ref, dtype: str, layer: str) -> Ref | None:
    """[T, N, 1]: 1 where step t is inside example n's sequence [T, N, F] (t < lengths[n]), else 0."""
    if lengths is None:
        return None
    t = b.type(lengths)
    if t.rank != 1 or t.is_float or t.is_bool:
        raise ShapeError(f"{layer}: lengths are whole numbers, one per example [N], got {t}")
    steps = b.type(sequence).shape[0]
    if isinstance(steps, int):
        positions = b.const(np.arange(steps).reshape(steps, 1, 1), t.dtype)
    else:  # a symbolic T: each step's index, [T, 1, 1], from the sequence's shape (position reads no values)
        along = b.transpose(take(b, sequence, 2, 0, 1), axes=(1, 2, 0))  # [N, 1, T]
        positions = b.transpose(b.cast(b.position(along), dtype=t.dtype), axes=(2, 0, 1))  # [T, N, 1]
    inside = b.lt(positions, b.expand_dims(b.expand_dims(lengths, axis=(0,)), axis=(2,)))
    return b.cast(inside, dtype=dtype)


def _direction(b: Builder, layer: str, sequence: Ref, attrs: dict[str, Any], new_param: NewParam,
               suffix: str, reverse: bool, mask: Ref | None) -> Ref:
    """One direction of a layer: its weights, the input products of every step, then the scan. Returns the
    states after every step, [T, N, units], in step order; or, over a symbolic T without
    ``return_sequences``, the state after the last step [N, units] (the scan's final carry). Under a ``mask``
    (padded batches), a step outside an example's sequence leaves its carries as they were, so the state after
    step T-1 (after step 0, going backwards) is the state after the sequence's last step."""
    definition = CELLS[layer]
    features, units = b.type(sequence).shape[-1], attrs["units"]
    bound = 1.0 / units ** 0.5
    spec = {"kind": "uniform", "low": -bound, "high": bound}
    width = definition.gates * units
    w_ih = new_param(f"weight_ih{suffix}", (width, features), spec)
    w_hh = new_param(f"weight_hh{suffix}", (width, units), spec)
    b_ih = new_param(f"bias_ih{suffix}", (width,), spec)
    b_hh = new_param(f"bias_hh{suffix}", (width,), spec)
    projected = b.matmul(sequence, b.transpose(w_ih, axes=(1, 0)))  # [T, N, width]
    inputs, bias = (projected, b.add(b_ih, b_hh)) if definition.biases_add else (b.add(projected, b_ih), b_hh)
    symbolic = isinstance(b.type(sequence).shape[0], str)
    first = b.sum(inputs, axis=(0,)) if symbolic else step(b, inputs, 0)  # [N, width], for its type and shape
    state = take(b, first, 1, 0, units)
    starts = _initial_states(b, layer, attrs, state, int(reverse), 1 + int(attrs["bidirectional"]))
    k = definition.carries

    def body(cb: Builder, refs: list[Ref]) -> list[Ref]:
        carries, x_gates = refs[:k], refs[k]
        weight, bias = refs[-2:]
        h_gates = cb.add(cb.matmul(carries[0], cb.transpose(weight, axes=(1, 0))), bias)
        new = definition.cell(cb, carries, x_gates, h_gates, units, attrs)
        if mask is None:
            return new
        m = refs[k + 1]  # [N, 1]: 1 inside the sequence
        return [cb.add(old, cb.mul(m, cb.sub(value, old))) for value, old in zip(new, carries, strict=True)]

    types = [*((f"carry{j}", b.type(state)) for j in range(k)), ("x_gates", b.type(first))]
    sequences = [inputs]
    if mask is not None:
        types.append(("inside", TensorType(b.type(mask).shape[1:], b.type(mask).dtype)))
        sequences.append(mask)
    types += [("weight_hh", b.type(w_hh)), ("bias", b.type(bias))]
    last_only = symbolic and not attrs["return_sequences"]
    states = scan(b, make_body(layer, types, body, b.graph), starts, sequences, [w_hh, bias], reverse=reverse,
                  final_carries=last_only)
    return states[0]


def _recurrent(layer: str):
    def build(b: Builder, x: Ref, attrs: dict[str, Any], new_param: NewParam) -> Ref:
        t = _sequence_type(b, x, layer)
        if attrs["units"] < 1:
            raise ShapeError(f"{layer}: units must be positive, got {attrs['units']}")
        steps = t.shape[1]
        # a direction's state after its last step: over a symbolic T, the scan's final carry is what it returned
        last_state = (lambda states: states) if isinstance(steps, str) else (lambda states: step(b, states, steps - 1))
        first_state = (lambda states: states) if isinstance(steps, str) else (lambda states: step(b, states, 0))
        sequence = b.transpose(x, axes=(1, 0, 2))  # [T, N, F]: the scan runs along axis 0
        mask = _step_mask(b, attrs.get("lengths"), sequence, t.dtype, layer)
        forward = _direction(b, layer, sequence, attrs, new_param, "", reverse=False, mask=mask)
        outputs = (lambda states: states) if mask is None else (lambda states: b.mul(states, mask))  # padding: 0
        if not attrs["bidirectional"]:
            if attrs["return_sequences"]:
                return b.transpose(outputs(forward), axes=(1, 0, 2))
            return last_state(forward)
        backward = _direction(b, layer, sequence, attrs, new_param, "_reverse", reverse=True, mask=mask)
        if attrs["return_sequences"]:  # each step: [forward state, backward state], as PyTorch's output
            return b.transpose(outputs(b.concat(forward, backward, axis=2)), axes=(1, 0, 2))
        return b.concat(last_state(forward), first_state(backward), axis=1)  # each direction's last
    return build


COMMON = (
    AttrSpec("units", "int", doc="the size of the state"),
    AttrSpec("return_sequences", "bool", False, doc="every step's state [N, T, units], not only the last one "
             "[N, units]"),
    AttrSpec("bidirectional", "bool", False, doc="also run the sequence backwards with weights of its own "
             "(suffix _reverse); the two states are joined along the features (2 * units)"),
)
FORMULAS = {
    "rnn": "h_t = activation(x_t weight_ih^T + bias_ih + h_(t-1) weight_hh^T + bias_hh)",
    "lstm": "gates i, f, g, o of x_t weight_ih^T + bias_ih + h_(t-1) weight_hh^T + bias_hh; c_t = sigmoid(f) c_(t-1) "
            "+ sigmoid(i) tanh(g), h_t = sigmoid(o) tanh(c_t)",
    "gru": "gates r, z, n: r = sigmoid(x_r + h_r), z = sigmoid(x_z + h_z), n = tanh(x_n + r h_n), h_t = (1 - z) n "
           "+ z h_(t-1), with x_* = x_t weight_ih^T + bias_ih and h_* = h_(t-1) weight_hh^T + bias_hh",
}
def _params_text(name: str) -> str:
    width = "units" if CELLS[name].gates == 1 else f"{CELLS[name].gates}*units"
    return (f"weight_ih [{width}, F], weight_hh [{width}, units], bias_ih, bias_hh [{width}]; all U(-1/sqrt(units), "
            "1/sqrt(units)) as in PyTorch")


RECURRENT_LAYERS: dict[str, LayerDef] = {
    name: LayerDef(
        name,
        COMMON + ((AttrSpec("activation", "choice", "tanh", choices=("tanh", "relu")),) if name == "rnn" else ()),
        _recurrent(name),
        f"{FORMULAS[name]}; h_0 = 0, over a sequence x [N, T, F] (PyTorch's nn.{name.upper()}); one scan node, "
        "its body compiled once whatever T is",
        _params_text(name),
        tensors=(
            AttrSpec("initial", "tensor", None, doc="the state before the first step [N, units] ([N, 2*units] "
                     "bidirectional, forward part first); zeros by default"),
            *((AttrSpec("initial_cell", "tensor", None, doc="an LSTM's cell before the first step, like "
                        "initial"),) if name == "lstm" else ()),
            AttrSpec("lengths", "tensor", None, doc="integers [N]: each example's number of steps; later steps "
                     "leave the state as it is and output 0 (padded batches)"),
        ),
    )
    for name in CELLS
}
