"""What a built-in training job does, one dataclass per concern, and ``TrainConfig`` their union.

* :class:`DataOptions`: which model learns what data.
* :class:`RecipeOptions`: the optimisation recipe (paper Tables 2-3 when left at ``None``).
* :class:`SparseOptions`: ssProp's drop rate, schedule and selection.
* :class:`ExecutionOptions`: device, determinism, limits, checkpoints, progress.
* :class:`DDPMOptions`: the diffusion job's extras.

Every flag of ``greentrain train`` is a field of one of them, except the metering flags, which
belong to :class:`greentrain.run.RunOptions` (a job never meters itself). Fields left at ``None``
take the paper's value for the chosen dataset and model via :func:`greentrain.jobs.recipes.resolve`.
Allowed values of the ssProp fields come from :mod:`ssprop` itself.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from greentrain.errors import ConfigError
from ssprop import schedulers, select, settings

CLASSIFY_MODELS = ("resnet18", "resnet26", "resnet50")
MODELS = (*CLASSIFY_MODELS, "ddpm")
DATASETS = (
    "digits",
    "mnist",
    "fashion-mnist",
    "cifar10",
    "cifar100",
    "celeba",
    "imagenet",
    "synthetic-cifar10",
)
DDPM_DATASETS = ("digits", "mnist", "fashion-mnist", "celeba")
SCHEDULES = tuple(schedulers.SCHEDULERS)
PERIOD_UNITS = schedulers.PERIOD_UNITS
BACKENDS = settings.BACKENDS


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"unknown {name} {value!r}; choose one of: {', '.join(allowed)}")


def _at_least_one(*flags: tuple[str, int | None]) -> None:
    for flag, value in flags:
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}")


def validate_variant_options(
    backend: str | None, reselect_every: int, min_channels: int, device: str | None = None
) -> None:
    """Check ``--backend``, ``--reselect-every`` (integer >= 1) and ``--min-channels``
    (integer >= 0, output channels) for ``train``, ``bench ssprop`` and ``flops`` (which
    selects no kernels: ``backend`` None).

    ``--backend triton`` needs triton, and with ``device="cpu"`` also ``TRITON_INTERPRET=1``
    (a device of ``auto`` or None is resolved later, by the job). Raises ConfigError.
    """
    if backend is not None and backend not in BACKENDS:
        raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "triton":
        try:
            settings.validate_backend(backend)
        except ValueError as err:
            raise ConfigError(f"--backend triton: {err}") from None
        if device == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
            raise ConfigError(
                "--backend triton runs its kernels on CUDA tensors: use --device cuda, "
                "--backend auto, or set TRITON_INTERPRET=1 (the Triton interpreter, slow)"
            )
    if reselect_every < 1:
        raise ConfigError(
            f"--reselect-every must be >= 1 (1 ranks channels on every backward), "
            f"got {reselect_every}"
        )
    if min_channels < 0:
        raise ConfigError(
            f"--min-channels must be >= 0 (0 keeps no layer dense), got {min_channels}"
        )


@dataclass
class DataOptions:
    """Which model learns which dataset (``data_dir``: torchvision root / ImageNet root)."""

    model: str = "resnet18"
    dataset: str = "digits"
    data_dir: str = "data"
    download: bool = False

    def validate_data(self) -> None:
        _choice("model", self.model, MODELS)
        _choice("dataset", self.dataset, DATASETS)
        if self.model == "ddpm" and self.dataset not in DDPM_DATASETS:
            raise ConfigError(
                f"ddpm is not set up for {self.dataset!r}; use --dataset {', '.join(DDPM_DATASETS)}"
            )


@dataclass
class RecipeOptions:
    """The optimisation recipe; ``None`` means the paper's value for the dataset and model."""

    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float | None = None  # None: Adam 0 (classify) / AdamW default 0.01 (ddpm)
    seed: int = 0
    val_fraction: float | None = None  # None: paper split (Table 1); digits: 0.15
    eval_batch_size: int | None = None  # None: max(batch_size, 256) (no gradients kept)
    workers: int = 0  # DataLoader worker processes

    def validate_recipe(self) -> None:
        _at_least_one(
            ("--epochs", self.epochs),
            ("--batch-size", self.batch_size),
            ("--eval-batch-size", self.eval_batch_size),
        )
        if self.lr is not None and self.lr <= 0:
            raise ConfigError(f"--lr must be > 0, got {self.lr}")
        if self.val_fraction is not None and not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"--val-fraction must be in (0, 1), got {self.val_fraction}")
        if self.workers < 0:
            raise ConfigError(f"--workers must be >= 0, got {self.workers}")


