"""attention(q, k, v[, mask], causal=, scale=) beyond the op cases of test_ops (forward, float32, gradient
against finite differences, cpu against the reference, cuda against cpu): PyTorch's scaled_dot_product_attention
with the same tensors, large scores, a mask's gradient only where it takes one, the [T, S] scores never stored,
and the errors a .model file gets."""

from __future__ import annotations

import numpy as np
import pytest

import gradc
from gradc.compiler.ops.attention import dropout_weights
from gradc.compiler.passes.training import attention_seeds
from gradc.runtime.execution.gradcheck import gradcheck
from gradc.runtime.execution.reference import evaluate
from gradc.runtime.execution.sampling import random_inputs

MODEL = """model att
input q: f64[N, 2, 6, 4]
input k: f64[N, 2, 7, 4]
input v: f64[N, 2, 7, 3]
input bias: f64[6, 7]
output plain = attention(q, k, v)
output causal = attention(q, k, v, causal=true)
output masked = attention(q, k, v, bias, scale=0.4)
loss L = sum(plain * plain) + sum(causal * causal) + sum(masked * masked)
"""


def feeds(rng: np.random.Generator, n: int = 3) -> dict[str, np.ndarray]:
    return {"q": rng.normal(size=(n, 2, 6, 4)), "k": rng.normal(size=(n, 2, 7, 4)),
            "v": rng.normal(size=(n, 2, 7, 3)), "bias": rng.normal(size=(6, 7))}


@pytest.mark.slow  # a cold compile of three attentions and their gradients (about 9 s)
def test_pytorch_computes_the_same_attention_and_gradients():
    torch = pytest.importorskip("torch")
    sdpa = torch.nn.functional.scaled_dot_product_attention
    inputs = feeds(np.random.default_rng(0))
    program = gradc.compile(gradc.loads(MODEL), cache=False)
    ours = program.run(inputs, grad=True)
    t = {name: torch.tensor(value, requires_grad=True) for name, value in inputs.items()}
    outputs = {
        "plain": sdpa(t["q"], t["k"], t["v"]),
        "causal": sdpa(t["q"], t["k"], t["v"], is_causal=True),
        "masked": sdpa(t["q"], t["k"], t["v"], attn_mask=t["bias"], scale=0.4),
    }
    loss = sum((o * o).sum() for o in outputs.values())
    loss.backward()
    for name, value in outputs.items():
        np.testing.assert_allclose(ours[name], value.detach().numpy(), rtol=1e-10, atol=1e-12)
    for name, value in t.items():
        np.testing.assert_allclose(ours[f"grad/{name}"], value.grad.numpy(), rtol=1e-9, atol=1e-11)


def test_large_scores_stay_finite_and_long_rows_match_the_reference():
    """The online softmax rescales as its running maximum grows: scores of a few hundred (exp would overflow
    float32 at 88) over 300 keys, causal, match the reference's softmax of the stored scores."""
    source = ("model long\ninput q: f32[N, 300, 8]\ninput k: f32[N, 300, 8]\ninput v: f32[N, 300, 2]\n"
              "output y = attention(q, k, v, causal=true, scale=30)\nloss L = mean(y * y)\n")
    spec = gradc.loads(source)
    rng = np.random.default_rng(1)
    inputs = {name: rng.normal(size=(2, 300, 8 if name != "v" else 2)).astype(np.float32) for name in "qkv"}
    cpu = gradc.compile(spec, cache=False).run(inputs, grad=True)
    reference = gradc.compile(spec, target="reference", cache=False).run(inputs, grad=True)
    for key, value in reference.items():
        assert np.all(np.isfinite(cpu[key])), key
        np.testing.assert_allclose(cpu[key], value, rtol=1e-4, atol=1e-4)


