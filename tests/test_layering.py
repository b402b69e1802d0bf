"""The data flows one way: the module-level imports between gradc's own modules form no cycle, no stage
imports a later one, runtime/execution does not import runtime/training, and runtime/ reaches the compiler's
stages only through the compile driver. Read statically from the sources (imports inside functions and under
``if TYPE_CHECKING:`` do not count: they run later, or never)."""

from __future__ import annotations

import ast

import networkx as nx
import pytest
from conftest import ROOT

PACKAGES = {"gradc": "gradc", "dsl": "gradc.dsl", "compiler": "gradc.compiler", "runtime": "gradc.runtime"}

# What runtime/ may import from the compiler besides the driver: the shared vocabulary (the graph IR, types, the
# op, optimizer and initializer registries), the graph's JSON form (the compile cache's key), and the kernel
# library the cuda backend's device buffers come from (see docs/architecture.md).
COMPILER_VOCABULARY = {
    "gradc.compiler", "gradc.compiler.driver", "gradc.compiler.graph", "gradc.compiler.types",
    "gradc.compiler.ops.registry", "gradc.compiler.optimizers", "gradc.compiler.initializers",
    "gradc.compiler.printers.json_format", "gradc.compiler.lower.cuda_lib", "gradc.compiler.lower",
    "gradc.compiler.binding",  # the sizes of a model's symbolic lengths in its data, read off the input types
}


def _module_name(path) -> str:
    relative = path.relative_to(ROOT)
    parts = list(relative.with_suffix("").parts)
    package = PACKAGES[parts[0]]
    rest = [p for p in parts[1:] if p != "__init__"]
    return ".".join([package, *rest])


def _top_level_imports(tree: ast.Module, module: str, is_package: bool, modules: set[str]) -> set[str]:
    found: set[str] = set()

    def visit(statements):
        for node in statements:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[:len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module
                found.update(f"{target}.{alias.name}" for alias in node.names)
                if not all(f"{target}.{alias.name}" in modules for alias in node.names):
                    found.add(target)  # names from the module itself, not only its submodules
            elif isinstance(node, ast.If | ast.Try):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(tree.body)
    return found


@pytest.fixture(scope="module")
def imports() -> nx.DiGraph:
    graph = nx.DiGraph()
    files = [p for folder in PACKAGES for p in (ROOT / folder).rglob("*.py")]
    names = {_module_name(p): p for p in files}
    for name, path in names.items():
        graph.add_node(name)
        targets = _top_level_imports(ast.parse(path.read_text()), name, path.name == "__init__.py", set(names))
        for target in targets:
            if target in names and target != name:
                graph.add_edge(name, target)
    return graph


def test_the_module_imports_form_no_cycle(imports):
    cycles = list(nx.simple_cycles(imports))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join([*c, c[0]]) for c in cycles[:5])


@pytest.mark.parametrize(("importer", "imported"), [
    ("gradc.dsl", "gradc.compiler"), ("gradc.dsl", "gradc.runtime"), ("gradc.compiler", "gradc.runtime"),
    ("gradc.runtime.execution", "gradc.runtime.training"),
])
def test_no_stage_imports_a_later_one(imports, importer, imported):
    wrong = [(a, b) for a, b in imports.edges if a.startswith(importer + ".") and b.startswith(imported)]
    assert not wrong, wrong


def test_runtime_reaches_the_compiler_stages_only_through_the_driver(imports):
    wrong = [(a, b) for a, b in imports.edges
             if a.startswith("gradc.runtime.") and b.startswith("gradc.compiler") and b not in COMPILER_VOCABULARY]
    assert not wrong, wrong