@dataclass
class SparseOptions:
    """ssProp: target drop rate (0 = the dense baseline), its schedule and selection.

    ``backend`` picks the selection kernels (``ssprop.settings``); ``reselect_every`` (backward
    passes that share one ranking) and ``min_channels`` (layers with fewer output channels stay
    dense) are ssprop's opt-in variants; their defaults (1, 0) are the paper's method.
    """

    drop: float = 0.0
    schedule: str = "bar"
    period: int | None = None  # None: 2 epochs for bar (the paper's choice), else whole run
    period_unit: str = "epoch"
    warmup: int = 0  # dense epochs before the schedule starts
    selection: str = "topk"
    dims: str = "channel"
    sparse_linear: bool = False  # also sparsify the final Linear layer
    dropout: float = 0.0  # nn.Dropout after each conv (paper Table 6 study)
    backend: str = "auto"  # selection kernels: auto | aten | triton
    reselect_every: int = 1  # backward passes that share one channel ranking (1 = the paper)
    min_channels: int = 0  # layers with fewer output channels stay dense (0 = none)

    def validate_sparse(self) -> None:
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("period unit", self.period_unit, PERIOD_UNITS)
        _choice("selection", self.selection, select.SELECTIONS)
        _choice("dims", self.dims, select.DIMS)
        if not 0.0 <= self.drop < 1.0:
            raise ConfigError(f"--drop must be in [0, 1), got {self.drop}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.period is not None and self.period <= 0:
            raise ConfigError(f"--period must be > 0, got {self.period}")
        if self.warmup < 0:
            raise ConfigError(f"--warmup must be >= 0, got {self.warmup}")
        validate_variant_options(
            self.backend, self.reselect_every, self.min_channels, getattr(self, "device", None)
        )


@dataclass
class ExecutionOptions:
    """Where and how the job runs; ``out`` holds checkpoints and samples (None: none kept)."""

    device: str = "auto"  # auto: cuda if available else cpu
    deterministic: bool = False  # torch.use_deterministic_algorithms(True) + cudnn settings
    max_steps_per_epoch: int | None = None  # limit training batches per epoch (tests/CI)
    limit_eval_batches: int | None = None  # limit evaluation batches (tests/CI)
    out: str | None = None
    resume: bool = False  # continue from <out>/last.pt
    progress: bool = True  # rich progress bars (silent anyway when stderr is not a terminal)
    compile: bool = False  # torch.compile(fullgraph=True) the training model
    cuda_graphs: bool = False  # compile with mode="reduce-overhead": CUDA graphs (CUDA only)
    stop_after_epoch: int | None = None  # train only the run's first N epochs (a probe)

    def validate_execution(self) -> None:
        _at_least_one(
            ("--max-steps-per-epoch", self.max_steps_per_epoch),
            ("--limit-eval-batches", self.limit_eval_batches),
            ("--stop-after-epoch", self.stop_after_epoch),
        )
        if self.resume and not self.out:
            raise ConfigError("--resume needs --out DIR (where the checkpoints are)")
        if self.cuda_graphs and self.device.split(":", 1)[0] not in ("auto", "cuda"):
            raise ConfigError("--cuda-graphs needs --device cuda (CUDA graphs replay GPU work)")


@dataclass
class DDPMOptions:
    """The DDPM job: diffusion steps, UNet shape, samples and FID."""

    timesteps: int | None = None  # diffusion steps T; paper: 200 (MNIST-like) / 1000 (CelebA)
    sample_steps: int | None = None  # reverse steps used for sampling/FID; None: timesteps
    base_channels: int = 16
    channel_mults: tuple[int, ...] = (1, 2, 4)
    num_samples: int = 64  # images in the saved sample grid
    fid_samples: int = 500  # generated images for FID
    fid_weights: str | None = None  # Inception weights path for the real FID


# Base order = field order: data, recipe, ssProp, execution, DDPM (the order of `train --help`).
@dataclass
class TrainConfig(DDPMOptions, ExecutionOptions, SparseOptions, RecipeOptions, DataOptions):
    """All job options of ``greentrain train``, one field per flag (see the concern classes)."""

    @property
    def job(self) -> str:
        """``"ddpm"`` or ``"classify"``."""
        return "ddpm" if self.model == "ddpm" else "classify"

    def validate(self) -> None:
        """Raise ConfigError (one line, naming the fix) for any bad option."""
        self.validate_data()
        self.validate_recipe()
        self.validate_sparse()
        self.validate_execution()

    def record(self) -> dict[str, Any]:
        """The config as a JSON-ready dict for ``client.config(...)`` (contract keys included)."""
        out = dataclasses.asdict(self)
        out["job"] = self.job
        out["drop_rate"] = self.drop
        for key in ("betas", "channel_mults"):
            out[key] = list(out[key])
        return out


def to_cli_args(cfg: Any, concerns: tuple[type, ...] | None = None) -> list[str]:
    """The ``greentrain train`` flags that reproduce ``cfg``: only fields that differ from their
    default, in field order; ``concerns`` restricts them to those dataclasses' fields."""
    args: list[str] = []
    for f in dataclasses.fields(cfg):
        if concerns is not None and not any(f.name in c.__dataclass_fields__ for c in concerns):
            continue
        value = getattr(cfg, f.name)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if value == default or value is None:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, (tuple, list)):
            args += [flag, ",".join(str(v) for v in value)]
        else:
            args += [flag, str(value)]
    return args