def test_the_scores_are_never_stored_and_a_mask_gradient_only_where_asked():
    """A training step over parameters keeps no [T, S] value and makes the three gradients in one kernel; only
    the gradients entry point, which gives the mask input its gradient, makes the scores' gradient
    (attention_ds)."""
    source = ("model p\ninput x: f32[N, 16, 4]\ninput bias: f32[16, 16]\nparam w: f32[4, 4] = xavier_uniform\n"
              "output y = attention(x @ w, x, x, bias)\nloss L = mean(y * y)\n")
    program = gradc.compile(gradc.loads(source), cache=False)
    step = program.backend.lowered.source.split("def train_sgd(")[1].split("\ndef ")[0]
    assert "attention_ds3" not in step and "attention_forward3" in step and "attention_grads3" in step
    assert "attention_lse3" not in step  # the forward kernel wrote the log-sum-exp (the attention-lse stage)
    gradients = program.backend.lowered.source.split("def gradients(")[1].split("\ndef ")[0]
    assert "attention_ds3" in gradients
    graph = program.graph
    scores_gradient = graph.downstream([n.id for n in graph.nodes() if n.op == "attention_ds"])
    square = [n for n in graph.nodes() if n.type.shape[-2:] == (16, 16) and n.op != "input"]
    assert square and all(n.id in scores_gradient for n in square), [n.op for n in square]


@pytest.mark.parametrize(("line", "message"), [
    ("output y = attention(q, k2, v)", "the queries f32[N,5,4] and the keys f32[N,7,3] must have the same last"),
    ("output y = attention(q, k, v2)", "the keys f32[N,7,4] and the values f32[N,6,2] must have the same number"),
    ("output y = attention(q, k, v, m2)", "the mask f32[6,7] must be a float tensor that broadcasts"),
    ("output y = attention(q, k)", "attention takes 3 operand(s) (q, k, v), got 2"),
    ("output y = attention(q, k, v, m2, mask=m2)", "operand 'mask' of attention is given twice"),
    ("output y = attention(q, k, mask=m2)", "attention: give the operands before 'mask' (v) too"),
    ("output y = attention(q, k, v, dropout=1.5)", "attention: dropout must be in [0, 1), got 1.5"),
])
def test_attention_errors_name_the_shapes_and_the_place(cli, tmp_path, line, message):
    source = ("model bad\ninput q: f32[N, 5, 4]\ninput k: f32[N, 7, 4]\ninput k2: f32[N, 7, 3]\n"
              "input v: f32[N, 7, 2]\ninput v2: f32[N, 6, 2]\ninput m2: f32[6, 7]\n" + line + "\n")
    path = tmp_path / "bad.model"
    path.write_text(source)
    result = cli("check", str(path))
    assert result.code == 1 and "Traceback" not in result.err
    assert f"{path}:8:" in result.err and message in result.err, result.err


def test_the_mask_may_be_given_by_name():
    """attention(q, k, v, mask=m) is attention(q, k, v, m): the issue's spelling."""
    named = MODEL.replace("attention(q, k, v, bias, scale=0.4)", "attention(q, k, v, mask=bias, scale=0.4)")
    assert named != MODEL
    inputs = feeds(np.random.default_rng(5))
    want = gradc.compile(gradc.loads(MODEL), target="reference").run(inputs, grad=True)
    got = gradc.compile(gradc.loads(named), target="reference").run(inputs, grad=True)
    assert want.keys() == got.keys()
    for key, value in want.items():
        np.testing.assert_array_equal(got[key], value)


MHA = """model mha
input x: f64[N, 5, 8]
input c: f64[N, 6, 3]
input n: i64[N]
output self = x -> multi_head_attention(heads=2, dim=8, causal=true)
output cross = x -> multi_head_attention(heads=4, dim=8, context=c, lengths=n)
loss L = sum(self * self) + sum(cross * cross)
"""


