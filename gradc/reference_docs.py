"""Generate the reference sections of docs/language.md from the registries, so the doc stays true.

    python -m gradc.reference_docs docs/language.md          # rewrite the generated sections
    python -m gradc.reference_docs docs/language.md --check  # exit 1 if they are stale

A generated section sits between ``<!-- begin NAME -->`` and ``<!-- end NAME -->``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from gradc.compiler.initializers import INITIALIZERS
from gradc.compiler.layers import LAYERS
from gradc.compiler.ops import public_ops
from gradc.compiler.ops.registry import AttrSpec
from gradc.dsl.parser import GRAMMAR_PATH
from gradc.dsl.train_schema import OPTIMIZERS, SCHEDULES, TRAIN_KEYS

CATEGORY_TITLES = {
    "elementwise": "Elementwise (NumPy broadcasting; gradients are summed over broadcast axes)",
    "reduction": "Reductions",
    "linalg": "Linear algebra",
    "shape": "Shape",
    "nn": "Neural-network ops",
    "loss": "Losses (each returns a scalar)",
}


def _attr(spec: AttrSpec) -> str:
    if spec.required:
        return f"`{spec.name}` ({spec.kind})"
    default = spec.default
    shown = "none" if default is None else str(default).lower() if isinstance(default, bool) else default
    return f"`{spec.name}={shown}` ({spec.kind})"


def render_ops() -> str:
    out = []
    ops = public_ops()
    for category, title in CATEGORY_TITLES.items():
        members = [op for op in ops if op.category == category]
        if not members:
            continue
        out += [f"#### {title}", "", "| op | attributes | shape | formula |", "|---|---|---|---|"]
        for op in members:
            attrs = ", ".join(_attr(a) for a in op.attrs) or "-"
            operands = ", ".join(op.operand_signature)
            out.append(f"| `{op.name}({operands})` | {attrs} | {op.shape_rule} | {op.formula} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def render_layers() -> str:
    out = ["| layer | arguments | computes | parameters |", "|---|---|---|---|"]
    for layer in LAYERS.values():
        arguments = [*(_attr(a) for a in layer.attrs), *(f"`{t.name}=` (tensor)" for t in layer.tensors)]
        out.append(f"| `{layer.name}` | {', '.join(arguments)} | {layer.formula} | "
                   f"{layer.params} |")
    return "\n".join(out) + "\n"


def render_initializers() -> str:
    out = ["| initializer | arguments | distribution |", "|---|---|---|"]
    for init in INITIALIZERS.values():
        args = ", ".join(_attr(a) for a in init.attrs) or "-"
        out.append(f"| `{init.name}` | {args} | {init.formula} |")
    return "\n".join(out) + "\n"


def render_train() -> str:
    out = ["| key | default | meaning |", "|---|---|---|"]
    for key, spec in TRAIN_KEYS.items():
        out.append(f"| `{key}` | `{spec.default}` | {spec.doc} |")
    out += ["", "| optimizer | arguments and defaults |", "|---|---|"]
    out += [f"| `{name}` | {', '.join(f'{k}={v:g}' for k, v in args.items())} |" for name, args in OPTIMIZERS.items()]
    out += ["", "| schedule | arguments and defaults |", "|---|---|"]
    out += [f"| `{name}` | {', '.join(f'{k}={v:g}' for k, v in args.items()) or '-'} |"
            for name, args in SCHEDULES.items()]
    return "\n".join(out) + "\n"


def render_grammar() -> str:
    return "```lark\n" + GRAMMAR_PATH.read_text().rstrip() + "\n```\n"


SECTIONS: dict[str, Callable[[], str]] = {
    "ops": render_ops,
    "layers": render_layers,
    "initializers": render_initializers,
    "train": render_train,
    "grammar": render_grammar,
}


def regenerate(text: str) -> str:
    for name, render in SECTIONS.items():
        pattern = re.compile(rf"(<!-- begin {name} -->\n).*?(<!-- end {name} -->)", re.DOTALL)
        if not pattern.search(text):
            raise ValueError(f"no generated section '{name}' in the document")
        body = render()
        text = pattern.sub(lambda m, body=body: m.group(1) + body + m.group(2), text)
    return text


def main(argv: list[str]) -> int:
    path = Path(argv[0])
    text = path.read_text()
    fresh = regenerate(text)
    if "--check" in argv:
        if fresh != text:
            print(f"{path} is stale: run python -m gradc.reference_docs {path}", file=sys.stderr)
            return 1
        return 0
    path.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
