"""Global gradient-norm clipping as a graph pass, right after autodiff: the parameters' gradients are scaled by
``max_norm / max(norm, max_norm)``, where ``norm`` is the Euclidean norm of all of them together (PyTorch's
``clip_grad_norm_``). The scale is 1 while the norm stays within ``max_norm``, so a step changes only when the
gradients are larger; their direction is kept. The norm and the scale are ordinary nodes of the training step
(the sums of squares fuse into the loops that produce the gradients), so clipping costs no separate pass over
the parameters. Gradients with respect to inputs are left as they are.
"""

from __future__ import annotations

from collections.abc import Callable

from ..builder import Builder, Ref
from ..graph import Graph


def clip_gradient_norm(max_norm: float) -> Callable[[Graph], Graph]:
    """A pass scaling the parameters' gradients so that their global norm is at most ``max_norm`` (0: off)."""

    def clip(graph: Graph) -> Graph:
        g = graph.copy()
        params = g.params()
        names = [name for name in g.grads if name in params]
        if max_norm == 0.0 or not names:
            return g
        b = Builder(g)
        objective = g.node(g.objective) if g.objective is not None else None
        where = (objective.line, objective.col) if objective is not None else (None, None)
        with b.at(*where, origin="clip_norm"):
            squares = None
            for name in names:
                grad = Ref(g.grads[name])
                part = b.cast_to(b.sum(b.mul(grad, grad)), g.float_dtype)
                squares = part if squares is None else b.add(squares, part)
            norm = b.sqrt(squares)
            scale = b.div(max_norm, b.maximum(norm, max_norm))
            for name in names:
                g.grads[name] = b.mul(Ref(g.grads[name]), b.cast_to(scale, b.type(Ref(g.grads[name])).dtype))
        return g

    return clip
