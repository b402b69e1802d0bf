"""Losses. Each returns a scalar and averages over the batch:

- elementwise losses (mse, mae, huber, bce, bce_with_logits) average over every element;
- class losses (cross_entropy, hinge) and kl_div sum over the last axis (the classes) and average over
  the others;
- l2 is a penalty, 0.5 * sum(x^2), with nothing to average.

Prediction and target must have the same shape (no silent broadcasting of [N,1] against [N]).
"""

from __future__ import annotations

import numpy as np

from gradc.dsl.diagnostics import DataError, ShapeError

from ..constants import EPS, LOG_FLOOR
from ..types import TensorType, promote
from .elementwise import _softplus
from .nn import log_softmax_forward
from .registry import AttrSpec, OpDef, register


def _scalar(t: TensorType) -> TensorType:
    return TensorType((), t.dtype)


def paired_type(name: str, float_target: bool = True):
    def infer(types: list[TensorType], attrs: dict) -> TensorType:
        pred, target = types
        if not pred.is_float:
            raise ShapeError(f"{name} expects a floating-point prediction, got {pred}")
        if float_target and not target.is_float:
            raise ShapeError(f"{name} expects a floating-point target, got {target}")
        if pred.shape != target.shape:
            raise ShapeError(f"{name}: prediction {pred} and target {target} must have the same shape")
        return TensorType((), promote(pred.dtype, target.dtype))

    return infer


def labelled_type(name: str):
    def infer(types: list[TensorType], attrs: dict) -> TensorType:
        scores, labels = types
        if not scores.is_float or scores.rank == 0:
            raise ShapeError(f"{name} expects floating-point scores with a class axis, got {scores}")
        if labels.is_float or labels.is_bool:
            raise ShapeError(f"{name} expects integer class labels, got {labels} (declare them i32 or i64)")
        if labels.shape != scores.shape[:-1]:
            raise ShapeError(
                f"{name}: labels {labels} do not match scores {scores}: expected labels of shape "
                f"[{','.join(str(d) for d in scores.shape[:-1])}]"
            )
        return _scalar(scores)

    return infer


def check_labels(name: str, labels: np.ndarray, classes: int) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        bad = labels.min() if labels.min() < 0 else labels.max()
        raise DataError(f"{name}: label {bad} is out of range [0, {classes})")


def batch_axes(b, x):
    """The axes a class loss averages over: all but the last."""
    return tuple(range(b.type(x).rank - 1))


def per_element(b, n, g, x):
    """g / (number of elements of x): the factor an elementwise mean puts on each element's gradient."""
    return b.div(g, b.shape_size(x))


def per_example(b, n, g, x):
    return b.div(g, b.shape_size(x, axis=batch_axes(b, x)))


def mean_over_rows(b, terms, like, scale: float = 1.0):
    """``scale`` times the sum of ``terms`` over the last axis, averaged over the other axes (the rows) of
    ``like``: one fused mean when the class axis has a fixed size (sum / rows = C * mean), else a sum divided by
    the row count read at run time."""
    classes = b.type(like).shape[-1] if b.type(like).rank else 1
    if isinstance(classes, int):
        return b.mean(b.mul(terms, scale * classes))
    return b.mul(b.div(b.sum(terms), b.shape_size(like, axis=batch_axes(b, like))), scale)


def loss(name: str, operands, infer, forward, grad, formula: str, attrs=(), domains=None, casts=(),
         decompose=None) -> OpDef:
    """A loss; ``casts`` names the operands converted to the loss's dtype first (prediction and target of the
    paired losses, whose dtype is the promotion of both). ``decompose`` builds it from primitives (every loss
    is a composite: the targets lower its pieces as fused loops)."""
    return register(
        OpDef(
            name=name,
            operands=operands,
            infer=infer,
            forward=forward,
            grad=grad,
            attrs=attrs,
            category="loss",
            flops=lambda ts, out, at: 4 * ts[0].numel(),
            domains=domains or {},
            formula=formula,
            shape_rule="scalar",
            casts=casts,
            decompose=decompose,
        )
    )


# ---------------------------------------------------------------- regression


def _mse_grad(b, n, g):
    p, t = n.inputs
    scaled = lambda: b.mul(b.sub(p, t), b.mul(per_element(b, n, g, p), 2.0))
    return [scaled, lambda: b.neg(scaled())]


loss(
    "mse",
    ("prediction", "target"),
    paired_type("mse"),
    lambda a, at: np.mean((a[0] - a[1]) ** 2),
    _mse_grad,
    "mean((prediction - target)^2)",
    casts=(0, 1),
    decompose=lambda b, n: b.mean(b.mul(b.sub(*n.inputs), b.sub(*n.inputs))),
)


