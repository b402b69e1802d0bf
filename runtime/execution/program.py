"""A compiled program: a graph for a target, with the parameters it owns.

``run`` evaluates every output and loss, and with ``grad=True`` the gradient of the objective with
respect to every parameter and floating-point input, under the keys ``grad/<name>``. ``step`` runs one
training step in place (plain SGD, or the optimizer chosen with ``set_optimizer``) and returns the loss.
``fit``, ``evaluate``, ``predict`` and ``save`` train and use the program on whole datasets.

A program holds two graphs when it was built from a model (``source``): the evaluation graph (dropout is
the identity) that ``run``, ``evaluate`` and ``predict`` use, and the training graph (dropout masks fed each
step, weight decay in the objective) that ``step`` and ``fit`` use; both share the parameters.

What training changes lives apart, in ``program.state`` (:class:`~gradc.runtime.training_state.TrainingState`:
parameters, optimizer state, epoch, the dropout masks' random stream); ``optimizer``, ``epoch`` and
``mask_rng`` are views of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gradc.compiler.driver import attention_entries_per_row, dropout_rates, prepare_training, statistic_outputs
from gradc.compiler.graph import Graph
from gradc.dsl.diagnostics import GradcError

from .feeds import FeedSpec
from .optimizer_state import OptimizerState
from .params import check_params
from .targets import BACKENDS
from .training_state import TrainingState

if TYPE_CHECKING:  # the training layer builds on this one; the methods below reach it when called
    from ..training.data import Scaling
    from ..training.fit import Evaluation, FitResult

TARGETS = tuple(BACKENDS)
TARGET_HELP = ("cpu: compiled with Numba (default); cuda: numba-cuda kernels on an NVIDIA GPU (without one, "
               "NUMBA_ENABLE_CUDASIM=1 runs them on Numba's CUDA simulator, slowly); reference: NumPy, node by node")


@dataclass
class TrainingMode:
    """How a program trains: the training graph's backend and feed checks, the drop probability of each
    dropout mask input, the batch-statistic outputs (output name -> running-statistic parameter) and, per
    attention seed input, the attention entries a batch row holds."""

    backend: Any
    feed_spec: FeedSpec
    rates: dict[str, float]
    statistics: dict[str, str]
    entries_per_row: dict[str, int] = field(default_factory=dict)


class Program:
    def __init__(self, graph: Graph, params: Mapping[str, np.ndarray], target: str = "cpu",
                 use_cache: bool = True, source: Graph | None = None, weight_decay: float = 0.0, seed: int = 0,
                 train_settings: dict[str, Any] | None = None):
        if target not in BACKENDS:
            raise GradcError(f"unknown target '{target}' (targets: {', '.join(TARGETS)})")
        self.graph = graph
        self.source = source if source is not None else graph
        self.target = target
        self.use_cache = use_cache
        self.state = TrainingState.initial(check_params(graph, params), seed)
        self.backend = BACKENDS[target](graph, use_cache=use_cache)
        self.feed_spec = FeedSpec.from_graph(graph)
        self.weight_decay = weight_decay
        self.clip_norm = 0.0
        self.data_parallel = False  # a rank's training graph of a data-parallel world (set_data_parallel)
        self._training: TrainingMode | None = None
        self.train_settings: dict[str, Any] | None = train_settings  # the train block, defaults filled in
        self.scaling: Scaling | None = None  # feature standardization of the data it was trained on
        self.class_names: tuple[str, ...] | None = None  # the training data's class names, when it had them
        # what checkpoints are checked against: the model's graph, before any symbolic length (a sequence's T)
        # was bound to the sizes in ``dims`` (a checkpoint holds for every length)
        self.spec_graph: Graph = graph
        self.dims: dict[str, int] = {}

    @property
    def name(self) -> str:
        return self.graph.model_name

    # ------------------------------------------------------------ the training state, by its old names
    @property
    def _params(self) -> dict[str, np.ndarray]:
        return self.state.params

    @property
    def optimizer(self) -> OptimizerState:
        return self.state.optimizer

    @optimizer.setter
    def optimizer(self, value: OptimizerState) -> None:
        self.state.optimizer = value

    @property
    def epoch(self) -> int:
        """Epochs trained (the schedule's position)."""
        return self.state.epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        self.state.epoch = int(value)

    @property
    def mask_rng(self) -> np.random.Generator:
        return self.state.masks

    @mask_rng.setter
    def mask_rng(self, value: np.random.Generator) -> None:
        self.state.masks = value

    # ------------------------------------------------------------ parameters
    @property
    def params(self) -> dict[str, np.ndarray]:
        """The parameters, by name, current and writable: on a device target this copies them back from the
        device, and the next step uploads them again (whatever the caller wrote in place)."""
        self.backend.pull()
        self.backend.host_may_change()
        return self._params

    def host_params(self) -> dict[str, np.ndarray]:
        """The parameters (and the optimizer's state) made current on the host, to read only: nothing is
        uploaded again afterwards."""
        self.backend.pull()
        return self._params

    def forward_feeds(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs and losses for feeds already checked against the evaluation graph."""
        return self.backend.forward(feeds, self._params)

    def loss_tracker(self):
        """What the training loop adds its batch losses up with (on the device, for a device target)."""
        return self.training_mode().backend.loss_tracker()

    def _feeds(self, inputs: Mapping[str, np.ndarray], validate: bool = True) -> dict[str, np.ndarray]:
        return self.feed_spec.check(inputs, scan_values=validate)

    def run(self, inputs: Mapping[str, np.ndarray], grad: bool = False) -> dict[str, np.ndarray]:
        if grad and self.graph.objective is None:
            raise GradcError("nothing to differentiate: the model has no loss and no single scalar output")
        feeds = self._feeds(inputs)
        if grad:
            return self.backend.gradients(feeds, self._params)
        return self.backend.forward(feeds, self._params)

    # ------------------------------------------------------------ training
    def set_optimizer(self, name: str = "sgd", **hyperparameters: float) -> OptimizerState:
        """Train with ``name`` (sgd, momentum, nesterov, adagrad, rmsprop, adam) from now on; its state starts
        at zero. Unnamed hyperparameters take the train block's defaults."""
        return self.state.reset_optimizer(name, **hyperparameters)

    def set_weight_decay(self, strength: float) -> None:
        """Train with objective + strength/2 * sum of squared weights from now on (rebuilds the training graph)."""
        if strength != self.weight_decay:
            self.weight_decay = float(strength)
            self._training = None

    def set_clip_norm(self, max_norm: float) -> None:
        """Clip each step's parameter gradients to a global norm of at most ``max_norm`` (0: no clipping) from
        now on (rebuilds the training graph)."""
        if max_norm != self.clip_norm:
            self.clip_norm = float(max_norm)
            self._training = None

    def set_data_parallel(self, on: bool) -> None:
        """Train as one rank of a data-parallel world from now on: the training graph takes this rank's share
        of each batch (``world.share``) and sums batch statistics over the ranks (passes/data_parallel.py);
        off, the plain training graph. Rebuilds the training graph when it changes."""
        if on != self.data_parallel:
            self.data_parallel = bool(on)
            self._training = None

    def training_mode(self) -> TrainingMode:
        """The backend of the training graph, its feed checks, dropout rates and batch statistics (built on
        first use)."""
        if self._training is None:
            graph = prepare_training(self.source, self.weight_decay, clip_norm=self.clip_norm,
                                     data_parallel=self.data_parallel)
            rates, statistics = dropout_rates(graph), statistic_outputs(graph)
            if (not rates and not statistics and self.weight_decay == 0.0 and self.clip_norm == 0.0
                    and not self.data_parallel):
                # the same as the evaluation graph
                self._training = TrainingMode(self.backend, self.feed_spec, {}, {})
            else:
                check_params(graph, self._params)
                backend = BACKENDS[self.target](graph, use_cache=self.use_cache, sibling=self.backend)
                self._training = TrainingMode(backend, FeedSpec.from_graph(graph), rates, statistics,
                                              attention_entries_per_row(graph))
        return self._training

    def step(self, inputs: Mapping[str, np.ndarray], lr: float | None = None, validate: bool = True,
             fetch: bool = True) -> float:
        """One training step, in place: forward, backward and the optimizer's update of the parameters (plain
        SGD unless :meth:`set_optimizer` chose another), in one native call on the cpu target. ``lr``, when
        given, becomes the optimizer's learning rate from this step on (a schedule sets it each epoch).
        Dropout masks are drawn from the program's seeded generator. Returns the loss before the update.
        ``validate=False`` skips the scans of the values (NaN, label range) for data that was checked when it
        was loaded; shapes and dtypes are always checked. ``fetch=False`` lets a device target keep the loss on
        the device and return a handle for :meth:`loss_tracker`."""
        if self.graph.objective is None:
            raise GradcError("nothing to train: the model has no loss")
        mode = self.training_mode()
        if mode.rates:
            inputs = {**inputs, **self._masks(inputs, mode)}
        feeds = mode.feed_spec.check(inputs, scan_values=validate)
        if lr is not None:
            self.optimizer.hyper["lr"] = float(lr)
        self.optimizer.t += 1
        return mode.backend.train_step(feeds, self._params, self.optimizer, fetch=fetch)

    def gradients(self, inputs: Mapping[str, np.ndarray], validate: bool = True,
                  shard: tuple[int, int, int] | None = None, params_only: bool = False) -> dict[str, np.ndarray]:
        """The first half of a step split in two: the training graph's losses and gradients (``grad/<name>``)
        for one batch, dropout masks drawn as :meth:`step` draws them; nothing changes. Exchange the gradients
        (an all-reduce across processes, say), then :meth:`apply_update`. Nothing is compiled for the split:
        the gradients entry point and the kernel library's update routines exist already.
        ``shard=(start, stop, rows)``: ``inputs`` are rows start..stop of a batch of ``rows``, and each dropout
        mask is rows start..stop of the mask drawn for the whole batch (the data-parallel step: every rank
        draws the same masks and keeps its rows). ``params_only``: the objective (``objective/total``) and the
        parameters' gradients alone (no outputs, no input gradients: less work)."""
        if self.graph.objective is None:
            raise GradcError("nothing to train: the model has no loss")
        mode = self.training_mode()
        if mode.rates:
            inputs = {**inputs, **self._masks(inputs, mode, shard=shard)}
        feeds = mode.feed_spec.check(inputs, scan_values=validate)
        if params_only:
            return mode.backend.param_gradients(feeds, self._params)
        return mode.backend.gradients(feeds, self._params)

    def apply_update(self, grads: Mapping[str, np.ndarray], lr: float | None = None) -> None:
        """The second half of a split step: the optimizer's update of every parameter with ``grads`` (keyed
        ``grad/<name>`` as :meth:`gradients` returns them, or by the parameter's name), in place, as
        :meth:`step` applies it after its backward pass. Other keys are ignored."""
        if self.graph.objective is None:
            raise GradcError("nothing to train: the model has no loss")
        checked = {}
        for name, param in self._params.items():
            grad = grads.get(f"grad/{name}", grads.get(name))
            if grad is None:
                raise GradcError(f"no gradient for parameter '{name}' (keys: grad/<name> or <name>)")
            grad = np.asarray(grad)
            if grad.shape != param.shape:
                raise GradcError(f"the gradient of '{name}' has shape {grad.shape}; the parameter has {param.shape}")
            checked[name] = np.asarray(grad, dtype=param.dtype, order="C")  # (ascontiguousarray makes 0-d 1-d)
        if lr is not None:
            self.optimizer.hyper["lr"] = float(lr)
        self.optimizer.t += 1
        self.training_mode().backend.apply_update(self._params, checked, self.optimizer)

    def _masks(self, inputs: Mapping[str, np.ndarray], mode: TrainingMode, drop: bool = True,
               shard: tuple[int, int, int] | None = None):
        """A dropout mask for each dropout: 0 with probability p, else 1/(1-p) (all ones with ``drop=False``);
        a seed for each attention with dropout: a draw in [0, 2^31) (-1, no dropout, with ``drop=False``).
        With ``shard`` (start, stop, rows), masks are drawn for ``rows`` and rows start..stop kept."""
        batch = shard[2] if shard is not None else len(next(iter(inputs.values())))
        start, stop = (shard[0], shard[1]) if shard is not None else (0, batch)
        masks = {}
        for name, p in mode.rates.items():
            t = mode.feed_spec.declared[name]
            if not t.is_float:  # an attention's seed; above its 32 bits, a shard's first entry
                draw = int(self.mask_rng.integers(0, 2 ** 31))
                first = start * mode.entries_per_row.get(name, 0)
                masks[name] = np.array(draw + (first << 32) if drop else -1, dtype=t.numpy_dtype)
                continue
            shape = tuple(batch if isinstance(d, str) else d for d in t.shape)
            keep = self.mask_rng.random(shape) >= p if drop else np.ones(shape, bool)
            if t.rank and isinstance(t.shape[0], str):
                keep = keep[start:stop]
            masks[name] = (keep / (1.0 - p) if drop else keep).astype(t.numpy_dtype)
        return masks

    def update_running_statistics(self, batches: Iterable[Mapping[str, np.ndarray] | tuple[Mapping, int]]
                                  ) -> None:
        """Set batchnorm's running mean and variance to their averages over ``batches`` (the training data,
        in training-sized batches) of the training graph's batch statistics, without dropout: the
        population statistics that evaluation normalizes with ("precise" batchnorm statistics). An item
        ``(batch, rows)`` says how many rows its statistics stand for (a data-parallel rank's shard: the
        global batch's, whose statistics its graph computes); a plain batch stands for its own rows."""
        mode = self.training_mode()
        if not mode.statistics:
            return
        shapes = {name: np.shape(value) for name, value in self._params.items()}
        totals = {name: np.zeros(shapes[name]) for name in mode.statistics.values()}
        rows = 0
        for item in batches:
            batch, n = item if isinstance(item, tuple) else (item, len(next(iter(item.values()))))
            feeds = mode.feed_spec.check({**batch, **self._masks(batch, mode, drop=False)}, scan_values=False)
            results = mode.backend.forward(feeds, self._params)
            for output, param in mode.statistics.items():
                totals[param] = totals[param] + results[output].astype(np.float64) * n
            rows += n
        params = self.params  # current on the host, and uploaded again after this write
        for param, total in totals.items():
            params[param][...] = total / max(rows, 1)

    def set_params(self, values: Mapping[str, np.ndarray]) -> None:
        self.state.replace_params(check_params(self.graph, values))

    # ------------------------------------------------------------ whole datasets
    def fit(self, data: Any = None, **settings: Any) -> FitResult:
        """Train on ``data`` (a built-in dataset name, a .npz/.csv path, or a dict of arrays named after the
        inputs) with the model's train block, any key overridden by ``settings`` (epochs=, batch=, optimizer=,
        lr=, schedule=, weight_decay=, early_stopping=, seed=, validation=, test=, out=, quiet=...).
        Returns the history, the best epoch and the test evaluation."""
        from ..training.fit import fit

        return fit(self, data, **settings)

    def evaluate(self, data: Any = None, split: str = "test", **settings: Any) -> Evaluation:
        """Loss and metrics on a split (test, validation, train or all) of ``data``."""
        from ..training.fit import evaluate_data

        return evaluate_data(self, data, split, **settings)

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The model's outputs for raw inputs (standardized like the training data when the program was
        trained or loaded from a checkpoint)."""
        from ..training.fit import predict

        return predict(self, inputs)

    def generate(self, prompt: str | Sequence[int], tokens: int = 20, sample: bool = False,
                 temperature: float = 1.0, seed: int = 0) -> list[int]:
        """A causal language model's text: the prompt (words of the training vocabulary, or token indices)
        and ``tokens`` more, each the arg-max of the next token's scores or, with ``sample``, a draw from
        softmax(scores / temperature). ``words(tokens)`` writes them as text."""
        from ..training.generation import generate

        return generate(self, prompt, tokens, sample, temperature, seed)

    def words(self, tokens: Sequence[int]) -> str:
        """Tokens as text: the training vocabulary's words, or the indices."""
        from ..training.generation import words_of

        return words_of(self, tokens)

    def save(self, path: str | Path) -> None:
        """Write a checkpoint (parameters, optimizer state, scaling and metadata)."""
        from ..training.fit import save_program

        save_program(self, path)
