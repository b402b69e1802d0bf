"""The ``train { ... }`` block: its keys, their value types and defaults, checked with located errors.

Each key is declared once in :data:`TRAIN_KEYS`; optimizers and schedules are call-like values whose
arguments are declared in :data:`OPTIMIZERS` and :data:`SCHEDULES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import ast
from .diagnostics import GradcError, ModelError, did_you_mean

REQUIRED = object()

OPTIMIZERS: dict[str, dict[str, Any]] = {
    "sgd": {"lr": 0.01},
    "momentum": {"lr": 0.01, "mu": 0.9},
    "nesterov": {"lr": 0.01, "mu": 0.9},
    "adagrad": {"lr": 0.01, "eps": 1e-8},
    "rmsprop": {"lr": 0.001, "rho": 0.9, "eps": 1e-8},
    "adam": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
}

SCHEDULES: dict[str, dict[str, Any]] = {
    "constant": {},
    "step": {"every": 10, "gamma": 0.1},
    "exponential": {"gamma": 0.95},
}


@dataclass(frozen=True)
class CallValue:
    """A value such as ``adam(lr=0.001)``, with every argument filled in."""

    name: str
    args: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        inner = ", ".join(f"{k}={v:g}" for k, v in self.args.items())
        return f"{self.name}({inner})"


def _number(expr: ast.Expr, what: str) -> float | int:
    if isinstance(expr, ast.Number):
        return expr.value
    raise ModelError(f"{what} must be a number", expr.loc)


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _integer(expr: ast.Expr, key: str, low: int, wanted: str) -> int:
    """An integer literal from ``low`` up to the int64 maximum (settings reach NumPy as 64-bit integers)."""
    value = _number(expr, key)
    if not isinstance(value, int) or value < low:
        raise ModelError(f"{key} must be {wanted}, got {value}", expr.loc)
    if value > INT64_MAX:
        raise ModelError(f"{key} must be at most {INT64_MAX:,} (2^63 - 1), got {value:.4g}", expr.loc)
    return value


def positive_int(expr: ast.Expr, key: str) -> int:
    return _integer(expr, key, 1, "a positive integer")


def nonnegative_int(expr: ast.Expr, key: str) -> int:
    return _integer(expr, key, 0, "an integer >= 0")


def integer(expr: ast.Expr, key: str) -> int:
    return _integer(expr, key, INT64_MIN, "an integer")


def nonnegative_float(expr: ast.Expr, key: str) -> float:
    value = float(_number(expr, key))
    if value < 0:
        raise ModelError(f"{key} must be >= 0, got {value:g}", expr.loc)
    return value


def fraction(expr: ast.Expr, key: str) -> float:
    value = float(_number(expr, key))
    if not 0.0 <= value < 1.0:
        raise ModelError(f"{key} must be in [0, 1), got {value:g}", expr.loc)
    return value


def name_or_string(expr: ast.Expr, key: str) -> str:
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.String):
        return expr.value
    raise ModelError(f"{key} must be a name or a quoted string", expr.loc)


def call_value(table: dict[str, dict[str, Any]], what: str) -> Callable[[ast.Expr, str], CallValue]:
    def convert(expr: ast.Expr, key: str) -> CallValue:
        if isinstance(expr, ast.Name):
            name, kwargs, positional, loc = expr.id, (), (), expr.loc
        elif isinstance(expr, ast.Call) and not expr.piped:
            name, kwargs, positional, loc = expr.func, expr.kwargs, expr.args, expr.func_loc
        else:
            raise ModelError(f"{key} must be a {what} such as {next(iter(table))}(...)", expr.loc)
        if name not in table:
            raise ModelError(
                f"unknown {what} '{name}'{did_you_mean(name, table)} (known: {', '.join(table)})", loc
            )
        if positional:
            raise ModelError(f"give the arguments of {name} by name, e.g. {name}(lr=0.1)", positional[0].loc)
        args = dict(table[name])
        for kw in kwargs:
            if kw.name not in args:
                hint = did_you_mean(kw.name, args) or f" ({name} takes {', '.join(args) or 'no arguments'})"
                raise ModelError(f"unknown argument '{kw.name}' for {what} {name}{hint}", kw.loc)
            args[kw.name] = _number(kw.value, f"argument '{kw.name}' of {name}")
        for arg, value in args.items():
            if value is REQUIRED:
                raise ModelError(f"{what} {name} needs argument '{arg}'", loc)
            if isinstance(value, int | float) and value < 0:
                raise ModelError(f"argument '{arg}' of {name} must be >= 0, got {value:g}", loc)
        return CallValue(name, args)

    return convert


@dataclass(frozen=True)
class TrainKey:
    convert: Callable[[ast.Expr, str], Any]
    default: Any
    doc: str


TRAIN_KEYS: dict[str, TrainKey] = {
    "data": TrainKey(name_or_string, None, "a built-in dataset name, or a path to .npz or .csv"),
    "label": TrainKey(name_or_string, None, "the label column of a .csv file"),
    "optimizer": TrainKey(call_value(OPTIMIZERS, "optimizer"), CallValue("sgd", dict(OPTIMIZERS["sgd"])),
                          "sgd, momentum, nesterov, adagrad, rmsprop or adam, with arguments"),
    "schedule": TrainKey(call_value(SCHEDULES, "schedule"), CallValue("constant", {}),
                         "learning-rate schedule per epoch: constant, step or exponential"),
    "batch": TrainKey(positive_int, 32, "examples per step"),
    "epochs": TrainKey(positive_int, 10, "passes over the training split"),
    "weight_decay": TrainKey(nonnegative_float, 0.0, "L2 penalty lambda/2 * sum of squared weights; a weight is "
                             "any parameter not used only in + and - (biases are not decayed)"),
    "early_stopping": TrainKey(nonnegative_int, 0, "patience in epochs on validation loss; 0 is off"),
    "seed": TrainKey(integer, 0, "seed for initialization, shuffling, dropout and the split"),
    "validation": TrainKey(fraction, 0.15, "fraction of the data held out for validation"),
    "test": TrainKey(fraction, 0.15, "fraction of the data held out for the test split"),
}


def validate_train_block(block: ast.TrainBlock) -> dict[str, Any]:
    """Check every key and value of a train block; return the settings with defaults filled in."""
    settings = {key: spec.default for key, spec in TRAIN_KEYS.items()}
    seen: dict[str, ast.TrainItem] = {}
    for item in block.items:
        spec = TRAIN_KEYS.get(item.key)
        if spec is None:
            raise ModelError(
                f"unknown train setting '{item.key}'{did_you_mean(item.key, TRAIN_KEYS)}",
                item.loc,
                [f"train settings are: {', '.join(TRAIN_KEYS)}"],
            )
        if item.key in seen:
            raise ModelError(
                f"train setting '{item.key}' is given twice (first at line {seen[item.key].loc.line})", item.loc
            )
        seen[item.key] = item
        settings[item.key] = spec.convert(item.value, item.key)
    if settings["validation"] + settings["test"] >= 1.0:
        raise ModelError("validation and test fractions leave no training data", block.loc)
    return settings


def setting_from_text(key: str, text: str) -> Any:
    """A train setting given on the command line (``--optimizer 'adam(lr=0.01)'``), read by the same parser
    and checks as the train block, so both accept exactly the same values."""
    from .parser import parse_source

    if key not in TRAIN_KEYS:
        raise GradcError(f"unknown train setting '{key}'{did_you_mean(key, TRAIN_KEYS)}")
    if any(c in text for c in "\n{}#"):
        raise GradcError(f"--{option_name(key)}: {text!r} is not a single value")
    if key in ("data", "label"):  # a dataset name or a path, taken as written
        return text
    source = f"model _\ntrain {{\n  {key} = {text}\n}}\n"
    try:
        return validate_train_block(_train_block(parse_source(source, f"--{option_name(key)}")))[key]
    except ModelError as error:
        raise GradcError(f"--{option_name(key)} {text}: {error.message}") from None


def _train_block(module: ast.Module) -> ast.TrainBlock:
    return next(s for s in module.statements if isinstance(s, ast.TrainBlock))


def option_name(key: str) -> str:
    return key.replace("_", "-")


def override(settings: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """``settings`` with ``key`` set from a Python value (a number, a name, or a CallValue); ``lr`` sets the
    optimizer's learning rate and ``optimizer`` given as a name takes that optimizer's defaults."""
    out = dict(settings)
    if key == "lr":
        optimizer = out["optimizer"]
        out["optimizer"] = CallValue(optimizer.name, {**optimizer.args, "lr": float(value)})
        return out
    if key in ("optimizer", "schedule") and isinstance(value, str):
        out[key] = setting_from_text(key, value)
        return out
    if key not in TRAIN_KEYS:
        raise GradcError(f"unknown train setting '{key}'{did_you_mean(key, [*TRAIN_KEYS, 'lr'])}")
    if isinstance(value, CallValue) or key in ("data", "label"):
        out[key] = value
        return out
    out[key] = setting_from_text(key, repr(value) if not isinstance(value, str) else value)
    return out


def default_settings() -> dict[str, Any]:
    return {key: spec.default for key, spec in TRAIN_KEYS.items()}


def format_setting(value: Any) -> str:
    if isinstance(value, str):
        return value if value.isidentifier() else f'"{value}"'
    if isinstance(value, float):
        return f"{value:g}"
    return "none" if value is None else str(value)