def _mae_grad(b, n, g):
    p, t = n.inputs
    scaled = lambda: b.mul(b.sign(b.sub(p, t)), per_element(b, n, g, p))
    return [scaled, lambda: b.neg(scaled())]


loss(
    "mae",
    ("prediction", "target"),
    paired_type("mae"),
    lambda a, at: np.mean(np.abs(a[0] - a[1])),
    _mae_grad,
    "mean(|prediction - target|)",
    casts=(0, 1),
    decompose=lambda b, n: b.mean(b.abs(b.sub(*n.inputs))),
)


def _huber_forward(args, attrs):
    r = np.abs(args[0] - args[1])
    d = attrs["delta"]
    return np.mean(np.where(r <= d, 0.5 * r * r, d * (r - 0.5 * d)))


def _huber_grad(b, n, g):
    p, t = n.inputs
    d = n.attrs["delta"]
    scaled = lambda: b.mul(b.clip(b.sub(p, t), low=-d, high=d), per_element(b, n, g, p))
    return [scaled, lambda: b.neg(scaled())]


def _huber_decomposition(b, n):
    # with a = min(r, delta): a (r - a/2) is r^2/2 where r <= delta and delta (r - delta/2) beyond
    r = b.abs(b.sub(*n.inputs))
    a = b.clip(r, low=0.0, high=n.attrs["delta"])
    return b.mean(b.mul(a, b.sub(r, b.mul(a, 0.5))))


loss(
    "huber",
    ("prediction", "target"),
    paired_type("huber"),
    _huber_forward,
    _huber_grad,
    "mean of 0.5 r^2 where |r| <= delta, else delta (|r| - delta/2), r = prediction - target",
    attrs=(AttrSpec("delta", "float", 1.0),),
    casts=(0, 1),
    decompose=_huber_decomposition,
)

# ---------------------------------------------------------------- binary classification


