"""The ``train { ... }`` block: its keys, their value types and defaults, checked with located errors.

Each key is declared once in :data:`TRAIN_KEYS`; optimizers and schedules are call-like values whose
arguments are declared in :data:`OPTIMIZERS` and :data:`SCHEDULES`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import ast
from .diagnostics import GradcError, ModelError, SourceLocation, did_you_mean

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
    "cosine": {"final": 0.0, "warmup": 0},
    "warmup": {"epochs": 1},
}


@dataclass(frozen=True)
class ArgumentRule:
    """What values an optimizer or schedule argument may take."""

    accepts: Callable[[float], bool]
    meaning: str  # "> 0", "in [0, 1)"...


ARGUMENT_RULES: dict[str, ArgumentRule] = {
    "lr": ArgumentRule(lambda v: v > 0, "> 0"),
    "mu": ArgumentRule(lambda v: 0 <= v < 1, "in [0, 1)"),
    "rho": ArgumentRule(lambda v: 0 <= v < 1, "in [0, 1)"),
    "beta1": ArgumentRule(lambda v: 0 <= v < 1, "in [0, 1)"),
    "beta2": ArgumentRule(lambda v: 0 <= v < 1, "in [0, 1)"),
    "eps": ArgumentRule(lambda v: v > 0, "> 0"),
    "every": ArgumentRule(lambda v: v >= 1 and float(v).is_integer(), "a whole number >= 1"),
    "gamma": ArgumentRule(lambda v: v > 0, "> 0"),
    "final": ArgumentRule(lambda v: 0 <= v <= 1, "in [0, 1]"),
    "warmup": ArgumentRule(lambda v: v >= 0, ">= 0"),
    "epochs": ArgumentRule(lambda v: v > 0, "> 0"),
}
assert {a for table in (OPTIMIZERS, SCHEDULES) for args in table.values() for a in args} <= set(ARGUMENT_RULES)


def argument_problem(owner: str, arg: str, value: Any) -> str | None:
    """Why ``value`` cannot be argument ``arg`` of optimizer or schedule ``owner`` (None when it can)."""
    rule = ARGUMENT_RULES[arg]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"argument '{arg}' of {owner} must be a number, got {value!r}"
    if not math.isfinite(value) or not rule.accepts(value):
        return f"argument '{arg}' of {owner} must be {rule.meaning}, got {value:g}"
    return None


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


def nonnegative_float(expr: ast.Expr, key: str) -> float:
    value = float(_number(expr, key))
    if not math.isfinite(value) or value < 0:
        raise ModelError(f"{key} must be >= 0, got {value:g}", expr.loc)
    return value


def fraction(expr: ast.Expr, key: str) -> float:
    value = float(_number(expr, key))
    if not 0.0 <= value < 1.0:  # NaN and inf fail too
        raise ModelError(f"{key} must be in [0, 1), got {value:g}", expr.loc)
    return value


class LocatedText(str):
    """A setting's text that remembers where the model file gives it, so that errors about it (a data file
    that cannot be read) point at that line. It is a plain string everywhere else."""

    location: SourceLocation | None

    def __new__(cls, text: str, location: SourceLocation | None) -> LocatedText:
        value = super().__new__(cls, text)
        value.location = location
        return value


def name_or_string(expr: ast.Expr, key: str) -> str:
    if isinstance(expr, ast.Name):
        return LocatedText(expr.id, expr.loc)
    if isinstance(expr, ast.String):
        return LocatedText(expr.value, expr.loc)
    raise ModelError(f"{key} must be a name or a quoted string", expr.loc)


def looks_like_path(text: str) -> bool:
    """A data setting that names a file (``data/x.csv``, ``x.npz``) rather than a built-in dataset (``iris``)."""
    return bool(Path(text).suffix) or "/" in text or os.sep in text


def data_source(expr: ast.Expr, key: str) -> str:
    """A built-in dataset's name, or a path: a relative path is read from the model file's folder, so that
    commands run from any folder find the same file."""
    text = name_or_string(expr, key)
    model_file = Path(expr.loc.path)
    if looks_like_path(text) and not Path(text).is_absolute() and model_file.suffix == ".model":
        text = LocatedText(os.path.abspath(model_file.parent / text), text.location)
    return text


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
            problem = argument_problem(name, kw.name, args[kw.name])
            if problem:
                raise ModelError(problem, kw.value.loc)
        for arg, value in args.items():
            if value is REQUIRED:
                raise ModelError(f"{what} {name} needs argument '{arg}'", loc)
        return CallValue(name, args)

    return convert


@dataclass(frozen=True)
class TrainKey:
    convert: Callable[[ast.Expr, str], Any]
    default: Any
    doc: str


TRAIN_KEYS: dict[str, TrainKey] = {
    "data": TrainKey(data_source, None, "a built-in dataset name, or a path to .npz or .csv (relative to the "
                     "model file's folder)"),
    "label": TrainKey(name_or_string, None, "the label: the model input that holds it (default: the input a "
                      "loss reads as its target), and the label column of a .csv file (default: the last "
                      "column)"),
    "features": TrainKey(name_or_string, None, "the model input that a tabular dataset's features feed "
                         "(default: the data input that is not the label)"),
    "optimizer": TrainKey(call_value(OPTIMIZERS, "optimizer"), CallValue("sgd", dict(OPTIMIZERS["sgd"])),
                          "sgd, momentum, nesterov, adagrad, rmsprop or adam, with arguments"),
    "schedule": TrainKey(call_value(SCHEDULES, "schedule"), CallValue("constant", {}),
                         "learning-rate schedule: constant, step or exponential (per epoch); cosine or warmup "
                         "(per step)"),
    "batch": TrainKey(positive_int, 32, "examples per step"),
    "epochs": TrainKey(positive_int, 10, "passes over the training split"),
    "weight_decay": TrainKey(nonnegative_float, 0.0, "L2 penalty lambda/2 * sum of squared weights; a weight is "
                             "any parameter not used only in + and - (biases are not decayed)"),
    "clip_norm": TrainKey(nonnegative_float, 0.0, "the largest global gradient norm: a step whose gradients' "
                          "norm (all parameters together) exceeds it is scaled down to it; 0 is off"),
    "early_stopping": TrainKey(nonnegative_int, 0, "patience in epochs on validation loss; 0 is off"),
    "seed": TrainKey(nonnegative_int, 0, "seed for initialization, shuffling, dropout and the split"),
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


def check_settings(settings: Mapping[str, Any]) -> None:
    """Check a whole set of settings, however they were put together (train block, command line, Python API,
    a checkpoint): every value in range, every optimizer and schedule argument possible. Training calls this
    before it writes anything."""
    unknown = [k for k in settings if k not in TRAIN_KEYS]
    if unknown:
        raise GradcError(f"unknown train setting '{unknown[0]}'{did_you_mean(unknown[0], TRAIN_KEYS)}")
    checks: dict[str, Callable[[Any], bool]] = {
        "batch": lambda v: _is_int(v) and v > 0, "epochs": lambda v: _is_int(v) and v > 0,
        "early_stopping": lambda v: _is_int(v) and v >= 0, "seed": lambda v: _is_int(v) and v >= 0,
        "weight_decay": lambda v: _is_real(v) and v >= 0, "clip_norm": lambda v: _is_real(v) and v >= 0,
        "validation": lambda v: _is_real(v) and 0 <= v < 1,
        "test": lambda v: _is_real(v) and 0 <= v < 1,
        "data": lambda v: v is None or isinstance(v, str), "label": lambda v: v is None or isinstance(v, str),
        "features": lambda v: v is None or isinstance(v, str),
    }
    meaning = {"batch": "a positive integer", "epochs": "a positive integer", "early_stopping": "an integer >= 0",
               "seed": "an integer >= 0", "weight_decay": "a number >= 0", "clip_norm": "a number >= 0",
               "validation": "a fraction in [0, 1)",
               "test": "a fraction in [0, 1)", "data": "a dataset name or a path", "label": "a name",
               "features": "a name"}
    for key, accepts in checks.items():
        if key in settings and not accepts(settings[key]):
            raise GradcError(f"{key} must be {meaning[key]}, got {settings[key]!r}")
    for key, table in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES)):
        value = settings.get(key)
        if value is None:
            continue
        if not isinstance(value, CallValue) or value.name not in table:
            raise GradcError(f"{key} must be one of {', '.join(table)}, got {value!r}")
        for arg, number in value.args.items():
            if arg not in table[value.name]:
                raise GradcError(f"unknown argument '{arg}' for {key} {value.name}"
                                 f"{did_you_mean(arg, table[value.name])}")
            problem = argument_problem(value.name, arg, number)
            if problem:
                raise GradcError(problem)
    if settings.get("validation", 0) + settings.get("test", 0) >= 1.0:
        raise GradcError(f"validation {settings['validation']:g} and test {settings['test']:g} leave no "
                         "training data (their sum must be below 1)")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def setting_from_text(key: str, text: str) -> Any:
    """A train setting given on the command line (``--optimizer 'adam(lr=0.01)'``), read by the same parser
    and checks as the train block, so both accept exactly the same values."""
    from .parser import parse_source

    if key not in TRAIN_KEYS:
        raise GradcError(f"unknown train setting '{key}'{did_you_mean(key, TRAIN_KEYS)}")
    if any(c in text for c in "\n{}#"):
        raise GradcError(f"--{option_name(key)}: {text!r} is not a single value")
    if key in ("data", "label", "features"):  # a dataset name, a path or an input's name, taken as written
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
        out["optimizer"] = with_learning_rate(out["optimizer"], value)
        return out
    if key in ("optimizer", "schedule") and isinstance(value, str):
        out[key] = setting_from_text(key, value)
        return out
    if key not in TRAIN_KEYS:
        raise GradcError(f"unknown train setting '{key}'{did_you_mean(key, [*TRAIN_KEYS, 'lr'])}")
    if isinstance(value, CallValue) or key in ("data", "label", "features"):
        out[key] = value
        return out
    out[key] = setting_from_text(key, repr(value) if not isinstance(value, str) else value)
    return out


def with_learning_rate(optimizer: CallValue, lr: Any) -> CallValue:
    """``optimizer`` with learning rate ``lr`` (``--lr``, ``fit(lr=...)``), checked like the train block's."""
    problem = argument_problem(optimizer.name, "lr", lr)
    if problem:
        raise GradcError(problem.replace(f"argument 'lr' of {optimizer.name}", "the learning rate (lr)"))
    return CallValue(optimizer.name, {**optimizer.args, "lr": float(lr)})


def default_settings() -> dict[str, Any]:
    return {key: spec.default for key, spec in TRAIN_KEYS.items()}


def format_setting(value: Any) -> str:
    if isinstance(value, str):
        return value if value.isidentifier() else f'"{value}"'
    if isinstance(value, float):
        return f"{value:g}"
    return "none" if value is None else str(value)