@pytest.mark.slow  # about 12 s
def test_multi_head_attention_is_pytorchs_with_the_same_weights():
    """Self-attention (causal) against nn.MultiheadAttention with in_proj_weight = [q; k; v]; cross-attention
    over padded keys against one with kdim and vdim and a key_padding_mask; outputs and every gradient."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    inputs = {"x": rng.normal(size=(3, 5, 8)), "c": rng.normal(size=(3, 6, 3)), "n": np.array([6, 2, 4])}
    program = gradc.compile(gradc.loads(MHA), cache=False)
    ours = program.run(inputs, grad=True)
    params = {name: torch.tensor(value) for name, value in program.params.items()}
    torch.set_default_dtype(torch.float64)
    try:
        own = torch.nn.MultiheadAttention(8, 2, batch_first=True)
        cross = torch.nn.MultiheadAttention(8, 4, batch_first=True, kdim=3, vdim=3)
    finally:
        torch.set_default_dtype(torch.float32)
    layer = lambda stmt, role: params[f"{stmt}.multi_head_attention1.{role}"]
    with torch.no_grad():
        own.in_proj_weight.copy_(torch.cat([layer("self", f"{r}_weight") for r in "qkv"]))
        own.in_proj_bias.copy_(torch.cat([layer("self", f"{r}_bias") for r in "qkv"]))
        cross.q_proj_weight.copy_(layer("cross", "q_weight"))
        cross.k_proj_weight.copy_(layer("cross", "k_weight"))
        cross.v_proj_weight.copy_(layer("cross", "v_weight"))
        cross.in_proj_bias.copy_(torch.cat([layer("cross", f"{r}_bias") for r in "qkv"]))
        for module, stmt in ((own, "self"), (cross, "cross")):
            module.out_proj.weight.copy_(layer(stmt, "out_weight"))
            module.out_proj.bias.copy_(layer(stmt, "out_bias"))
    x = torch.tensor(inputs["x"], requires_grad=True)
    c = torch.tensor(inputs["c"], requires_grad=True)
    causal = torch.triu(torch.ones(5, 5, dtype=torch.bool), diagonal=1)
    padding = torch.arange(6)[None, :] >= torch.tensor(inputs["n"])[:, None]
    outputs = {"self": own(x, x, x, attn_mask=causal, need_weights=False)[0],
               "cross": cross(x, c, c, key_padding_mask=padding, need_weights=False)[0]}
    sum((o * o).sum() for o in outputs.values()).backward()
    for name, value in outputs.items():
        np.testing.assert_allclose(ours[name], value.detach().numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(ours["grad/x"], x.grad.numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(ours["grad/c"], c.grad.numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(ours["grad/self.multi_head_attention1.q_weight"],
                               own.in_proj_weight.grad[:8].numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(ours["grad/cross.multi_head_attention1.k_weight"],
                               cross.k_proj_weight.grad.numpy(), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("options", ["", ", causal=true", ", context=c", ", lengths=n", ", mask=m, bias=false"])
def test_multi_head_attention_passes_gradcheck(options):
    source = ("model g\ninput x: f64[N, 4, 3]\ninput c: f64[N, 5, 2]\ninput n: i64[N]\ninput m: f64[4, 1]\n"
              f"output y = x -> multi_head_attention(heads=2, dim=4{options})\nloss L = sum(y * y)\n")
    program = gradc.compile(gradc.loads(source), target="reference", cache=False)
    inputs = random_inputs(program.graph, 3, np.random.default_rng(0))
    inputs["n"] = np.array([5, 0, 3])  # an example with no keys: zeros, and no gradient through it
    reports = gradcheck(program.source, inputs, program.params, max_elements=200)
    assert reports
    for report in reports:
        assert report.passed(), f"{report.name}: max error {report.max_error:.3e}"


TRANSFORMER = """import std

model tf
input x: f64[N, 6, 16]
input y: f64[N, 5, 16]
output enc = x -> sinusoidal_positions -> transformer_encoder(dim=16, heads=2, hidden=32, p=0.0)
output enc_pre = x -> transformer_encoder_pre(dim=16, heads=2, hidden=32, p=0.0)
output dec = transformer_decoder(y, x, dim=16, heads=2, hidden=32, p=0.0)
output dec_pre = transformer_decoder_pre(y, x, dim=16, heads=2, hidden=32, p=0.0)
loss L = sum(enc * enc) + sum(enc_pre * enc_pre) + sum(dec * dec) + sum(dec_pre * dec_pre)
"""


def _copy_attention(module, params: dict, prefix: str) -> None:
    """A multi_head_attention layer's weights into nn.MultiheadAttention (in_proj: q, k and v stacked)."""
    import torch

    module.in_proj_weight.copy_(torch.cat([params[f"{prefix}.{r}_weight"] for r in "qkv"]))
    module.in_proj_bias.copy_(torch.cat([params[f"{prefix}.{r}_bias"] for r in "qkv"]))
    module.out_proj.weight.copy_(params[f"{prefix}.out_weight"])
    module.out_proj.bias.copy_(params[f"{prefix}.out_bias"])


