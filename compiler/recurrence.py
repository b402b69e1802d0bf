"""Building recurrences: a scan's body from a function of builder refs, the scan node with its results, and
the reverse scan that is a scan's gradient (backpropagation through time).

See ``ops/scan.py`` for what a scan computes. A body is an ordinary graph, optimized by the same pass
pipeline as a model (CSE, folding, stable rewrites) when it is made; the gradient's body is derived from it
by the ordinary autodiff pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .builder import Builder, Ref
from .graph import Graph
from .ops.indexing import take
from .ops.scan import body_inputs, body_outputs, scan_results
from .types import TensorType

BodyBuild = Callable[[Builder, list[Ref]], list[Ref]]


def make_body(name: str, inputs: Sequence[tuple[str, TensorType]], build: BodyBuild, like: Graph) -> Graph:
    """A body graph with ``inputs`` (name, type) in order and the outputs ``build`` returns, optimized. It
    shares the batch symbol and float dtype of ``like`` (the graph it will be part of)."""
    from .passes.pipeline import optimize

    body = Graph(name, like.batch_symbol)
    body.float_dtype = like.float_dtype
    refs = [Ref(body.add("input", (), t, name=input_name)) for input_name, t in inputs]
    outputs = build(Builder(body), refs)
    for k, out in enumerate(outputs):
        body.outputs[f"out{k}"] = out
    return optimize(body)


def scan(b: Builder, body: Graph, carries: Sequence[Ref], sequences: Sequence[Ref], constants: Sequence[Ref],
         reverse: bool = False, length: int | None = None, final_carries: bool = False) -> list[Ref]:
    """Emit a scan and one ``result`` per body output: the carries after every step (after the last one
    only, with ``final_carries``), then the per-step outputs, each stacked along a new axis 0 of T steps."""
    node = b.scan(*carries, *sequences, *constants, body=body, carries=len(carries), sequences=len(sequences),
                  reverse=reverse, length=length, final_carries=final_carries)
    return results(b, node)


def results(b: Builder, node: Ref) -> list[Ref]:
    types = scan_results(b.graph.node(node).attrs)
    return [b.result(node, index=k, type=t) for k, t in enumerate(types)]


def step(b: Builder, stacked: Ref, t: int) -> Ref:
    """Step ``t`` of a stacked result [T, ...] (the axis dropped)."""
    shape = b.type(stacked).shape
    return b.slice(stacked, starts=(t,) + (0,) * (len(shape) - 1), steps=(1,) * len(shape),
                   counts=(1, *shape[1:]), drop=(0,))


def inline(source: Graph, b: Builder, feeds: dict[int, Ref]) -> dict[int, Ref]:
    """Copy ``source``'s nodes into the builder's graph, its inputs replaced by ``feeds`` (input id -> ref);
    returns where every node of ``source`` went."""
    where = dict(feeds)
    for node in source.nodes():
        if node.op == "input":
            continue
        where[node.id] = Ref(b.graph.add(node.op, [where[i] for i in node.inputs], node.type, node.attrs,
                                         line=node.line, col=node.col, origin=node.origin))
    return where


def _shifted(b: Builder, stacked: Ref, first: Ref, reverse: bool) -> Ref:
    """The carries before each step: ``first`` (the initial carry) then the stacked carries after each step,
    shifted by one step in the order the scan ran."""
    length = b.type(stacked).shape[0]
    initial = b.expand_dims(first, axis=(0,))
    if length == 1:
        return initial
    if reverse:
        return b.concat(take(b, stacked, 0, 1, length - 1), initial, axis=0)
    return b.concat(initial, take(b, stacked, 0, 0, length - 1), axis=0)


def vjp_body(body: Graph, carries: int, sequences: int, cotangents: Sequence[bool],
             stored: Sequence[int] = ()) -> Graph:
    """The body of a scan's gradient. Inputs: the carries' gradients from the later steps and the float
    constants' gradients of the later steps (carries), then the carries before the step, the step's sequence
    slices, the present cotangents of the results and the step's ``stored`` values (residuals: body nodes the
    forward scan saved at every step) (sequences), then the constants. Outputs: the gradients of the carries
    before the step and the constants' gradients with this step's added (the new carries), then the gradients
    of each float sequence slice. What is not stored is recomputed from the carries before the step."""
    from .passes.pipeline import optimize

    return optimize(_vjp_graph(body, carries, sequences, cotangents, stored)[0])


def _vjp_graph(body: Graph, carries: int, sequences: int, cotangents: Sequence[bool],
               stored: Sequence[int]) -> tuple[Graph, dict[int, int]]:
    """:func:`vjp_body` before its optimization, dead code dropped, and where the nodes it recomputes came from
    (its node id -> the forward body's node id)."""
    from .autodiff import autodiff
    from .passes.dce import dce

    ins = [body.node(i) for i in body_inputs(body)]
    outs = [body.node(o) for o in body_outputs(body)]
    vjp = Graph(f"{body.model_name}.vjp", body.batch_symbol)
    vjp.float_dtype = body.float_dtype
    add = lambda name, t: Ref(vjp.add("input", (), t, name=name))
    later = [add(f"later{i}", ins[i].type) for i in range(carries)]
    float_constants = [(j, n) for j, n in enumerate(ins[carries + sequences:]) if n.type.is_float]
    sums = {j: add(f"sum{j}", n.type) for j, n in float_constants}
    before = [add(f"before{i}", ins[i].type) for i in range(carries)]
    slices = [add(f"x{j}", ins[carries + j].type) for j in range(sequences)]
    present = [k for k, has in enumerate(cotangents) if has]
    given = {k: add(f"g{k}", outs[k].type) for k in present}
    saved = [add(f"r{j}", body.node(r).type) for j, r in enumerate(stored)]
    constants = [add(f"p{j}", n.type) for j, n in enumerate(ins[carries + sequences:])]
    b = Builder(vjp)
    where = inline(body, b, dict(zip([n.id for n in ins], [*before, *slices, *constants], strict=True)))
    total = None
    for k, out in enumerate(outs):
        if not out.type.is_float:
            continue
        cotangent = later[k] if k < carries else None
        if k in given:
            cotangent = given[k] if cotangent is None else b.add(cotangent, given[k])
        if cotangent is None:
            continue
        part = b.cast_to(b.sum(b.mul(where[out.id], cotangent)), vjp.float_dtype)
        total = part if total is None else b.add(total, part)
    vjp.objective = total if total is not None else b.const(0.0, vjp.float_dtype)
    derived = autodiff(vjp)
    grads = {derived.node(i).name: derived.grads[derived.node(i).name] for i in derived.inputs().values()
             if derived.node(i).name in derived.grads}
    outputs = {}
    for i in range(carries):
        outputs[f"before{i}"] = grads[f"before{i}"]
    total = Builder(derived)
    for j, n in float_constants:
        outputs[f"sum{j}"] = int(total.add(sums[j], total.cast_to(Ref(grads[f"p{j}"]), n.type.dtype)))
    for j in range(sequences):
        if ins[carries + j].type.is_float:
            outputs[f"x{j}"] = grads[f"x{j}"]
    derived.outputs, derived.grads, derived.losses, derived.objective = outputs, {}, {}, None
    recomputed = {where[i]: i for i in where if body.node(i).op != "input"}
    for j, r in enumerate(stored):  # the gradient's nodes read the stored value, not the recomputed one
        copy = where[r]
        for consumer in derived.consumers(copy):
            if consumer not in recomputed:
                node = derived.node(consumer)
                derived.update(consumer, inputs=tuple(saved[j] if i == copy else i for i in node.inputs))
        for name, value in derived.outputs.items():
            if value == copy:
                derived.outputs[name] = saved[j]
    derived = dce(derived)
    return derived, {i: r for i, r in recomputed.items() if i in derived}


def residuals(body: Graph, carries: int, sequences: int, cotangents: Sequence[bool]) -> list[int]:
    """The body nodes a scan's gradient should read from the forward scan rather than recompute: every float
    value that changes from step to step (it depends on a carry or a sequence slice) and that the gradient's
    own nodes use (a gate's activation, the pre-activation a mask was taken from). Stored, they cost one
    [T, ...] array each; recomputed, they would cost the step's forward work again (its matrix product and
    its transcendental functions) in the backward pass."""
    vjp, recomputed = _vjp_graph(body, carries, sequences, cotangents, ())
    varying_inputs = [i for i in vjp.inputs().values() if vjp.node(i).name.startswith(("before", "x"))]
    varying = vjp.downstream(varying_inputs)
    chosen = set()
    for copy, original in recomputed.items():
        if copy not in varying or not vjp.node(copy).type.is_float:
            continue
        if any(c not in recomputed for c in vjp.consumers(copy)) or copy in vjp.outputs.values():
            chosen.add(original)
    return sorted(chosen)


def _with_outputs(body: Graph, extra: Sequence[int]) -> tuple[Graph, list[int]]:
    """A copy of ``body`` that also outputs the nodes ``extra`` it does not output yet (after its own outputs),
    and the result index of each node of ``extra``."""
    extended = body.copy()
    outputs = body_outputs(body)
    where = []
    for node in extra:
        if node not in outputs:
            extended.outputs[f"stored{len(outputs)}"] = node
            outputs.append(node)
        where.append(outputs.index(node))
    return extended, where


def reverse_scan(b: Builder, n, grads: list) -> list:
    """The gradient rule of a scan ``n`` (a node whose id and operands are refs), given the gradients of its
    results (None where none flows): thunks for the gradients of its operands."""
    attrs = n.attrs
    body, k, m, reverse = attrs["body"], attrs["carries"], attrs["sequences"], attrs["reverse"]
    operands = list(n.inputs)
    initial, sequences, constants = operands[:k], operands[k:k + m], operands[k + m:]
    ins = [body.node(i) for i in body_inputs(body)]
    built: dict[str, list[Ref]] = {}

    def backward() -> list[Ref]:
        if "results" not in built:
            cotangents = [g is not None and b.type(g).is_float for g in grads]
            stored = residuals(body, k, m, cotangents)
            extended, positions = _with_outputs(body, stored)
            if len(body_outputs(extended)) > len(body_outputs(body)):  # the forward scan also outputs them
                b.graph.update(n.id, attrs={**attrs, "body": extended})
            everything = results(b, n.id)
            stacked, saved = everything[:k], [everything[p] for p in positions]
            before = [_shifted(b, stacked[i], initial[i], reverse) for i in range(k)]
            given = [grads[j] for j, has in enumerate(cotangents) if has]
            zeros = [b.broadcast_like(b.const(0.0, b.type(c).dtype), c)
                     for c in [*initial, *(constants[j] for j in float_constants)]]
            vjp = vjp_body(body, k, m, cotangents, stored)
            built["results"] = scan(b, vjp, zeros, [*before, *sequences, *given, *saved], constants,
                                    reverse=not reverse, length=attrs["length"], final_carries=True)
        return built["results"]

    # results: the carries' gradients before the first step, the constants' summed over the steps, then
    # the float sequences' at every step
    float_constants = [j for j, node in enumerate(ins[k + m:]) if node.type.is_float]
    float_sequences = [j for j in range(m) if ins[k + j].type.is_float]
    thunks: list = [lambda i=i: backward()[i] for i in range(k)]
    for j in range(m):
        position = k + len(float_constants) + float_sequences.index(j) if j in float_sequences else None
        thunks.append(None if position is None else (lambda p=position: backward()[p]))
    for j in range(len(constants)):
        position = k + float_constants.index(j) if j in float_constants else None
        thunks.append(None if position is None else (lambda p=position: backward()[p]))
    return thunks
