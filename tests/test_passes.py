"""Each pass on its own, and the pipeline's stages."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ROOT

import gradc
from gradc.api import bind_lengths
from gradc.compiler.autodiff import autodiff
from gradc.compiler.passes import STAGE_NAMES, constant_fold, cse, dce, run_pipeline, simplify, stabilize
from gradc.compiler.printers import to_json


def graph_of(text: str):
    return gradc.loads(text).graph


def ops(graph) -> list[str]:
    return [n.op for n in graph.nodes()]


def test_cse_merges_equal_subexpressions_and_commuted_operands():
    g = graph_of("model m\ninput a: f32\ninput b: f32\noutput y = (a * b) + (b * a) + a * b\n")
    assert ops(g).count("mul") == 3
    assert ops(cse(g)).count("mul") == 1


def test_shared_subexpression_optimized_json_has_one_times_two():
    spec = gradc.load(ROOT / "models" / "shared_subexpression.model")
    data = json.loads(to_json(run_pipeline(spec.graph, "optimized"), "optimized"))
    nodes = {n["id"]: n for n in data["nodes"]}
    b = next(n["id"] for n in data["nodes"] if n["op"] == "input" and n["name"] == "b")
    two_times_b = [
        n for n in data["nodes"]
        if n["op"] == "mul" and b in n["inputs"]
        and any(nodes[i]["op"] == "const" and nodes[i]["attrs"]["value"] == 2.0 for i in n["inputs"])
    ]
    assert len(two_times_b) == 1


def test_backward_reuses_forward_values():
    spec = gradc.load(ROOT / "models" / "mlp_digits.model")
    g = run_pipeline(spec.graph, "optimized")
    # softmax is computed once, for the output and for the cross-entropy gradient
    assert ops(g).count("softmax") == 1
    assert ops(g).count("relu") == 2


def test_constant_folding():
    g = graph_of("model m\ninput x: f32\noutput y = x * (2 * 3 + 1)\n")
    folded = dce(constant_fold(g))
    consts = [n for n in folded.nodes() if n.op == "const"]
    assert [c.attrs["value"] for c in consts] == [7.0]


def test_dce_keeps_interface_and_drops_dead_values():
    g = graph_of("model m\ninput x: f32\ninput unused: f32\nh = exp(x)\noutput y = x * 2\n")
    after = dce(g)
    assert "exp" not in ops(after)
    assert set(after.inputs()) == {"x", "unused"}


def test_simplify_identities():
    g = graph_of("model m\ninput x: f32[N]\noutput y = -(-((x * 1 + 0) / 1)^1)\n")
    simplified = dce(simplify(constant_fold(g)))
    y = simplified.outputs["y"]
    assert simplified.node(y).op == "input"


def test_simplify_turns_a_transposed_product_around_and_merges_transposes():
    """(a b)^T = b^T a^T: one product of swapped operands, not a product and a strided copy; and a transpose
    of a transpose is one transpose (here none: the two cancel)."""
    g = graph_of("model m\ninput a: f32[N, 3]\ninput b: f32[N, 4]\ninput c: f32[3, 4]\n"
                 "output y = transpose(transpose(a) @ b)\noutput z = transpose(transpose(c))\n")
    after = dce(simplify(g))
    y = after.node(after.outputs["y"])
    assert y.op == "matmul" and [after.node(i).op for i in y.inputs] == ["transpose", "input"]
    assert after.node(after.outputs["z"]).op == "input"
    rng = np.random.default_rng(0)
    feeds = {"a": rng.normal(size=(5, 3)), "b": rng.normal(size=(5, 4)), "c": rng.normal(size=(3, 4))}
    out = gradc.compile(gradc.loads("model m\ninput a: f32[N, 3]\ninput b: f32[N, 4]\n"
                                    "output y = transpose(transpose(a) @ b)\n")).run({k: feeds[k] for k in "ab"})
    np.testing.assert_allclose(out["y"], (feeds["a"].T @ feeds["b"]).T, rtol=1e-5)


def test_simplify_keeps_broadcasting_identity():
    g = graph_of("model m\ninput x: f32\nparam z: f32[3] = zeros\noutput y = x + z\n")
    assert "add" in ops(simplify(g))


def test_simplify_removes_dropout_outside_training():
    g = graph_of("model m\ninput x: f32[N, 4]\noutput y = x -> dropout(0.5) -> relu\n")
    assert "dropout" not in ops(dce(simplify(g)))


def test_stabilize_rewrites():
    g = graph_of(
        "model m\ninput z: f32[N, 3]\ninput t: f32[N, 3]\ninput y: i64[N]\n"
        "output a = log(softmax(z))\noutput b = log(sigmoid(z))\n"
        "loss l1 = bce(sigmoid(z), t)\nloss l2 = cross_entropy(softmax(z), y, from_logits=false)\n"
    )
    after = dce(stabilize(g))
    names = ops(after)
    assert "log_softmax" in names and "bce_with_logits" in names and "softplus" in names
    assert "log" not in names and "bce" not in names and "softmax" not in names
    ce = next(n for n in after.nodes() if n.op == "cross_entropy")
    assert ce.attrs["from_logits"] is True


def test_stable_forms_do_not_overflow():
    spec = gradc.loads("model m\ninput z: f32[N]\ninput t: f32[N]\noutput ls = log(sigmoid(z))\n"
                       "loss L = bce(sigmoid(z), t)\n")
    out = gradc.compile(spec).run({"z": np.array([-200.0, 200.0]), "t": np.array([1.0, 0.0])}, grad=True)
    assert np.all(np.isfinite(out["ls"])) and np.isfinite(out["L"])
    np.testing.assert_allclose(out["ls"], [-200.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(out["L"], 200.0, rtol=1e-5)
    np.testing.assert_allclose(out["grad/z"], [-0.5, 0.5], rtol=1e-5)


def test_every_stage_runs_on_every_model():
    for path in sorted((ROOT / "models").glob("*.model")):
        spec = bind_lengths(gradc.load(path))  # a symbolic length: the train block's data gives its size
        for stage in STAGE_NAMES:
            run_pipeline(spec.graph, stage)


def test_autodiff_is_a_pass():
    g = graph_of("model m\ninput x: f32\noutput y = x * x\n")
    assert not g.grads
    assert set(autodiff(g).grads) == {"x"}
    assert not g.grads, "a pass returns a new graph and leaves its input alone"


def test_stabilizing_rewrites_see_through_promotion_casts():
    """bce(sigmoid(z), y) with z f32 and y f64 reads cast(sigmoid(z)); it still becomes bce_with_logits."""
    spec = gradc.loads("model m\ninput z: f32[N]\ninput y: f64[N]\nloss L = bce(sigmoid(z), y)\n"
                       "output lp = log(softmax(z, axis=0)) * y\n")
    ops = [n.op for n in run_pipeline(spec.graph, "optimized").nodes()]
    assert "bce_with_logits" in ops and "bce" not in ops
    assert "log_softmax" in ops and "log" not in ops


def test_compile_stages_pause_the_collector_and_restore_it():
    import gc

    from gradc.compiler.driver import paused_gc

    assert gc.isenabled()
    with pytest.raises(ValueError), paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled(), "an inner pause must not turn the collector back on"
        raise ValueError
    assert gc.isenabled()


def _small_graph():
    from gradc.compiler.builder import Builder, Ref
    from gradc.compiler.graph import Graph
    from gradc.compiler.types import TensorType

    g = Graph("rules")
    b = Builder(g)
    x = Ref(g.add("input", (), TensorType((3,), "f32"), name="x"))
    g.outputs["y"] = b.sum(b.neg(b.neg(x)))
    return g


def test_the_rewrite_engine_keeps_types_and_reaches_a_fixpoint():
    from gradc.compiler.passes.rewrite import rewrite

    g = _small_graph()
    # a rule whose replacement has another type is not taken
    same = rewrite(g, {"sum": lambda b, node: node.inputs[0]})
    assert [n.op for n in same.nodes() if n.op != "input"] == ["neg", "neg", "sum"]
    # double negation, then nothing more to do
    simplified = rewrite(g, {"neg": lambda b, node: b.graph.node(node.inputs[0]).inputs[0]
                             if b.graph.node(node.inputs[0]).op == "neg" else None})
    total = simplified.node(simplified.outputs["y"])
    assert simplified.node(total.inputs[0]).op == "input"  # the inner neg is left to dead-code elimination
    # a rule that always builds a new node never settles: an error, not a hang
    with pytest.raises(RuntimeError, match="did not reach a fixpoint"):
        rewrite(g, {"neg": lambda b, node: b.neg(node.inputs[0])})
