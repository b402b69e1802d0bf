"""What makes a recurrence fast, checked for what it computes: a scan gradient's weight sums taken after the
loop (passes/scan_hoist.py, contract_rows), and scans that run their batch in chunks across threads
(compiler/scan_chunks.py, the cpu target's scan_loop functions)."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from test_cpu_parallel import THREAD_COUNTS
from test_scan import _two_carry_scan, feeds, rnn_spec
from test_targets import assert_close

import gradc
from gradc.compiler import scan_chunks
from gradc.compiler.lower import cpu_lib
from gradc.compiler.ops.scan import body_inputs
from gradc.compiler.scan_chunks import runs_in_chunks

LSTM = """model wide
input x: f32[N, {steps}, 3]
input y: f32[N, 1]
pred = x -> lstm({units}) -> dense(1)
loss L = mse(pred, y)
"""


def scans(graph) -> list:
    """The graph's scans, the forward one first."""
    return sorted((n for n in graph.nodes() if n.op == "scan"), key=lambda n: n.attrs["reverse"])


@pytest.mark.parametrize("rows", [5, 300, 1100])
def test_contract_rows2_matches_numpy_and_not_the_thread_count(rows):
    rng = np.random.default_rng(rows)
    a, b = rng.normal(size=(rows, 7)).astype(np.float32), rng.normal(size=(rows, 5)).astype(np.float32)
    results = []
    for count in THREAD_COUNTS:
        numba.set_num_threads(count)
        results.append(cpu_lib.contract_rows2(a, b))
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    np.testing.assert_allclose(results[0], a.T.astype(np.float64) @ b, rtol=1e-5, atol=1e-4)
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])  # the rows decide the runs: the same sums in order


def test_a_gradient_scan_keeps_no_weight_sums_and_they_come_out_right():
    """The hand-built scan's weight is summed after the loop: its gradient scan carries the state's gradients
    alone, and the weight's gradient still passes gradcheck (test_scan runs it forwards and in reverse)."""
    graph = gradc.compile(rnn_spec(layer="gru"), cache=False).graph
    _, backward = scans(graph)
    assert backward.attrs["carries"] == 1  # h's gradient; the three weights' and biases' sums are outside
    body_ops = [n.op for n in backward.attrs["body"].nodes()]
    assert body_ops.count("matmul") == 1 and "sum" not in body_ops
    hand = _two_carry_scan(reverse=False)
    _, hand_backward = scans(hand)
    assert hand_backward.attrs["carries"] == 2  # h's and c's gradients; w's is a contract_rows after the loop
    assert "contract_rows" in [n.op for n in hand.nodes()]


def test_which_scans_run_in_chunks():
    wide = gradc.compile(gradc.loads(LSTM.format(steps=4, units=128)), cache=False).graph
    assert all(runs_in_chunks(n, wide.batch_symbol) for n in scans(wide))
    narrow = gradc.compile(gradc.loads(LSTM.format(steps=4, units=4)), cache=False).graph
    assert not any(runs_in_chunks(n, narrow.batch_symbol) for n in scans(narrow))  # too little work a step
    hand = _two_carry_scan(reverse=False)  # its integer sequence is one number a step, not one per example
    assert not any(runs_in_chunks(n, hand.batch_symbol) for n in scans(hand))


@pytest.mark.slow  # a cold compile of the program (about 10 s)
def test_a_scan_in_chunks_computes_what_the_reference_does(monkeypatch):
    """An RNN whose every state is an output, its scans forced into chunks (the forward one writes each step's
    state, the reverse one its final carries): 37 examples make two chunks of unequal size; every loss and
    gradient matches the reference executor."""
    monkeypatch.setattr(scan_chunks, "MIN_STEP_WORK", 0)
    spec = rnn_spec("every-state")
    program = gradc.compile(spec, cache=False)
    assert program.backend.lowered.source.count("def scan_loop") == 2  # the scan and its gradient
    reference = gradc.compile(spec, target="reference", params=program.params)
    inputs = feeds(spec, n=37, dtype=np.float32)
    assert cpu_lib.scan_chunk_count(37) == 2
    assert_close(reference.run(inputs, grad=True), program.run(inputs, grad=True), 1e-4)


def test_a_gradient_scan_reads_its_weight_transposed_once_outside():
    """passes/scan_weights.py: the reverse scan's ``dgates @ W_hh`` takes W_hh transposed outside the loop and
    reads it as ``transpose(Wt)`` (the few-row product's fast form); the forward scan, which already reads
    ``h @ transpose(W_hh)``, is left as it is."""
    graph = gradc.compile(gradc.loads(LSTM.format(steps=4, units=8)), cache=False).graph
    forward, backward = scans(graph)
    weights = [graph.node(i) for i in backward.inputs[-2:] if graph.node(i).type.rank == 2]
    assert [w.op for w in weights] == ["transpose"]
    body = backward.attrs["body"]
    constants = [body.node(i) for i in body_inputs(body)[backward.attrs["carries"] + backward.attrs["sequences"]:]]
    (weight_input,) = [n for n in constants if n.type.rank == 2]
    assert weight_input.type.shape == (8, 32)  # [H, 4H]: W_hh [4H, H] transposed
    readers = [body.node(c) for c in body.consumers(weight_input.id)]
    assert [r.op for r in readers] == ["transpose"]
    assert all(body.node(c).op == "matmul" for c in body.consumers(readers[0].id))
    forward_inputs = [n for n in forward.attrs["body"].nodes() if n.op == "input"]
    assert (32, 8) in [n.type.shape for n in forward_inputs]


def test_a_scan_step_computes_its_stacked_results_in_place():
    """The cpu target passes each step's rows of the stacked results to the body's function, which computes
    the values there (no new array and no copy a step); the numbers are the reference's."""
    spec = gradc.loads(LSTM.format(steps=3, units=128))
    program = gradc.compile(spec, cache=False)
    source = program.backend.lowered.source
    loop = source[source.index("def scan_loop0"):source.index("def scan_loop1")]
    assert "put_rows(s0[q]" not in loop and "s0[q, lo:hi]" in loop
    assert "# the caller's buffer" in source
    reference = gradc.compile(spec, target="reference", params=program.params)
    inputs = feeds(spec, n=5, dtype=np.float32)
    assert_close(reference.run(inputs, grad=True), program.run(inputs, grad=True), 1e-4)
