"""The schedule stage: affine index maps, and the decisions every target renders (what is stored, which
element-moving ops never exist in memory, GEMM epilogues and swapped operands)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import MODELS
from random_models import random_model
from test_targets import MIXED_MODELS, TOLERANCE, assert_close

import gradc
from gradc.api import bind_lengths
from gradc.compiler.driver import build, plan, prepare
from gradc.compiler.graph import SOURCE_OPS
from gradc.compiler.index_maps import AffineExpr, IndexMap
from gradc.compiler.ops.registry import get_op
from gradc.compiler.schedule import GemmKernel, Load, LoopKernel, OpKernel, innermost_splits
from gradc.runtime.execution.sampling import random_inputs

MLP = """model mlp
input x: f32[N, 6]
input y: i64[N]
logits = x -> dense(5) -> tanh -> dense(4) -> relu -> dense(3)
output p = softmax(logits)
loss L = cross_entropy(logits, y)
"""

PERMUTED = """model permuted
input x: f32[N, 3, 4]
param w: f32[3] = 0.5
h = exp(transpose(x, [0, 2, 1])) * w
output o = h
loss L = mean(h * h)
"""

# found by the differential test (seed 7073): the backward pass transposes the transpose that the forward
# product reads swapped; neither exists in memory, so the gradient's product must read x itself, unswapped
DOUBLE_SWAP = """model double_swap
input x: f32[N, 2]
v = transpose(x, [-1, -2]) @ x
loss L = sum(v * v) * 1e-3
"""

PERMUTED_RESULT = """model permuted_result
input x: f32[N, 3, 4]
output o = transpose(x * 2, [2, 0, 1])
loss L = mean(o)
"""


def _schedule(source: str):
    graph = prepare(bind_lengths(gradc.loads(source)).graph)  # a symbolic length: sized by the train data
    return plan(graph)


def _kernels(schedule, entry: str) -> list:
    return list(schedule.entries[entry].kernels)


def _loop_kernels(kernels: list) -> list[LoopKernel]:
    loops = [k for k in kernels if isinstance(k, LoopKernel)]
    return loops + [k.epilogue for k in kernels if isinstance(k, GemmKernel) and k.epilogue is not None]


# ------------------------------------------------------------------ index maps


def test_broadcast_maps_read_index_zero_where_the_operand_has_size_one():
    assert IndexMap.broadcast((1, 4), (3, 4)).render(["i0", "i1"]) == "0, i1"
    assert IndexMap.broadcast((4,), (3, 4)).render(["i0", "i1"]) == "i1"
    assert IndexMap.broadcast((3,), (3, 4), left=True).render(["i0", "i1"]) == "i0"
    assert IndexMap.broadcast((), (3, 4)).rank == 0
    assert IndexMap.broadcast((3, 4), (3, 4)) == IndexMap.identity(2)


def test_a_transpose_composed_into_a_broadcast_permutes_the_loop_indices():
    loop_reads_t = IndexMap.broadcast(("N", 4, 3), ("N", 4, 3))  # the loop reads t = transpose(x, [0, 2, 1])
    x_map = IndexMap.permutation((0, 2, 1)).compose(loop_reads_t)
    assert x_map.render(["i0", "i1", "i2"]) == "i0, i2, i1"
    # a transpose of a transpose is the identity again
    assert IndexMap.permutation((0, 2, 1)).compose(x_map) == IndexMap.identity(3)
    # [2, 0, 1]: output axis k is operand axis axes[k], so operand axis a is read at output axis axes.index(a)
    assert IndexMap.permutation((2, 0, 1)).render(["i0", "i1", "i2"]) == "i1, i2, i0"


def test_affine_maps_compose_strides_and_offsets():
    """What slices and windows will be: x[2::3] read at a window position, i.e. 3 * (2 * i0 + i1) + 2."""
    slice_map = IndexMap((AffineExpr(((0, 3),), 2),))
    window = IndexMap((AffineExpr(((0, 2), (1, 1))),))
    composed = slice_map.compose(window)
    assert composed.render(["i0", "i1"]) == "6 * i0 + 3 * i1 + 2"
    assert IndexMap.dropping(2, (1,)).render(["i0", "i1", "i2"]) == "i0, i2"
    assert AffineExpr().render([]) == "0"


# ------------------------------------------------------------------ decisions


def test_a_dense_networks_transposes_fold_into_the_products_and_its_activations_into_their_epilogues():
    schedule = _schedule(MLP)
    step = _kernels(schedule, "train_sgd")
    assert not any(k.nodes[0].op == "transpose" for k in step), "a transpose was materialized"
    gemms = [k for k in step if isinstance(k, GemmKernel)]
    assert len(gemms) == 8  # 3 forward, 5 backward (no gradient for the input x)
    assert sum(k.a.swapped or k.b.swapped for k in gemms) == 5  # every backward product reads a swapped operand
    epilogues = [k.epilogue for k in gemms if k.epilogue is not None]
    # forward: each layer's bias add with its activation (and the activation's derivative, for the backward
    # pass), the last with the softmax's row maximum; backward: each hidden layer's mask times the upstream
    # gradient, with the bias gradient's column sum. All computed on the product in registers.
    assert [[n.op for n in e.nodes][:2] for e in epilogues] == [
        ["add", "tanh"], ["add", "relu"], ["add", "max"], ["mul", "sum"], ["mul", "sum"]]
    assert all(not k.store_product for k in gemms if k.epilogue is not None)


def test_what_is_stored_depends_on_the_entry_point():
    schedule = _schedule(MLP)
    forward_stored = {s for loop in _loop_kernels(_kernels(schedule, "forward")) for s in loop.stored}
    step_stored = {s for loop in _loop_kernels(_kernels(schedule, "train_sgd")) for s in loop.stored}
    graph = schedule.graph
    # the relu's mask is stored for the backward pass of a training step, never by the forward pass
    masks = {n for n in step_stored if graph.node(n).op == "step"}
    assert masks and not masks & forward_stored


def test_a_permutation_read_by_a_loop_is_a_map_not_a_copy():
    schedule = _schedule(PERMUTED)
    for name in ("forward", "train_sgd"):
        kernels = _kernels(schedule, name)
        assert not any(n.op == "transpose" for k in kernels for n in k.nodes), f"{name}: a transpose remains"
        loads = [o for loop in _loop_kernels(kernels) for s in loop.statements for o in s.operands
                 if isinstance(o, Load) and schedule.graph.node(o.value).op == "input"]
        assert loads and all(str(o.map) == "[i0, i2, i1]" for o in loads)
    # grad/x is a result, so the gradients entry point writes it: one copy loop, through the inverse map
    copies = [k for k in _kernels(schedule, "gradients") if any(n.op == "transpose" for n in k.nodes)]
    assert len(copies) == 1 and isinstance(copies[0], LoopKernel)
    assert str(copies[0].statements[0].operands[0].map) == "[i0, i2, i1]"


def test_a_permuted_result_is_a_copy_loop_through_its_map():
    schedule = _schedule(PERMUTED_RESULT)
    (copy,) = [k for k in schedule.entries["forward"].kernels
               if isinstance(k, LoopKernel) and k.nodes[0].op == "transpose"]
    ((load,),) = [s.operands for s in copy.statements]
    assert str(load.map) == "[i1, i2, i0]"
    assert copy.stored == (copy.nodes[0].id,)


# a concatenation and pads along the innermost axis, read by one loop: its guards change at 1 and 3
JOINED = """model joined
input a: f32[N, 2]
input b: f32[N, 3]
h = concat(pad(a, 1, 0), b, axis=1) * 2 + pad(b, 0, 3)
output o = h
loss L = mean(h * h)
"""


def test_a_loop_is_split_where_its_guards_change_and_tests_none_per_element():
    """The innermost loop over a concatenation of pads runs in parts, each reading memory or the fill value
    without a test (schedule.innermost_splits), and computes what the reference does."""
    spec = gradc.loads(JOINED)
    graph = prepare(spec.graph)
    schedule = plan(graph)
    (joined,) = [k for k in schedule.entries["forward"].kernels if isinstance(k, LoopKernel)]
    assert innermost_splits(joined) == (1, 3)  # the concatenation and the pads are index maps of this loop
    source = build(graph, "cpu", cache=False).source
    assert "range(min(1, " in source and "range(1, min(3, " in source and "range(3, " in source
    forward = source[source.index("def forward("):source.index("def gradients(")]
    assert " if 0 <= i1" not in forward
    reference, cpu = gradc.compile(spec, target="reference"), gradc.compile(spec, target="cpu")
    inputs = random_inputs(reference.graph, 5, np.random.default_rng(3))
    assert_close(reference.run(inputs, grad=True), cpu.run(inputs, grad=True), TOLERANCE["f32"])


@pytest.mark.parametrize("source", [PERMUTED, PERMUTED_RESULT, DOUBLE_SWAP],
                         ids=["read-through", "materialized", "double-swap"])
def test_index_mapped_programs_match_the_reference(source):
    spec = gradc.loads(source)
    reference, cpu = gradc.compile(spec, target="reference"), gradc.compile(spec, target="cpu")
    inputs = random_inputs(reference.graph, 5, np.random.default_rng(3))
    assert_close(reference.run(inputs, grad=True), cpu.run(inputs, grad=True), TOLERANCE["f32"])


def test_both_targets_render_the_same_schedule():
    graph = prepare(gradc.loads(MLP).graph)
    schedule = plan(graph)
    cpu = build(graph, "cpu", cache=False).source
    cuda = build(graph, "cuda", cache=False).source
    step = schedule.entries["train_sgd"]
    for source in (cpu, cuda):
        body = source[source.index("def train_sgd("):].split("\n\n\n")[0]
        for kernel in step.kernels:
            assert f"# k{kernel.id} " in body
        assert "transpose" not in body.replace("transpose2(", "")
    # the cpu target writes an epilogue's activation into the product's buffer when nothing else reads it
    assert "in place of the product" in cpu
    assert sum(isinstance(k, OpKernel) for k in step.kernels) == sum(
        1 for line in cuda[cuda.index("def train_sgd("):].split("\n\n\n")[0].splitlines() if " op: " in line)


def test_compile_prints_the_schedule(cli, write_model):
    path = write_model(MLP)
    result = cli("compile", str(path), "--schedule")
    assert result.code == 0, result
    assert "entry train_sgd:" in result.out
    assert "swapped" in result.out and "epilogue:" in result.out
    assert "(kept in registers)" in result.out


def _check_reads_are_in_memory(schedule) -> list[str]:
    """Every load and every product operand reads a value that is in memory by then: a source (input,
    parameter, constant) or something an earlier kernel of the entry point stored."""
    graph = schedule.graph
    problems = []
    for entry in schedule:
        ready = {n.id for n in graph.nodes() if n.op in SOURCE_OPS}

        def need(value: int, where: str, entry=entry, ready=ready) -> None:
            if value not in ready:
                problems.append(f"{entry.point.name}: {where} reads %{value}, which is not in memory")

        def loop_reads(loop: LoopKernel, where: str) -> None:
            for statement in loop.statements:
                for operand in statement.operands:
                    if isinstance(operand, Load):
                        need(operand.value, where)

        for kernel in entry.kernels:
            where = f"k{kernel.id}"
            if isinstance(kernel, GemmKernel):
                need(kernel.a.value, where)
                need(kernel.b.value, where)
                if kernel.store_product:
                    ready.add(kernel.node.id)
                if kernel.epilogue is not None:
                    loop_reads(kernel.epilogue, where)
                    ready.update(kernel.epilogue.stored, (r.id for r in kernel.epilogue.reductions))
                else:
                    ready.add(kernel.node.id)
            elif isinstance(kernel, LoopKernel):
                loop_reads(kernel, where)
                ready.update(kernel.stored, (r.id for r in kernel.reductions))
            else:
                skip = get_op(kernel.node.op).shape_only
                for k, operand in enumerate(kernel.node.inputs):
                    if k not in skip:
                        need(operand, where)
                ready.add(kernel.node.id)
        for result in entry.results:
            need(result, "the results")
    return problems


SCHEDULED_SOURCES = {
    **{name: source for name, source in (("mlp", MLP), ("permuted", PERMUTED), ("double-swap", DOUBLE_SWAP),
                                         ("permuted-result", PERMUTED_RESULT))},
    **MIXED_MODELS,
    **{model.stem: model.read_text() for model in MODELS},
    **{f"random-{seed}": random_model(seed) for seed in (*range(40), 7073)},
}


@pytest.mark.parametrize("source", SCHEDULED_SOURCES.values(), ids=SCHEDULED_SOURCES.keys())
def test_every_read_in_a_schedule_finds_its_value_in_memory(source):
    schedule = _schedule(source)
    assert not _check_reads_are_in_memory(schedule)