def _copy_layer(layer, params: dict, prefix: str, decoder: bool) -> None:
    """A gradc transformer block's weights into PyTorch's layer (dense weights are [in, out]: transposed)."""
    _copy_attention(layer.self_attn, params, f"{prefix}.multi_head_attention1")
    if decoder:
        _copy_attention(layer.multihead_attn, params, f"{prefix}.multi_head_attention2")
    layer.linear1.weight.copy_(params[f"{prefix}.dense1.weight"].T)
    layer.linear1.bias.copy_(params[f"{prefix}.dense1.bias"])
    layer.linear2.weight.copy_(params[f"{prefix}.dense2.weight"].T)
    layer.linear2.bias.copy_(params[f"{prefix}.dense2.bias"])
    for k in range(1, 4 if decoder else 3):
        norm = getattr(layer, f"norm{k}")
        norm.weight.copy_(params[f"{prefix}.layernorm{k}.gamma"])
        norm.bias.copy_(params[f"{prefix}.layernorm{k}.beta"])


@pytest.mark.slow  # two cold compiles of four transformer layers (about 20 s)
def test_the_standard_transformer_blocks_are_pytorchs_layers():
    """transformer_encoder(_pre) and transformer_decoder(_pre) against nn.TransformerEncoderLayer and
    nn.TransformerDecoderLayer (norm_first False and True, dropout 0) with the same weights: outputs and the
    inputs' gradients; sinusoidal_positions against its formula."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    inputs = {"x": rng.normal(size=(2, 6, 16)), "y": rng.normal(size=(2, 5, 16))}
    program = gradc.compile(gradc.loads(TRANSFORMER), cache=False)
    ours = program.run(inputs, grad=True)
    params = {name: torch.tensor(value) for name, value in program.params.items()}
    options = dict(d_model=16, nhead=2, dim_feedforward=32, dropout=0.0, batch_first=True, dtype=torch.float64)
    layers = {"enc": torch.nn.TransformerEncoderLayer(**options), "dec": torch.nn.TransformerDecoderLayer(**options),
              "enc_pre": torch.nn.TransformerEncoderLayer(norm_first=True, **options),
              "dec_pre": torch.nn.TransformerDecoderLayer(norm_first=True, **options)}
    blocks = {"enc": "transformer_encoder1", "enc_pre": "transformer_encoder_pre1", "dec": "transformer_decoder1",
              "dec_pre": "transformer_decoder_pre1"}
    with torch.no_grad():
        for name, layer in layers.items():
            _copy_layer(layer, params, f"{name}.{blocks[name]}", name.startswith("dec"))
    x = torch.tensor(inputs["x"], requires_grad=True)
    y = torch.tensor(inputs["y"], requires_grad=True)
    steps = torch.arange(6, dtype=torch.float64)[:, None]
    rates = torch.exp(-np.log(10000.0) * torch.arange(0, 16, 2, dtype=torch.float64) / 16)
    positions = torch.stack([torch.sin(steps * rates), torch.cos(steps * rates)], dim=-1).reshape(6, 16)
    causal = torch.triu(torch.ones(5, 5, dtype=torch.bool), diagonal=1)
    outputs = {"enc": layers["enc"](x + positions), "enc_pre": layers["enc_pre"](x),
               "dec": layers["dec"](y, x, tgt_mask=causal), "dec_pre": layers["dec_pre"](y, x, tgt_mask=causal)}
    sum((o * o).sum() for o in outputs.values()).backward()
    for name, value in outputs.items():
        np.testing.assert_allclose(ours[name], value.detach().numpy(), rtol=1e-8, atol=1e-10, err_msg=name)
    np.testing.assert_allclose(ours["grad/x"], x.grad.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours["grad/y"], y.grad.numpy(), rtol=1e-8, atol=1e-10)


# ---------------------------------------------------------------- dropout on the attention weights

DROPOUT = """model dr
input q: f64[N, 2, 6, 4]
input k: f64[N, 2, 7, 4]
input v: f64[N, 2, 7, 3]
input bias: f64[6, 7]
output plain = attention(q, k, v, dropout=0.3)
output causal = attention(q, k, v, causal=true, dropout=0.5)
output masked = attention(q, k, v, bias, scale=0.4, dropout=0.2)
loss L = sum(plain * plain) + sum(causal * causal) + sum(masked * masked)
"""


def _hash_written_out(seed: int, e: int, i: int, j: int) -> int:
    """compiler/ops/attention.py's dropout_hash, one Python int at a time."""
    x = seed
    for word in (0, e, i, j):
        x ^= word
        for _ in range(2):
            x = (((x >> 16) ^ x) * 0x45D9F3B) % 2 ** 32
        x = (x >> 16) ^ x
    return x


