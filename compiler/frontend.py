"""The front end: resolve names, sort the declarations, and lower the AST into the graph IR.

Statements are declarations, so their order in the file is free: the front end orders them by their
dependencies. Every node it emits records the line and column it came from and the summary row
(statement or layer) it belongs to. Every mistake is a :class:`ModelError` at a source location.
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from gradc.dsl import ast
from gradc.dsl.diagnostics import Diagnostic, GradcError, ModelError, ShapeError, SourceLocation, did_you_mean
from gradc.dsl.imports import collect_blocks
from gradc.dsl.train_schema import validate_train_block

from .attributes import bind_keywords
from .blocks import BlockUse, bind_block, instantiate
from .builder import Builder, Ref
from .graph import Graph
from .initializers import INITIALIZERS
from .layers import LAYERS
from .limits import check_allocations, check_literal_fits
from .ops.indexing import take
from .ops.registry import REGISTRY
from .splits import split_parts
from .subscripts import subscript_plan
from .tensor_literals import tensor_literal
from .types import TensorType

# Ops on integers alone that give an integer exactly, whatever its size (Python's integers do not overflow).
EXACT_INTEGER_OPS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "neg": operator.neg}
BINARY_OPS = {"+": "add", "-": "sub", "*": "mul", "/": "div", "^": "pow", "@": "matmul"}
DEFINING = (ast.InputDecl, ast.ParamDecl, ast.Assign, ast.OutputDecl, ast.LossDecl)


@dataclass
class ModelSpec:
    """A checked model: its parsed-stage graph, its train settings and any warnings."""

    name: str
    path: str
    source: str
    graph: Graph
    train: dict[str, Any] | None
    warnings: list[Diagnostic] = field(default_factory=list)
    train_given: tuple[str, ...] = ()  # the keys the train block sets (the others are defaults)
    module: ast.Module | None = None  # the parsed file, from which :meth:`bind` builds the bound graph
    dims: dict[str, int] = field(default_factory=dict)  # the sizes its length symbols were bound to
    unbound_graph: Graph | None = None  # when bound: the graph before binding, with its symbolic lengths

    @property
    def length_symbols(self) -> tuple[str, ...]:
        """The symbolic dimensions besides the batch that are still unbound (a sequence's ``T``)."""
        return self.graph.length_symbols

    def bind(self, dims: Mapping[str, int]) -> ModelSpec:
        """The model with its length symbols bound to sizes (``{"T": 50}``): its graph built again with those
        sizes in the input declarations, as if the file had written them (a compiled program has fixed sizes
        but for the batch; JAX's jit specializes on shapes the same way). Names that are not length symbols
        of the model are refused."""
        unknown = sorted(set(dims) - set(self.length_symbols))
        if unknown:
            known = ", ".join(self.length_symbols) or "none"
            raise GradcError(f"{self.path}: {', '.join(unknown)} is not a symbolic length of model '{self.name}' "
                             f"(its symbolic lengths: {known})")
        if not dims:
            return self
        for name, size in dims.items():
            if not isinstance(size, int | np.integer) or size < 1:
                raise GradcError(f"{self.path}: the length {name} must be a whole number of at least 1, got {size}")
        assert self.module is not None
        bound = build_model(self.module, {name: int(size) for name, size in dims.items()})
        bound.dims = {**self.dims, **{name: int(size) for name, size in dims.items()}}
        bound.unbound_graph = self.unbound_graph or self.graph
        return bound


def callable_names() -> list[str]:
    return sorted([op.name for op in REGISTRY.values() if op.public] + list(LAYERS) + ["split"])


def build_model(module: ast.Module, dims: Mapping[str, int] | None = None) -> ModelSpec:
    """Check a parsed module and lower it to a graph, with the symbolic lengths in ``dims`` bound to sizes."""
    return _FrontEnd(module, dims or {}).run()


class _FrontEnd:
    def __init__(self, module: ast.Module, dims: Mapping[str, int]):
        self.module = module
        self.dims = dict(dims)
        self.path = module.path
        self.definitions: dict[str, ast.Statement] = {}
        self.env: dict[str, Ref | float | int] = {}
        self.uses: Counter[str] = Counter()
        self.warnings: list[Diagnostic] = []
        self.layer_counts: Counter[tuple[str, str]] = Counter()
        self.blocks = collect_blocks(module)
        self.scope: str | None = None  # inside a block's use: its name, ``logits.residual1``

    # ------------------------------------------------------------ driver
    def run(self) -> ModelSpec:
        name = self._model_name()
        self._collect_definitions()
        symbols = self._symbols()
        lengths = tuple(d for d in symbols[1:] if d not in self.dims)
        self.graph = Graph(name, symbols[0] if symbols else None, lengths)
        self.graph.float_dtype = self._float_dtype()
        self.builder = Builder(self.graph)
        for stmt in self._sorted_definitions():
            self._lower_statement(stmt)
        self._mark_outputs()
        self._set_objective()
        check_allocations(self.graph, self.path)
        self._warn_unused()
        train = self._train_settings()
        given = tuple(item.key for s in self.module.statements if isinstance(s, ast.TrainBlock) for item in s.items)
        return ModelSpec(name, self.path, self.module.source, self.graph, train, self.warnings, given,
                         self.module)

    def _model_name(self) -> str:
        decls = [s for s in self.module.statements if isinstance(s, ast.ModelDecl)]
        if not decls:
            raise ModelError(
                "missing 'model NAME' declaration", SourceLocation(self.path, 1, 1),
                ["start the file with a line such as: model my_model"],
            )
        if len(decls) > 1:
            raise ModelError(f"a file declares one model; 'model' appears again (first at line "
                             f"{decls[0].loc.line})", decls[1].loc)
        return decls[0].name

    def _collect_definitions(self) -> None:
        for stmt in self.module.statements:
            if not isinstance(stmt, DEFINING):
                continue
            if isinstance(stmt, ast.OutputDecl) and stmt.value is None:
                continue  # 'output NAME' marks an existing definition
            for name, loc in _defined_names(stmt):
                first = self.definitions.get(name)
                if first is not None:
                    raise ModelError(f"'{name}' is defined twice (first at line {first.loc.line})", loc)
                self.definitions[name] = stmt
        for name, block in self.blocks.items():
            if name in REGISTRY or name in LAYERS:
                raise ModelError(f"block '{name}' has the name of {'an op' if name in REGISTRY else 'a layer'}; "
                                 "give it another", block.name_loc)
        for stmt in self.module.statements:
            if isinstance(stmt, ast.OutputDecl) and stmt.value is None and stmt.name not in self.definitions:
                raise ModelError(
                    f"output '{stmt.name}' is not defined{did_you_mean(stmt.name, self.definitions)}",
                    stmt.name_loc,
                )

    def _symbols(self) -> list[str]:
        """The symbolic dimensions of the inputs in order of first appearance: the first is the batch
        dimension (N), any later ones are lengths (a sequence's T), bound when the program meets its data."""
        symbols: dict[str, SourceLocation] = {}
        for stmt in self.definitions.values():
            if not isinstance(stmt, ast.InputDecl | ast.ParamDecl):
                continue
            for dim, loc in zip(stmt.type.dims, stmt.type.dim_locs, strict=True):
                if not isinstance(dim, str):
                    continue
                if isinstance(stmt, ast.ParamDecl):
                    raise ModelError(
                        f"parameter '{stmt.name}' must have a fixed shape; '{dim}' is a symbolic dimension",
                        loc,
                    )
                batch = next(iter(symbols), dim)
                if dim != batch and stmt.type.dims[0] != batch:
                    raise ModelError(
                        f"'{dim}' would be a symbolic length, which only an input that starts with the batch "
                        f"dimension '{batch}' (line {symbols[batch].line}) may have, as T in f32[{batch}, T, 16]",
                        loc,
                    )
                symbols.setdefault(dim, loc)
        return list(symbols)

    def _float_dtype(self) -> str:
        """f64 when every float input and parameter is f64 (an all-f64 model), else f32."""
        dtypes = {s.type.dtype for s in self.definitions.values() if isinstance(s, ast.InputDecl | ast.ParamDecl)}
        return "f64" if "f64" in dtypes and "f32" not in dtypes else "f32"

    def _sorted_definitions(self) -> list[ast.Statement]:
        deps = nx.DiGraph()
        for name, stmt in self.definitions.items():
            deps.add_node(name)
            for ref in _references(stmt, self.blocks):
                owner = ref.id.split(".")[0]  # logits.dense1.weight is defined by the statement logits
                if owner not in self.definitions:
                    raise ModelError(self._unknown_name_message(owner), ref.loc)
                deps.add_edge(owner, name)
                self.uses[owner] += 1
        try:
            order = list(nx.lexicographical_topological_sort(deps, key=lambda n: self.definitions[n].loc.line))
        except nx.NetworkXUnfeasible:
            cycle = [edge[0] for edge in nx.find_cycle(deps)]
            first = min(cycle, key=lambda n: self.definitions[n].loc.line)
            start = cycle.index(first)
            cycle = cycle[start:] + cycle[:start]
            raise ModelError(
                "definitions form a cycle: " + " -> ".join([*cycle, first]),
                self.definitions[first].name_loc,
            ) from None
        return list({id(stmt): stmt for stmt in (self.definitions[name] for name in order)}.values())

    def _unknown_name_message(self, name: str) -> str:
        if name in self.blocks:
            return f"'{name}' is a block; call it, as in {name}(x), or use it in a pipeline: x -> {name}"
        if name in REGISTRY or name in LAYERS:
            return f"'{name}' is an op; call it, as in {name}(x), or use it in a pipeline: x -> {name}"
        return f"unknown name '{name}'{did_you_mean(name, self.definitions)}"

    # ------------------------------------------------------------ statements
    def _lower_statement(self, stmt: ast.Statement) -> None:
        if isinstance(stmt, ast.InputDecl):
            t = TensorType(tuple(self.dims.get(d, d) if isinstance(d, str) else d for d in stmt.type.dims),
                           stmt.type.dtype)
            self.env[stmt.name] = Ref(self.graph.add("input", (), t, line=stmt.loc.line, col=stmt.loc.col,
                                                     name=stmt.name, origin=stmt.name))
        elif isinstance(stmt, ast.ParamDecl):
            self.env[stmt.name] = self._declare_param(stmt)
        else:
            with self.builder.at(stmt.loc.line, stmt.loc.col, origin=stmt.name):
                value = self._expr(stmt.value, stmt)
                if isinstance(stmt, ast.Assign) and stmt.more:
                    self._bind_results(stmt, value)
                    return
                value = self._single(value, stmt.value)
                if not isinstance(value, Ref):
                    self._check_literal_operands((stmt.value,), [value])
                    value = self.builder.const(value, self.graph.float_dtype)
            node = self.graph.node(value)
            if node.name is None and node.op not in ("input", "param"):
                self.graph.update(value, name=stmt.name)
            if isinstance(stmt, ast.LossDecl):
                if not node.type.is_scalar:
                    raise ModelError(f"loss '{stmt.name}' must be a scalar, got {node.type}", stmt.name_loc,
                                     ["reduce it first, e.g. mean(...)"])
                self.graph.losses[stmt.name] = value
            if isinstance(stmt, ast.OutputDecl):
                self.graph.outputs[stmt.name] = value
            self.env[stmt.name] = value

    def _bind_results(self, stmt: ast.Assign, value) -> None:
        """``a, b = block(x)``: one name per result of a block."""
        if not isinstance(value, tuple) or len(value) != len(stmt.names):
            got = len(value) if isinstance(value, tuple) else 1
            raise ModelError(f"{len(stmt.names)} names, but the value has {got} result(s)", stmt.name_loc)
        owner = self._owner(stmt)
        for name, result in zip(stmt.names, value, strict=True):
            node = self.graph.node(result)
            if node.name is None:
                self.graph.update(result, name=self._qualified(name))
            if node.origin == owner and node.op not in ("input", "param"):  # a row of its own in the summary
                self.graph.update(result, origin=self._qualified(name))
            self.env[name] = result

    def _single(self, value, expr: ast.Expr):
        if isinstance(value, tuple):
            raise ModelError(f"this value has {len(value)} results; name them, as in a, b = ...", expr.loc)
        return value

    def _qualified(self, name: str) -> str:
        """A name made inside a block's use is prefixed with the use: ``logits.residual1.h``."""
        return f"{self.scope}.{name}" if self.scope else name

    def _owner(self, stmt: ast.Statement) -> str:
        """Whose layers these are: the statement's, or the block use's the statement is in."""
        return self.scope or stmt.name

    def _declare_param(self, stmt: ast.ParamDecl) -> Ref:
        if stmt.type.dtype not in ("f32", "f64"):
            raise ModelError(f"parameter '{stmt.name}' must be f32 or f64, got {stmt.type.dtype}", stmt.type.loc)
        if stmt.init is None:
            raise ModelError(
                f"parameter '{stmt.name}' needs an initializer", stmt.name_loc,
                [f"for example: param {stmt.name}: {stmt.type.dtype}... = zeros  (or a number, normal(std=0.1), "
                 "xavier_uniform, he_normal)"],
            )
        spec = self._init_spec(stmt.init)
        for literal in _literals(stmt.init):
            check_literal_fits(literal.value, stmt.type.dtype, literal.loc, literal.text)
        t = TensorType(stmt.type.dims, stmt.type.dtype)
        name = self._qualified(stmt.name)
        return Ref(self.graph.add("param", (), t, {"init": spec}, line=stmt.loc.line, col=stmt.loc.col,
                                  name=name, origin=name))

    def _init_spec(self, expr: ast.Expr) -> dict[str, Any]:
        if isinstance(expr, ast.Number):
            return {"kind": "constant", "value": float(expr.value)}
        if isinstance(expr, ast.Name):
            name, args, kwargs, loc = expr.id, [], (), expr.loc
        elif isinstance(expr, ast.Call) and not expr.piped:
            name, args, kwargs, loc = expr.func, list(expr.args), expr.kwargs, expr.func_loc
        else:
            raise ModelError("an initializer is a number, a name such as zeros, or a call such as "
                             "normal(std=0.1)", expr.loc)
        init = INITIALIZERS.get(name)
        if init is None or name == "constant":
            choices = [n for n in INITIALIZERS if n != "constant"]
            raise ModelError(f"unknown initializer '{name}'{did_you_mean(name, choices)}", loc,
                             [f"initializers: a number, {', '.join(choices)}"])
        values = bind_keywords(init.attrs, args, kwargs, name, loc, None)
        return {"kind": name, **values}

    def _mark_outputs(self) -> None:
        for stmt in self.module.statements:
            if isinstance(stmt, ast.OutputDecl) and stmt.value is None:
                self.graph.outputs[stmt.name] = self.env[stmt.name]
                self.uses[stmt.name] += 1

    def _set_objective(self) -> None:
        losses = list(self.graph.losses.values())
        if len(losses) == 1:
            self.graph.objective = losses[0]
        elif losses:
            with self.builder.at(None, None, origin="total loss"):
                total = losses[0]
                for other in losses[1:]:
                    total = self.builder.add(Ref(total), Ref(other))
            self.graph.objective = total
        else:
            scalars = [v for v in self.graph.outputs.values()
                       if self.graph.node(v).type.is_scalar and self.graph.node(v).type.is_float]
            if len(scalars) == 1:
                self.graph.objective = scalars[0]

    def _warn_unused(self) -> None:
        marked = set(self.graph.outputs) | set(self.graph.losses)
        for name, stmt in self.definitions.items():
            if isinstance(stmt, ast.Assign | ast.ParamDecl) and name not in marked and not self.uses[name]:
                self.warnings.append(Diagnostic("warning", f"'{name}' is defined but never used", stmt.name_loc))

    def _train_settings(self) -> dict[str, Any] | None:
        blocks = [s for s in self.module.statements if isinstance(s, ast.TrainBlock)]
        if len(blocks) > 1:
            raise ModelError(f"only one train block is allowed (first at line {blocks[0].loc.line})", blocks[1].loc)
        return validate_train_block(blocks[0]) if blocks else None

    # ------------------------------------------------------------ expressions
    def _expr(self, root: ast.Expr, stmt: ast.Statement) -> Ref | float | int:
        """Lower an expression, operands first, without recursion: a model may nest expressions (or chain
        pipeline stages) far deeper than Python's stack. Each node is checked when it is reached (so the
        outermost mistake is reported first) and emitted once its operands are."""
        values: list[Ref | float | int] = []
        work: list[tuple[ast.Expr, int | None]] = [(root, None)]
        while work:
            expr, arity = work.pop()
            if arity is None:
                operands = self._operand_exprs(expr)
                work.append((expr, len(operands)))
                work.extend((operand, None) for operand in reversed(operands))
                continue
            operand_values = values[len(values) - arity:]
            del values[len(values) - arity:]
            values.append(self._finish(expr, operand_values, stmt))
        (value,) = values
        return value

    def _operand_exprs(self, expr: ast.Expr) -> tuple[ast.Expr, ...]:
        """The sub-expressions lowered before ``expr``, after checking what can be checked on ``expr`` alone."""
        if isinstance(expr, ast.Neg):
            return (expr.operand,)
        if isinstance(expr, ast.BinOp):
            return (expr.left, expr.right)
        if isinstance(expr, ast.Call):
            if expr.func in self.blocks:
                return self._block_operands(expr)
            if expr.func == "split":
                if not expr.args:
                    raise ModelError("split takes a tensor: a, b = split(x, 2, axis=1)", expr.func_loc)
                return expr.args[:1]
            if _is_layer_call(expr):
                layer = LAYERS[expr.func]
                if not expr.args:
                    raise ModelError(f"{layer.name} needs an input: x -> {layer.name}(...) or {layer.name}(x, ...)",
                                     expr.func_loc)
                return (expr.args[0], *_tensor_keywords(expr))
            return operand_exprs(self._public_op(expr), expr)
        if isinstance(expr, ast.Subscript):
            return (expr.value,)
        if isinstance(expr, ast.String):
            raise ModelError("a string is not a value; strings only appear in the train block", expr.loc)
        if isinstance(expr, ast.Number | ast.Name | ast.ListLiteral):
            return ()
        raise ModelError(f"unsupported expression {type(expr).__name__}", expr.loc)

    def _finish(self, expr: ast.Expr, operands: list[Ref | float | int], stmt: ast.Statement) -> Ref | float | int:
        """Lower ``expr`` given the values of its operands."""
        for value, operand in zip(operands, self._operand_exprs(expr), strict=True):
            self._single(value, operand)
        if isinstance(expr, ast.Number):
            return expr.value
        if isinstance(expr, ast.ListLiteral):
            values, dtype = tensor_literal(expr, self.graph.float_dtype)
            with self.builder.at(expr.loc.line, expr.loc.col):
                return self.builder.const(values, dtype)
        if isinstance(expr, ast.Name):
            return self._parameter(expr) if "." in expr.id else self.env[expr.id]
        if isinstance(expr, ast.Neg):
            (operand,) = operands
            return -operand if not isinstance(operand, Ref) else self._emit("neg", [operand], {}, expr.loc, stmt)
        if isinstance(expr, ast.BinOp):
            self._check_literal_operands((expr.left, expr.right), operands)
            return self._emit(BINARY_OPS[expr.op], operands, {}, expr.loc, stmt)
        if isinstance(expr, ast.Subscript):
            return self._subscript(expr, operands[0], stmt)
        assert isinstance(expr, ast.Call)
        if expr.func in self.blocks:
            return self._block(expr, operands, stmt)
        if expr.func == "split":
            return self._split(expr, operands[0], stmt)
        if _is_layer_call(expr):
            tensors = {kw.name: value for kw, value in zip(_tensor_keyword_args(expr), operands[1:], strict=True)}
            return self._layer(expr, operands[0], stmt, tensors)
        self._check_literal_operands(expr.args, operands)
        return self._call(expr, operands, stmt)

    def _check_literal_operands(self, exprs: tuple[ast.Expr, ...], values: list[Ref | float | int]) -> None:
        """A number that meets tensors becomes a constant of their (narrowest) float dtype, f32 by default;
        it must be finite there."""
        float_dtypes = {self.graph.node(v).type.dtype for v in values if isinstance(v, Ref)} & {"f32", "f64"}
        dtype = "f64" if float_dtypes == {"f64"} else "f32"
        for expr, value in zip(exprs, values, strict=False):
            if not isinstance(value, Ref):
                number = _literal_number(expr)
                if number is not None:
                    check_literal_fits(value, dtype, number.loc, number.text)

    def _public_op(self, call: ast.Call):
        op = REGISTRY.get(call.func)
        if op is None or not op.public:
            raise ModelError(
                f"unknown op '{call.func}'{did_you_mean(call.func, callable_names())}", call.func_loc
            )
        if op.variadic and not call.args:
            raise ModelError(f"{op.name} takes one or more tensors, as in {op.name}(a, b, axis=1); got none",
                             call.func_loc)
        count = len(op.public_operands) - op.optional
        if len(call.args) < count:
            raise ModelError(
                f"{op.name} takes {count} operand(s) ({', '.join(op.public_operands[:count])}), got {len(call.args)}",
                call.func_loc,
            )
        return op

    def _split(self, call: ast.Call, value, stmt: ast.Statement) -> tuple:
        if not isinstance(value, Ref):
            raise ModelError("split takes a tensor, not a number", call.args[0].loc)
        axis, parts = split_parts(call, self.graph.node(value).type, self.graph.batch_symbol)
        with self.builder.at(call.loc.line, call.loc.col):
            return tuple(take(self.builder, value, axis, start, length) for start, length in parts)

    # ------------------------------------------------------------ blocks
    def _block_operands(self, call: ast.Call) -> tuple[ast.Expr, ...]:
        block = self.blocks[call.func]
        count = len(block.inputs)
        if len(call.args) < count:
            names = ", ".join(p.name for p in block.inputs)
            raise ModelError(f"block {block.name} takes {count} input(s) ({names}), got {len(call.args)}",
                             call.func_loc)
        return call.args[:count]

    def _block(self, call: ast.Call, operands: list, stmt: ast.Statement):
        """A use of a block: its statements lowered in a scope of their own, once per repetition."""
        for value, expr in zip(operands, call.args, strict=False):
            if not isinstance(value, Ref):
                raise ModelError(f"the inputs of block {call.func} are tensors, not numbers", expr.loc)
        use = bind_block(self.blocks[call.func], call, len(operands))
        if use.repeat > 1 and len(use.block.inputs) != len(use.block.result.values if use.block.result else ()):
            raise ModelError(f"repeat needs a block with as many results as inputs; {use.block.name} takes "
                             f"{len(use.block.inputs)} and returns "
                             f"{len(use.block.result.values) if use.block.result else 0}", call.func_loc)
        values = list(operands)
        for _ in range(use.repeat):
            values = self._block_instance(use, call, values, stmt)
        return values[0] if len(values) == 1 else tuple(values)

    def _block_instance(self, use: BlockUse, call: ast.Call, inputs: list[Ref], stmt: ast.Statement) -> list[Ref]:
        block = use.block
        if block.result is None:
            raise ModelError(f"block {block.name} returns nothing; end it with: return <value>", block.name_loc)
        owner = self._owner(stmt)
        self.layer_counts[(owner, block.name)] += 1
        scope = f"{owner}.{block.name}{self.layer_counts[(owner, block.name)]}"
        saved = self.env, self.scope
        self.env = {p.name: value for p, value in zip(block.inputs, inputs, strict=True)}
        self.scope = scope
        try:
            with self.builder.at(call.loc.line, call.loc.col, origin=scope):
                for inner in instantiate(block.body, use.attributes):
                    self._check_block_names(inner, block)
                    self._lower_block_statement(inner)
                result = instantiate(block.result, use.attributes)
                self._check_block_names(result, block)
                values = [self._single(self._expr(v, result), v) for v in result.values]
        except ModelError as error:
            error.notes.append(f"in block '{block.name}', used at {call.loc}")
            raise
        finally:
            self.env, self.scope = saved
        for value in values:
            if not isinstance(value, Ref):
                raise ModelError(f"block {block.name} must return tensors, not numbers", block.result.loc)
        return values

    def _lower_block_statement(self, stmt: ast.Statement) -> None:
        if isinstance(stmt, ast.ParamDecl):
            if stmt.name in self.env:
                raise ModelError(f"'{stmt.name}' is defined twice in this block", stmt.name_loc)
            self.env[stmt.name] = self._declare_param(stmt)
            return
        if any(name in self.env for name in stmt.names):
            twice = next(name for name in stmt.names if name in self.env)
            raise ModelError(f"'{twice}' is defined twice in this block", stmt.name_loc)
        with self.builder.at(stmt.loc.line, stmt.loc.col, origin=self.scope):
            value = self._expr(stmt.value, stmt)
        if stmt.more:
            self._bind_results(stmt, value)
            return
        value = self._single(value, stmt.value)
        if not isinstance(value, Ref):
            value = self.builder.const(value, self.graph.float_dtype)
        if self.graph.node(value).name is None and self.graph.node(value).op not in ("input", "param"):
            self.graph.update(value, name=self._qualified(stmt.name))
        self.env[stmt.name] = value

    def _check_block_names(self, stmt, block: ast.BlockDef) -> None:
        """Names in a block are its inputs, its attributes and what it defined before: nothing from outside."""
        for ref in _references(stmt, self.blocks):
            owner = ref.id.split(".")[0]
            if "." in ref.id or owner in self.env:
                continue
            known = [*self.env, *(a.name for a in block.attributes)]
            raise ModelError(f"unknown name '{owner}' in block {block.name}{did_you_mean(owner, known)}; a "
                             "block sees only its inputs, its attributes and its own definitions", ref.loc)

    def _parameter(self, name: ast.Name) -> Ref:
        """``logits.dense1.weight``: a parameter a layer of an earlier statement made, used again (shared or
        tied weights: every use adds to its one gradient)."""
        params = self.graph.params()
        if name.id in params:
            return Ref(params[name.id])
        owner = name.id.split(".")[0]
        owned = sorted(p for p in params if p.startswith(owner + "."))
        if not owned:
            raise ModelError(f"unknown parameter '{name.id}': '{owner}' has no layer parameters", name.loc)
        raise ModelError(f"unknown parameter '{name.id}'{did_you_mean(name.id, owned)} (the parameters of "
                         f"'{owner}': {', '.join(owned)})", name.loc)

    def _subscript(self, expr: ast.Subscript, value: Ref | float | int, stmt: ast.Statement) -> Ref:
        if not isinstance(value, Ref):
            raise ModelError("a number cannot be indexed", expr.loc)
        attrs, inserted = subscript_plan(expr, self.graph.node(value).type)
        if attrs is not None:
            value = self._emit("slice", [value], attrs, expr.loc, stmt)
        if inserted:
            value = self._emit("expand_dims", [value], {"axis": inserted}, expr.loc, stmt)
        return value

    def _call(self, call: ast.Call, operands: list[Ref | float | int], stmt: ast.Statement) -> Ref:
        op = REGISTRY[call.func]
        named = operand_keywords(op, call)
        attrs = bind_keywords(op.attrs, list(call.args[operand_count(op, call):]),
                              tuple(kw for kw in call.kwargs if all(kw is not n for n in named)), op.name,
                              call.func_loc,
                              self.graph.batch_symbol)
        origin = self._stage_origin(call, stmt)
        with self.builder.at(call.loc.line, call.loc.col, origin=origin):
            result = self._emit(op.name, operands, attrs, call.func_loc, stmt)
        self._check_cross_entropy_input(op.name, result, call)
        return result

    def _layer(self, call: ast.Call, x: Ref | float | int, stmt: ast.Statement,
               tensors: dict[str, Ref | float | int]) -> Ref:
        layer = LAYERS[call.func]
        if not isinstance(x, Ref):
            raise ModelError(f"the input of {layer.name} must be a tensor, not a number", call.args[0].loc)
        constants = tuple(kw for kw in call.kwargs if kw.name not in tensors)
        attrs = bind_keywords(layer.attrs, list(call.args[1:]), constants, layer.name, call.func_loc,
                              self.graph.batch_symbol)
        for kw in _tensor_keyword_args(call):
            if not isinstance(tensors[kw.name], Ref):
                raise ModelError(f"argument '{kw.name}' of {layer.name} is a tensor, not a number", kw.value.loc)
        attrs.update({spec.name: tensors.get(spec.name) for spec in layer.tensors})
        owner = self._owner(stmt)
        self.layer_counts[(owner, layer.name)] += 1
        prefix = f"{owner}.{layer.name}{self.layer_counts[(owner, layer.name)]}"

        def new_param(role: str, shape: tuple[int, ...], init: dict[str, Any]) -> Ref:
            given = self.graph.node(x).type  # parameters take the input's float type (an embedding's ids: the model's)
            t = TensorType(shape, given.dtype if given.is_float else self.graph.float_dtype)
            return Ref(self.graph.add("param", (), t, {"init": init}, line=call.loc.line, col=call.loc.col,
                                      name=f"{prefix}.{role}", origin=prefix))

        with self.builder.at(call.loc.line, call.loc.col, origin=prefix):
            try:
                return layer.build(self.builder, x, attrs, new_param)
            except ShapeError as exc:
                raise self._shape_error(exc, call.func_loc, stmt) from None

    def _stage_origin(self, call: ast.Call, stmt: ast.Statement) -> str | None:
        if not call.piped:
            return None
        owner = self._owner(stmt)
        self.layer_counts[(owner, call.func)] += 1
        return f"{owner}.{call.func}{self.layer_counts[(owner, call.func)]}"

    def _emit(self, op: str, operands: list, attrs: dict[str, Any], loc: SourceLocation, stmt) -> Ref | float | int:
        if not any(isinstance(o, Ref) for o in operands):
            return self._fold_numbers(op, operands, attrs, loc, stmt)
        with self.builder.at(loc.line, loc.col):
            try:
                return self.builder.emit(op, *operands, **attrs)
            except ShapeError as exc:
                raise self._shape_error(exc, loc, stmt) from None

    def _fold_numbers(self, op: str, operands: list, attrs: dict[str, Any], loc: SourceLocation,
                      stmt) -> float | int:
        """An op on numbers alone (``0.1 * 3``, ``sqrt(2)``) is computed here, exactly: integers as integers,
        everything else in float64. The result stays a number, which takes the dtype of the tensor it meets and
        is rounded to it once (see :meth:`Builder.const`)."""
        exact = all(isinstance(o, int) for o in operands) and op in EXACT_INTEGER_OPS
        if exact:
            return EXACT_INTEGER_OPS[op](*operands)
        args = [np.asarray(float(o), dtype=np.float64) for o in operands]
        try:
            with np.errstate(all="ignore"):
                value = float(np.asarray(REGISTRY[op].forward(args, attrs), dtype=np.float64))
        except (OverflowError, ValueError, ShapeError) as exc:
            raise self._shape_error(ShapeError(f"{op} of numbers alone: {exc}"), loc, stmt) from None
        if not math.isfinite(value):
            shown = ", ".join(repr(o) for o in operands)
            raise self._shape_error(ShapeError(f"{op}({shown}) is {value}: a constant must be a finite number"),
                                    loc, stmt)
        return value

    def _shape_error(self, exc: ShapeError, loc: SourceLocation, stmt) -> ModelError:
        where = f"the definition of '{stmt.name}'" if hasattr(stmt, "name") else "the block's result"
        return ShapeError(f"{exc.message} (in {where})", loc)

    def _check_cross_entropy_input(self, op: str, result: Ref, call: ast.Call) -> None:
        if op != "cross_entropy":
            return
        node = self.graph.node(result)
        scores = self.graph.node(node.inputs[0])
        if node.attrs["from_logits"] and scores.op == "softmax":
            self.warnings.append(Diagnostic(
                "warning",
                "cross_entropy takes logits, but its input is a softmax; pass from_logits=false if these are "
                "probabilities, or give it the logits",
                call.func_loc,
            ))


def _defined_names(stmt: ast.Statement) -> list[tuple[str, SourceLocation]]:
    if isinstance(stmt, ast.Assign):
        return [(stmt.name, stmt.name_loc), *stmt.more]
    return [(stmt.name, stmt.name_loc)]


def operand_count(op, call: ast.Call) -> int:
    """How many of a call's positional arguments are operands: all of them for a variadic op (concat)."""
    if op.variadic:
        return len(call.args)
    return min(len(call.args), len(op.public_operands)) if op.optional else len(op.public_operands)


def operand_keywords(op, call: ast.Call) -> list[ast.Keyword]:
    """The keyword arguments that name an optional operand (``attention(q, k, v, mask=m)``)."""
    if not op.optional or op.variadic:
        return []
    optional = op.public_operands[len(op.public_operands) - op.optional:]
    return [kw for kw in call.kwargs if kw.name in optional]


def operand_exprs(op, call: ast.Call) -> list[ast.Expr]:
    """A call's operands in order: its positional ones, then any optional one given by name."""
    exprs = list(call.args[:operand_count(op, call)])
    for kw in operand_keywords(op, call):
        position = op.public_operands.index(kw.name)
        if position < len(exprs):
            raise ModelError(f"operand '{kw.name}' of {op.name} is given twice", kw.loc)
        if position > len(exprs):
            raise ModelError(f"{op.name}: give the operands before '{kw.name}' "
                             f"({', '.join(op.public_operands[len(exprs):position])}) too", kw.loc)
        exprs.append(kw.value)
    return exprs


def _references(stmt: ast.Statement, blocks: dict[str, ast.BlockDef] | None = None) -> list[ast.Name]:
    """The names a definition (or a block's return) reads: not call names, keyword values or initializers."""
    if isinstance(stmt, ast.Return):
        roots = list(stmt.values)
    else:
        expr = getattr(stmt, "value", None)
        roots = [expr] if expr is not None and not isinstance(stmt, ast.ParamDecl) else []
    found: list[ast.Name] = []
    for root in roots:
        _collect_names(root, found, blocks or {})
    return found


def _collect_names(root: ast.Expr, found: list[ast.Name], blocks: dict[str, ast.BlockDef]) -> None:
    """Append the names ``root`` reads, left to right (iteratively: expressions may nest deeply)."""
    work = [root]
    while work:
        expr = work.pop()
        if isinstance(expr, ast.Name):
            found.append(expr)
        elif isinstance(expr, ast.BinOp):
            work += (expr.right, expr.left)
        elif isinstance(expr, ast.Neg):
            work.append(expr.operand)
        elif isinstance(expr, ast.Subscript):
            work.append(expr.value)
        elif isinstance(expr, ast.Call):
            if expr.func in blocks:
                count = len(blocks[expr.func].inputs)
            elif _is_layer_call(expr):
                count = 1
                work.extend(reversed(_tensor_keywords(expr)))
            else:
                work.extend(reversed(operand_exprs(REGISTRY[expr.func], expr) if expr.func in REGISTRY
                                     else expr.args[:1]))
                continue
            work.extend(reversed(expr.args[:count]))


def _tensor_keyword_args(call: ast.Call) -> list[ast.Keyword]:
    """The keyword arguments of a layer's call whose values are tensors (``initial=h0``), in call order."""
    names = {spec.name for spec in LAYERS[call.func].tensors}
    return [kw for kw in call.kwargs if kw.name in names]


def _tensor_keywords(call: ast.Call) -> tuple[ast.Expr, ...]:
    return tuple(kw.value for kw in _tensor_keyword_args(call))


def _is_layer_call(call: ast.Call) -> bool:
    """A layer's call, not an op's: for a name that is both (``conv2d``), the op takes a weight tensor second
    (``conv2d(x, w)``), the layer a number or nothing (``conv2d(x, 16, 3)``, ``x -> conv2d(filters=16, kernel=3)``)."""
    if call.func not in LAYERS:
        return False
    return call.func not in REGISTRY or len(call.args) < 2 or isinstance(call.args[1], ast.Number)


def _literals(expr: ast.Expr) -> list[ast.Number]:
    """The number literals among an initializer's value and arguments."""
    if isinstance(expr, ast.Number):
        return [expr]
    if isinstance(expr, ast.Call):
        return [e for e in (*expr.args, *(kw.value for kw in expr.kwargs)) if isinstance(e, ast.Number)]
    return []


def _literal_number(expr: ast.Expr) -> ast.Number | None:
    """The literal behind a number-valued operand (``-1e39`` is parsed as one literal)."""
    return expr if isinstance(expr, ast.Number) else None
