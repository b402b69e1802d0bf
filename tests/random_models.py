"""Random valid .model files from a seed, for the differential test (every target against the reference).

A model declares inputs of the shapes that broadcasting mixes ([N,K], [K], [1,K], [N,1] and scalars), an
integer input, parameters, then a few statements built from random ops over the values so far (so values are
reused), with number literals in every position, transposes (identities included), and every layer and loss.
Values that would leave an op's domain are kept inside it by construction (log(|a| + 0.5), a / (|b| + 0.5)).
The generator tracks each value's shape and dtype itself, so every model it writes is valid.

    python tests/random_models.py SEED      # print the model of a seed
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass

N = "N"


@dataclass(frozen=True)
class Value:
    name: str
    shape: tuple
    dtype: str

    @property
    def is_float(self) -> bool:
        return self.dtype.startswith("f")


def _broadcast(a: tuple, b: tuple) -> tuple | None:
    rank = max(len(a), len(b))
    a, b = (1,) * (rank - len(a)) + a, (1,) * (rank - len(b)) + b
    out = []
    for x, y in zip(a, b, strict=True):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            return None
    return tuple(out)


def _promote(a: str, b: str) -> str:
    rank = {"i32": 0, "i64": 1, "f32": 2, "f64": 3}
    if a.startswith("f") != b.startswith("f"):
        return a if a.startswith("f") else b
    return a if rank[a] >= rank[b] else b


def _shape_text(shape: tuple) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


class ModelWriter:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.seed = seed
        self.k = self.rng.choice([2, 3, 4])
        self.m = self.rng.choice([2, 3])
        self.mode = self.rng.choice(["f32", "f64", "mixed"])
        self.lines = [f"model random_{seed}"]
        self.pool: list[Value] = []
        self.counter = 0

    # ------------------------------------------------------------ helpers
    def dtype(self) -> str:
        return self.rng.choice(["f32", "f64"]) if self.mode == "mixed" else self.mode

    def number(self) -> str:
        r = self.rng.random()
        if r < 0.5:
            return self.rng.choice(["0.5", "2", "1.5", "0.1", "3", "0.25"])
        if r < 0.8:
            return self.rng.choice(["(0.1 * 3)", "sqrt(2)", "(1 / 3)", "(2 ^ 0.5)", "(-0.7)", "exp(0.5)"])
        return self.rng.choice(["1e-3", "0.3333333333333333", "7"])

    def fresh(self, prefix: str = "v") -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def floats(self, shapes: tuple | None = None) -> list[Value]:
        return [v for v in self.pool if v.is_float and (shapes is None or v.shape in shapes)]

    def pick(self, shapes: tuple | None = None) -> Value:
        return self.rng.choice(self.floats(shapes))

    # ------------------------------------------------------------ declarations
    def declare(self) -> None:
        k, m = self.k, self.m
        for shape in [(N, k), (k,), (1, k), (N, 1), ()]:
            if shape == (N, k) or self.rng.random() < 0.6:
                self.input(shape, self.dtype())
        if self.rng.random() < 0.5:
            self.input((N, k), self.rng.choice(["i32", "i64"]))
        if self.rng.random() < 0.3:
            self.input((N, 2, k), self.dtype())
        self.image = None  # an NCHW image for the convolution and pooling forms, kept out of the pool
        if self.rng.random() < 0.35:
            self.image = self.fresh("x")
            self.image_dtype = self.dtype()
            self.lines.append(f"input {self.image}: {self.image_dtype}[N, 2, 4, 4]")
        inits = ["normal(std=0.5)", "0.5", "xavier_uniform", "uniform(low=-1, high=1)", "he_normal"]
        for shape in [(k, m), (k,), (1, k), ()]:
            if self.rng.random() < 0.6:
                name = self.fresh("w")
                dtype = self.dtype()
                self.lines.append(f"param {name}: {dtype}{_shape_text(shape) if shape else ''} = "
                                  f"{self.rng.choice(inits)}")
                self.pool.append(Value(name, shape, dtype))

    def input(self, shape: tuple, dtype: str) -> Value:
        name = self.fresh("x")
        self.lines.append(f"input {name}: {dtype}{_shape_text(shape) if shape else ''}")
        value = Value(name, shape, dtype)
        self.pool.append(value)
        return value

    # ------------------------------------------------------------ expressions
    def expression(self) -> tuple[str, tuple, str]:
        """A random expression over the pool: its text, shape and dtype."""
        kind = self.rng.choice(["unary", "unary", "binary", "binary", "binary", "literal", "reduce", "matmul",
                                "transpose", "shape", "softmax", "layer", "int", "constant", "cut", "image"])
        return getattr(self, "_" + kind)()

    def _unary(self):
        a = self.pick()
        forms = [
            "exp(tanh({a}))", "log(abs({a}) + 0.5)", "sqrt(abs({a}) + 0.25)", "abs({a})",
            "clip({a}, low=-0.5, high=0.7)", "sigmoid({a})", "tanh({a})", "relu({a})", "leaky_relu({a}, alpha=0.2)",
            "gelu({a})", "gelu({a}, approximate=true)", "softplus({a}, beta=2)", "swish({a})", "-{a}",
            "{a} -> relu -> tanh", "(abs({a}) + 0.5) ^ 1.5", "dropout({a}, p=0.3)", "neg({a})",
            "pow(abs({a}) + 0.25, 2)", "log1p(abs({a}))", "expm1(tanh({a}))", "sin({a})", "cos({a})", "erf({a})",
            "softsign({a})", "elu({a})", "selu({a})", "celu({a}, alpha=2)", "hard_sigmoid({a} * 4)",
            "hard_swish({a} * 4)", "mish({a})", "sign({a}) * {a}",
        ]
        return self.rng.choice(forms).format(a=a.name), a.shape, a.dtype

    def _binary(self):
        a = self.pick()
        partners = [v for v in self.floats() if _broadcast(a.shape, v.shape) is not None]
        b = self.rng.choice(partners)
        form = self.rng.choice(["{a} + {b}", "{a} - {b}", "{a} * {b}", "{a} / (abs({b}) + 0.5)",
                                "(abs({a}) + 0.5) ^ tanh({b})", "{a} * {a} + {b}", "add({a}, {b})",
                                "sub({a}, mul({b}, 0.5))", "maximum({a}, {b})", "minimum({a}, {b})",
                                "where(gt({a}, {b}), {a}, {b} * 0.5)", "where(le({a}, 0.25), {b}, {a})",
                                "where(lt({a}, {b}), {b}, {a})", "where(eq(relu({a}), 0), {b}, {a} * 2)"])
        return form.format(a=a.name, b=b.name), _broadcast(a.shape, b.shape), _promote(a.dtype, b.dtype)

    def _literal(self):
        a = self.pick()
        if self.rng.random() < 0.25 and _broadcast(a.shape, (self.k,)) is not None:
            # a constant tensor written in the source: floats (the model's float dtype) or integers (i64)
            floats = self.rng.random() < 0.5
            entries = [self.rng.choice(["0.5", "-1.5", "2.25"] if floats else ["1", "-2", "3"]) for _ in range(self.k)]
            constant = "[" + ", ".join(entries) + "]"
            dtype = _promote(a.dtype, self.model_float()) if floats else a.dtype
            return f"{a.name} * {constant}", _broadcast(a.shape, (self.k,)), dtype
        form = self.rng.choice(["{c} * {a}", "{a} + {c}", "{a} / {c}", "{c} - {a}", "{a} * ({c} + {c2})",
                                "({a} - {c}) * {c2}"])
        return form.format(a=a.name, c=self.number(), c2=self.number()), a.shape, a.dtype

    def _constant(self):
        """A statement that is a number alone: a constant of the model's float dtype."""
        return self.number(), (), self.model_float()

    def _int(self):
        ints = [v for v in self.pool if not v.is_float]
        if not ints:
            return self._literal()
        i = self.rng.choice(ints)
        a = self.pick(((N, self.k), (self.k,), (1, self.k), ()))
        if self.rng.random() < 0.3 and i.shape and i.shape[0] == N:
            # a lookup by integer: rows of a table (an id outside it reads 0)
            if a.shape == (self.k,):
                return f"gather({a.name}, {i.name})", i.shape, a.dtype
            return f"sum({i.name} -> embedding({self.k}, 3), axis=-1)", i.shape, self.model_float()
        if self.rng.random() < 0.5 and a.shape and len(i.shape) == len(a.shape) and i.shape[0] == N:
            # lookups: a position found in a float tensor, and the one-hot row of an integer
            found = self.rng.choice(["argmax", "argmin"])
            return (f"{a.name} * one_hot({found}({i.name} + {a.name}, axis=-1), {self.k})",
                    _broadcast(a.shape, (N, self.k)), _promote(a.dtype, "f32"))
        form = self.rng.choice(["{a} * {i}", "{i} * 0.1 + {a}", "{a} - ({i} + 1)", "({i} * 2) * {a}"])
        dtype = _promote(a.dtype, i.dtype)
        if form.startswith("{i} * 0.1"):
            dtype = _promote(a.dtype, self.model_float())
        return form.format(a=a.name, i=i.name), _broadcast(a.shape, i.shape), dtype

    def model_float(self) -> str:
        """The model's float dtype: f64 when every declared float is f64, else f32."""
        declared = {v.dtype for v in self.pool if v.name[0] in "xw" and v.is_float}
        return "f64" if declared == {"f64"} else "f32"

    def _reduce(self):
        a = self.pick()
        op = self.rng.choice(["sum", "mean", "max", "min", "logsumexp"])
        if not a.shape or self.rng.random() < 0.3:
            return f"{op}({a.name})", (), a.dtype
        axis = self.rng.randrange(-len(a.shape), len(a.shape))
        keep = self.rng.random() < 0.4
        shape = list(a.shape)
        if keep:
            shape[axis] = 1
        else:
            del shape[axis]
        return f"{op}({a.name}, axis={axis}{', keepdims=true' if keep else ''})", tuple(shape), a.dtype

    def _matmul(self):
        k, m = self.k, self.m
        a = self.pick(((N, k), (k,), (1, k), (N, 2, k)))
        weights = [v for v in self.floats(((k, m), (k,)))]
        if not weights:
            return self._binary()
        w = self.rng.choice(weights)
        dtype = _promote(a.dtype, w.dtype)
        if len(a.shape) == 3 and self.rng.random() < 0.5 and len(w.shape) == 2:  # batch dims that broadcast
            w_text = f"reshape({w.name}, shape=[1, {k}, {m}])"
            return f"{a.name} @ {w_text}", (N, 2, m), dtype
        shape = a.shape[:-1] + w.shape[1:]
        form = self.rng.choice(["{a} @ {w}", "matmul({a}, {w})"])
        return form.format(a=a.name, w=w.name), shape, dtype

    def _transpose(self):
        a = self.pick(((N, self.k), (1, self.k), (N, 1), (N, 2, self.k)))
        rank = len(a.shape)
        if rank == 3:
            perm = self.rng.choice([[0, 2, 1], [0, 1, 2], [-3, -2, -1]])
        else:
            perm = self.rng.choice([[1, 0], [0, 1], [-2, -1], [-1, -2]])
        shape = tuple(a.shape[p] for p in perm)
        if rank == 2 and perm in ([1, 0], [-1, -2]) and self.rng.random() < 0.6:
            # x^T x: a product through a swapped operand
            return f"transpose({a.name}, {perm}) @ {a.name}", (a.shape[1], a.shape[1]), a.dtype
        return f"transpose({a.name}, {perm})", shape, a.dtype

    def _cut(self):
        """Slices, pads and concatenations along the last axis that keep the pool's shapes: a rotation, a
        reversal, a shift, a strided gather joined back, or one column kept as an axis of size 1."""
        a = self.pick(((N, self.k), (1, self.k), (self.k,), (N, 2, self.k)))
        k = self.k
        forms = [
            (f"concat({a.name}[..., 1:], {a.name}[..., :1], axis=-1)", a.shape),
            (f"{a.name}[..., ::-1]", a.shape),
            (f"pad({a.name}[..., 1:], 1, 0, value={self.rng.choice(['0', '0.5', '-1'])})", a.shape),
            (f"concat({a.name}[..., ::2], {a.name}[..., 1::2])", a.shape),
            (f"{a.name}[..., {self.rng.randrange(-k, k)}][..., none]", (*a.shape[:-1], 1)),
            (f"squeeze(unsqueeze({a.name}, 1), 1)", a.shape),
            (f"expand({a.name}[..., :1], shape={_shape_text(a.shape)})", a.shape),
            (f"tile({a.name}[..., 1:2], {k})", a.shape),
            (f"flatten(unsqueeze({a.name}, -1), start=-2)", a.shape),
            (f"sum(stack({a.name}, {a.name}[..., ::-1], axis=0), axis=0)", a.shape),
            (f"cumsum({a.name}, axis=-1)", a.shape),
            (f"pad({a.name}, 1, 0, mode=reflect)[..., :-1]", a.shape),
        ]
        text, shape = self.rng.choice(forms)
        return text, shape, a.dtype

    def _shape(self):
        a = self.pick(((N, self.k), (N, 2, self.k)))
        if len(a.shape) == 3:
            return f"reshape({a.name}, shape=[-1, {2 * self.k}])", (N, 2 * self.k), a.dtype
        return f"reshape({a.name}, shape=[N, {self.k}, 1])", (N, self.k, 1), a.dtype

    def _softmax(self):
        a = self.pick(((N, self.k), (N, self.m), (1, self.k)))
        op = self.rng.choice(["softmax", "log_softmax"])
        axis = self.rng.choice([-1, 0])
        return f"{op}({a.name}, axis={axis})", a.shape, a.dtype

    def _layer(self):
        a = self.pick(((N, self.k), (N, self.m)))
        units = self.rng.choice([2, 3])
        form = self.rng.choice([f"dense({units})", "layernorm", "batchnorm", f"dense({units}, bias=false) -> tanh"])
        shape = (N, units) if form.startswith("dense") else a.shape
        return f"{a.name} -> {form}", shape, a.dtype

    def _image(self):
        """Convolutions and pools of the image, summed to [N, k] by a global pool; or of the [N, 2, k] input read
        as channels (conv1d), as a sequence of 2 steps (the recurrent layers, scans with reverse scans as
        gradients) or as queries, keys and values (attention)."""
        sequences = [v for v in self.pool if v.shape == (N, 2, self.k)]
        if sequences and self.rng.random() < 0.7:
            value, k = self.rng.choice(sequences), self.k
            x = value.name
            form = self.rng.choice([f"mean({x} -> conv1d({k}, 2, padding=same), axis=-1)",
                                    f"mean({x} -> conv1d({k}, 3, padding=2, dilation=2, bias=false), axis=-1)",
                                    f"{x} -> rnn({k}, activation=relu)",
                                    f"mean({x} -> lstm({k}, return_sequences=true), axis=1)",
                                    f"mean(reshape({x} -> gru({k}, bidirectional=true), shape=[N, 2, {k}]), axis=1)",
                                    f"mean(attention({x} -> learned_positions, tanh({x}), {x}), axis=1)",
                                    f"mean(attention({x}, {x}, sigmoid({x}), causal=true, scale=0.5), axis=1)",
                                    f"mean({x} -> sinusoidal_positions -> multi_head_attention(heads=1, dim={k}, "
                                    "causal=true), axis=1)",
                                    f"mean({x} -> multi_head_attention(heads=1, dim={k}, bias=false), axis=1)"])
            return form, (N, k), value.dtype
        if self.image is None:
            return self._literal()
        k, img = self.k, self.image
        forms = [
            f"global_avg_pool({img} -> conv2d({k}, 3, padding=same) -> relu)",
            f"global_max_pool({img} -> conv2d({k}, 2, stride=2, groups=2, bias=false))",
            f"global_avg_pool({img} -> max_pool2d(2) -> conv_transpose2d({k}, 2, stride=2))",
            f"global_max_pool({img} -> max_pool2d(3, stride=2, padding=1, ceil_mode=true) -> conv2d({k}, 1))",
            f"global_avg_pool({img} -> avg_pool2d(3, stride=1, padding=1) -> conv2d({k}, 3, dilation=2, "
            "padding=2))",
            f"global_avg_pool(upsample({img}) -> conv2d({k}, 3, stride=2) -> tanh)",
            f"global_max_pool({img} -> conv_transpose2d({k}, 3, padding=1) -> batchnorm(axis=1))",
        ]
        return self.rng.choice(forms), (N, k), self.image_dtype

    # ------------------------------------------------------------ statements
    def statements(self, count: int) -> None:
        for _ in range(count):
            if self.rng.random() < 0.04:  # a statement with two results
                a = self.pick(((N, self.k), (1, self.k), (self.k,)))
                first, second = self.fresh(), self.fresh()
                self.lines.append(f"{first}, {second} = split(concat({a.name}, {a.name}[..., ::-1]), 2)")
                self.pool += [Value(first, a.shape, a.dtype), Value(second, a.shape, a.dtype)]
                continue
            text, shape, dtype = self.expression()
            if len(shape) > 2 and N not in shape[:1]:
                continue
            name = self.fresh()
            self.lines.append(f"{name} = {text}")
            self.pool.append(Value(name, shape, dtype))

    def finish(self) -> None:
        """Outputs, then a loss from a random family (with the targets it needs declared as inputs)."""
        k = self.k
        computed = [v for v in self.pool if v.name.startswith("v")]
        for v in self.rng.sample(computed, min(2, len(computed))):
            self.lines.append(f"output o_{v.name} = {v.name}")
        family = self.rng.choice(["mean", "mse", "mae", "huber", "bce", "bce_logits", "cross_entropy", "hinge",
                                  "kl", "l2", "sum_sq", "nll"])
        v = self.pick(((N, k), (N, self.m)) if family in ("cross_entropy", "hinge", "kl", "nll") else None)
        if family in ("cross_entropy", "hinge", "nll"):
            labels = self.fresh("y")
            self.lines.append(f"input {labels}: {self.rng.choice(['i32', 'i64'])}[N]")
            scores = f"log_softmax({v.name})" if family == "nll" else v.name
            loss = f"{family}({scores}, {labels})"
        elif family in ("mse", "mae", "huber", "bce", "bce_logits", "kl"):
            target = self.fresh("t")
            self.lines.append(f"input {target}: {self.dtype()}{_shape_text(v.shape) if v.shape else ''}")
            loss = {
                "mse": f"mse({v.name}, {target})",
                "mae": f"mae({v.name}, {target})",
                "huber": f"huber({v.name}, {target}, delta=0.5)",
                "bce": f"bce(sigmoid({v.name}), {target})",
                "bce_logits": f"bce_with_logits({v.name}, {target})",
                "kl": f"kl_div(softmax({v.name}), {target})",
            }[family]
        elif family == "l2":
            weights = [w for w in self.pool if w.name.startswith("w")] or [v]
            loss = f"mean({v.name}) + l2({self.rng.choice(weights).name}) * 0.01"
        elif family == "sum_sq":
            loss = f"sum({v.name} * {v.name}) * {self.number()}"
        else:
            loss = f"mean({v.name})"
        self.lines.append(f"loss L = {loss}")


def random_model(seed: int) -> str:
    """The text of a random valid model; the same seed always gives the same text."""
    writer = ModelWriter(seed)
    writer.declare()
    writer.statements(writer.rng.randint(3, 9))
    writer.finish()
    return "\n".join(writer.lines) + "\n"


if __name__ == "__main__":
    print(random_model(int(sys.argv[1])), end="")