def test_attention_dropout_drops_weights_by_a_hash_of_their_place():
    z = dropout_weights(np.int64(99), {"dropout": 0.25}, (2, 3, 5, 4))  # entries numbered in C order: 6
    for e, i, j in [(0, 0, 0), (5, 4, 3), (3, 2, 1)]:
        kept = _hash_written_out(99, e, i, j) >= 0.25 * 2 ** 32
        assert z.reshape(6, 5, 4)[e, i, j] == (1 / 0.75 if kept else 0.0)
    many = dropout_weights(np.int64(7), {"dropout": 0.3}, (8, 64, 64))
    assert abs(np.mean(many == 0.0) - 0.3) < 0.01 and abs(np.mean(many) - 1.0) < 0.02
    assert not np.array_equal(many, dropout_weights(np.int64(8), {"dropout": 0.3}, (8, 64, 64)))
    assert dropout_weights(np.int64(-1), {"dropout": 0.3}, (2, 3)) == 1.0  # no seed: no dropout


def test_attention_dropout_is_training_only_and_its_forward_is_the_formula():
    """A training step's forward drops weights p_ij z_ij as the hash says; evaluation drops nothing."""
    program = gradc.compile(gradc.loads(DROPOUT), target="reference")
    inputs = feeds(np.random.default_rng(2))
    plain = program.run(inputs)
    undropped = gradc.compile(gradc.loads(DROPOUT.replace(", dropout=0.3", "").replace(", dropout=0.5", "")
                                          .replace(", dropout=0.2", "")), target="reference").run(inputs)
    for name in ("plain", "causal", "masked"):
        np.testing.assert_array_equal(plain[name], undropped[name])
    trained = attention_seeds(program.source)
    assert sorted(n for n in trained.inputs() if n.endswith(".seed")) == [
        "attention1.seed", "attention2.seed", "attention3.seed"]
    seeded = {**inputs, "attention1.seed": np.array(5), "attention2.seed": np.array(6),
              "attention3.seed": np.array(7)}
    out = evaluate(trained, seeded, {}, [trained.outputs["plain"]])[trained.outputs["plain"]]
    q, k, v = inputs["q"], inputs["k"], inputs["v"]
    z = dropout_weights(np.int64(5), {"dropout": 0.3}, (3, 2, 6, 7))
    scores = q @ np.swapaxes(k, -1, -2) / 2.0
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(out, (z * weights / weights.sum(axis=-1, keepdims=True)) @ v, rtol=1e-12)


def test_attention_dropout_passes_gradcheck():
    """float64 central differences of a training graph, its seeds fixed: the dropped weights' gradients,
    with every mask kind."""
    program = gradc.compile(gradc.loads(DROPOUT), target="reference", cache=False)
    graph = attention_seeds(program.source)
    inputs = {**feeds(np.random.default_rng(3)), "attention1.seed": np.array(11), "attention2.seed": np.array(12),
              "attention3.seed": np.array(13)}
    reports = gradcheck(graph, inputs, {}, max_elements=200)
    assert {r.name for r in reports} == {"q", "k", "v", "bias"}
    for report in reports:
        assert report.passed(), f"{report.name}: max error {report.max_error:.3e}"


def test_attention_dropout_on_cpu_matches_the_reference_in_training():
    """The training step's gradients with dropout in multi_head_attention (the seed drawn alike on both)."""
    source = ("model t\ninput x: f32[N, 5, 4]\ninput y: f32[N, 5, 4]\ninput b: f32[5, 5]\n"
              "h = x -> multi_head_attention(heads=2, dim=4, causal=true, dropout=0.4, mask=b)\n"
              "loss L = mse(h, y)\n")  # the mask's gradient: attention_ds with dropout
    spec = gradc.loads(source)
    programs = [gradc.compile(spec, target=t, seed=1) for t in ("reference", "cpu")]
    inputs = random_inputs(programs[0].graph, 3, np.random.default_rng(4))
    got = [p.gradients(inputs) for p in programs]
    for name, want in got[0].items():
        np.testing.assert_allclose(got[1][name], want, rtol=2e-5, atol=1e-6, err_msg=name)
    assert not np.allclose(got[0]["L"], programs[0].run(inputs)["L"])  # dropout changed the training loss