def _clamped_log(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.maximum(np.log(x), LOG_FLOOR)


def _bce_forward(args, attrs):
    p, y = args
    return -np.mean(y * _clamped_log(p) + (1.0 - y) * _clamped_log(1.0 - p))


def _bce_grad(b, n, g):
    p, y = n.inputs
    return [
        lambda: b.mul(b.bce_grad(p, y), per_element(b, n, g, p)),
        lambda: b.mul(b.neg(b.logit(p)), per_element(b, n, g, p)),
    ]


def _bce_decomposition(b, n):
    p, y = n.inputs
    both = b.add(b.mul(y, b.clamped_log(p)), b.mul(b.sub(1.0, y), b.clamped_log(b.sub(1.0, p))))
    return b.mean(b.neg(both))


loss(
    "bce",
    ("probability", "target"),
    paired_type("bce"),
    _bce_forward,
    _bce_grad,
    "-mean(y log p + (1 - y) log(1 - p)), logs clamped at -100; multi-label when p has a class axis",
    domains={0: "probability", 1: "probability"},
    casts=(0, 1),
    decompose=_bce_decomposition,
)
register(
    OpDef(
        name="clamped_log",
        operands=("x",),
        infer=lambda ts, at: ts[0],
        forward=lambda a, at: _clamped_log(a[0]),
        category="internal",
        public=False,
        formula="log x, clamped at -100 (also for x <= 0)",
        shape_rule="same as x",
        scalar="clamped_log({x})",
    )
)
register(
    OpDef(
        name="bce_grad",
        operands=("p", "y"),
        infer=lambda ts, at: ts[0],
        forward=lambda a, at: (a[0] - a[1]) / np.maximum(a[0] * (1.0 - a[0]), EPS),
        category="internal",
        public=False,
        formula="(p - y) / (p (1 - p))",
        shape_rule="same as p",
        scalar="bce_grad({p}, {y})",
    )
)
register(
    OpDef(
        name="logit",
        operands=("p",),
        infer=lambda ts, at: ts[0],
        forward=lambda a, at: _clamped_log(a[0]) - _clamped_log(1.0 - a[0]),
        category="internal",
        public=False,
        formula="log p - log(1 - p), logs clamped at -100",
        shape_rule="same as p",
        scalar="logit({p})",
    )
)


def _bce_logits_forward(args, attrs):
    z, y = args
    return np.mean(_softplus(z) - y * z)


def _bce_logits_grad(b, n, g):
    z, y = n.inputs
    return [
        lambda: b.mul(b.sub(b.sigmoid(z), y), per_element(b, n, g, z)),
        lambda: b.mul(b.neg(z), per_element(b, n, g, z)),
    ]


loss(
    "bce_with_logits",
    ("logits", "target"),
    paired_type("bce_with_logits"),
    _bce_logits_forward,
    _bce_logits_grad,
    "mean(softplus(z) - y z) = bce(sigmoid(z), y), computed without overflow",
    domains={1: "probability"},
    casts=(0, 1),
    decompose=lambda b, n: b.mean(b.sub(b.softplus(n.inputs[0]), b.mul(n.inputs[1], n.inputs[0]))),
)

# ---------------------------------------------------------------- multiclass


def _smoothed_target(labels: np.ndarray, classes: int, smoothing: float, dtype) -> np.ndarray:
    onehot = (labels[..., None] == np.arange(classes)).astype(dtype)
    return onehot * (1.0 - smoothing) + smoothing / classes


def _cross_entropy_forward(args, attrs):
    x, labels = args
    classes = x.shape[-1]
    check_labels("cross_entropy", labels, classes)
    if attrs["from_logits"]:
        logp = log_softmax_forward(x, -1)
    else:
        logp = _clamped_log(x)
    target = _smoothed_target(labels, classes, attrs["label_smoothing"], x.dtype)
    return -np.mean(np.sum(target * logp, axis=-1))


def smoothed_target(b, labels, x, smoothing: float):
    """The one-hot target of ``labels`` in the shape of the scores ``x``, smoothed to (1-s) onehot + s/C."""
    onehot = b.onehot(labels, x)
    if smoothing == 0.0:
        return onehot
    return b.add(b.mul(onehot, 1.0 - smoothing), smoothing / b.type(x).shape[-1])


def _cross_entropy_decomposition(b, n):
    x, labels = n.inputs
    log_p = b.log_softmax(x, axis=-1) if n.attrs["from_logits"] else b.clamped_log(x)
    target = smoothed_target(b, labels, x, n.attrs["label_smoothing"])
    return mean_over_rows(b, b.mul(target, log_p), x, scale=-1.0)


def _cross_entropy_grad(b, n, g):
    x, labels = n.inputs
    smoothing = n.attrs["label_smoothing"]

    def target():
        return smoothed_target(b, labels, x, smoothing)

    def grad_scores():
        if n.attrs["from_logits"]:
            return b.mul(b.sub(b.softmax(x, axis=-1), target()), per_example(b, n, g, x))
        return b.mul(b.neg(b.div(target(), x)), per_example(b, n, g, x))

    return [grad_scores, None]


def _normalize_cross_entropy(types, attrs):
    if not 0.0 <= attrs["label_smoothing"] < 1.0:
        raise ShapeError(f"cross_entropy: label_smoothing must be in [0, 1), got {attrs['label_smoothing']}")
    return attrs


register(
    OpDef(
        name="cross_entropy",
        operands=("scores", "labels"),
        infer=labelled_type("cross_entropy"),
        forward=_cross_entropy_forward,
        grad=_cross_entropy_grad,
        attrs=(
            AttrSpec("label_smoothing", "float", 0.0),
            AttrSpec("from_logits", "bool", True, doc="false: scores are probabilities"),
        ),
        normalize=_normalize_cross_entropy,
        category="loss",
        flops=lambda ts, out, at: 6 * ts[0].numel(),
        domains={1: "labels"},
        formula="-mean(sum(t * log_softmax(scores))), t the one-hot label smoothed to (1-s) t + s/C",
        shape_rule="scalar; labels have the shape of scores without its last axis",
        decompose=_cross_entropy_decomposition,
    )
)


def _hinge_forward(args, attrs):
    s, labels = args
    check_labels("hinge", labels, s.shape[-1])
    correct = np.take_along_axis(s, labels[..., None], axis=-1)
    margins = np.maximum(0.0, s - correct + attrs["delta"])
    margins = np.where(np.arange(s.shape[-1]) == labels[..., None], 0.0, margins)
    return np.mean(np.sum(margins, axis=-1))


def _hinge_grad_forward(args, attrs):
    s, labels = args
    correct = np.take_along_axis(s, labels[..., None], axis=-1)
    is_label = np.arange(s.shape[-1]) == labels[..., None]
    active = ((s - correct + attrs["delta"]) > 0) & ~is_label
    active = active.astype(s.dtype)
    return active - is_label * np.sum(active, axis=-1, keepdims=True)


def _nll_forward(args, attrs):
    log_p, labels = args
    check_labels("nll", labels, log_p.shape[-1])
    return -np.mean(np.take_along_axis(log_p, labels[..., None], axis=-1))


loss(
    "nll",
    ("log_probabilities", "labels"),
    labelled_type("nll"),
    _nll_forward,
    lambda b, n, g: [lambda: b.mul(b.neg(b.onehot(n.inputs[1], n.inputs[0])), per_example(b, n, g, n.inputs[0])),
                     None],
    "-mean(log_probabilities[label]): the negative log-likelihood of the labels (after log_softmax)",
    domains={1: "labels"},
    decompose=lambda b, n: mean_over_rows(b, b.mul(b.onehot(n.inputs[1], n.inputs[0]), n.inputs[0]), n.inputs[0],
                                          scale=-1.0),
)


def _hinge_parts(b, n):
    """The one-hot of the labels, and each score's margin s_j - s_label + delta."""
    scores, labels = n.inputs
    onehot = b.onehot(labels, scores)
    correct = b.sum(b.mul(onehot, scores), axis=-1, keepdims=True)
    return onehot, b.add(b.sub(scores, correct), n.attrs["delta"])


def _hinge_decomposition(b, n):
    onehot, margin = _hinge_parts(b, n)
    return mean_over_rows(b, b.mul(b.relu(margin), b.sub(1.0, onehot)), n.inputs[0])


def _hinge_grad_decomposition(b, n):
    onehot, margin = _hinge_parts(b, n)
    active = b.mul(b.step(margin), b.sub(1.0, onehot))
    return b.sub(active, b.mul(onehot, b.sum(active, axis=-1, keepdims=True)))


loss(
    "hinge",
    ("scores", "labels"),
    labelled_type("hinge"),
    _hinge_forward,
    lambda b, n, g: [
        lambda: b.mul(b.hinge_grad(*n.inputs, delta=n.attrs["delta"]), per_example(b, n, g, n.inputs[0])),
        None,
    ],
    "mean over examples of sum over j != label of max(0, s_j - s_label + delta) (multiclass SVM)",
    attrs=(AttrSpec("delta", "float", 1.0),),
    domains={1: "labels"},
    decompose=_hinge_decomposition,
)
register(
    OpDef(
        name="hinge_grad",
        operands=("scores", "labels"),
        infer=lambda ts, at: ts[0],
        forward=_hinge_grad_forward,
        attrs=(AttrSpec("delta", "float", 1.0),),
        category="internal",
        public=False,
        formula="d hinge / d scores for one example",
        shape_rule="same as scores",
        decompose=_hinge_grad_decomposition,
    )
)


def _kl_terms(q: np.ndarray, p: np.ndarray) -> np.ndarray:
    safe_p = np.where(p > 0, p, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, p * (np.log(safe_p) - np.log(q)), 0.0).astype(np.result_type(q, p))


def _kl_forward(args, attrs):
    return np.mean(np.sum(_kl_terms(*args), axis=-1))


def _ranked(result: TensorType, t: TensorType, name: str) -> TensorType:
    if t.rank == 0:
        raise ShapeError(f"{name} expects distributions along a last axis, got {t}")
    return result


def _kl_grad(b, n, g):
    q, p = n.inputs
    return [
        lambda: b.mul(b.neg(b.div(p, q)), per_example(b, n, g, q)),
        lambda: b.mul(b.add(b.sub(b.log(p), b.log(q)), 1.0), per_example(b, n, g, q)),
    ]


register(
    OpDef(
        name="kl_term",
        operands=("q", "p"),
        infer=lambda ts, at: ts[0],
        forward=lambda a, at: _kl_terms(a[0], a[1]),
        category="internal",
        public=False,
        formula="p (log p - log q), 0 where p = 0",
        shape_rule="same as q",
        scalar="({p} * (math.log({p}) - math.log({q})) if {p} > 0 else 0.0)",
    )
)

loss(
    "kl_div",
    ("prediction", "target"),
    lambda ts, at: _ranked(paired_type("kl_div")(ts, at), ts[0], "kl_div"),
    _kl_forward,
    _kl_grad,
    "KL(target || prediction) = mean over examples of sum(t (log t - log q)) over the last axis",
    domains={0: "distribution", 1: "distribution"},
    casts=(0, 1),
    decompose=lambda b, n: mean_over_rows(b, b.kl_term(*n.inputs), n.inputs[0]),
)


def _l2_type(types: list[TensorType], attrs: dict) -> TensorType:
    (x,) = types
    if not x.is_float:
        raise ShapeError(f"l2 expects a floating-point tensor, got {x}")
    return _scalar(x)


loss(
    "l2",
    ("x",),
    _l2_type,
    lambda a, at: 0.5 * np.sum(a[0] * a[0]),
    lambda b, n, g: [lambda: b.mul(n.inputs[0], g)],
    "0.5 * sum(x^2), a weight penalty",
    decompose=lambda b, n: b.sum(b.mul(b.mul(n.inputs[0], n.inputs[0]), 0.5)),
)
