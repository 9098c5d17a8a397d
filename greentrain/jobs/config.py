"""The one configuration dataclass of the built-in training jobs (classification and DDPM).

Every flag of ``greentrain train`` is a field of :class:`TrainConfig`. Fields left at ``None``
take the paper's value for the chosen dataset/model (Tables 2 and 3 of the ssProp paper) via
:func:`resolve`; the resolved config is what a job receives and what it records with
``client.config(...)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from greentrain.errors import ConfigError

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
SCHEDULES = ("constant", "linear", "cosine", "bar")
PERIOD_UNITS = ("epoch", "iter")
SELECTIONS = ("topk", "random")
DIMS = ("channel", "spatial", "all")

# Paper Table 2 (classification): (epochs, batch size) for ResNet-18 / ResNet-50. ResNet-26 (the
# paper's Table 7 model) uses the ResNet-18 column; ``digits`` is ours (not in the paper): sized so
# a CPU run takes seconds per epoch; ``synthetic-cifar10`` takes CIFAR-10's recipe.
_CLASSIFY_DEFAULTS: dict[str, dict[str, tuple[int, int]]] = {
    "digits": {"resnet18": (10, 64), "resnet26": (10, 64), "resnet50": (10, 64)},
    "mnist": {"resnet18": (50, 128), "resnet26": (50, 128), "resnet50": (50, 128)},
    "fashion-mnist": {"resnet18": (50, 128), "resnet26": (50, 128), "resnet50": (50, 128)},
    "cifar10": {"resnet18": (50, 128), "resnet26": (50, 128), "resnet50": (250, 128)},
    "cifar100": {"resnet18": (50, 128), "resnet26": (50, 128), "resnet50": (250, 128)},
    "synthetic-cifar10": {"resnet18": (50, 128), "resnet26": (50, 128), "resnet50": (250, 128)},
    "celeba": {"resnet18": (50, 128), "resnet26": (50, 128), "resnet50": (50, 32)},
    "imagenet": {"resnet18": (50, 32), "resnet26": (50, 32), "resnet50": (50, 16)},
}
CLASSIFY_LR = 2e-4  # Table 2, all datasets; Adam betas (0.9, 0.999)

# Paper Table 3 (generation, DDPM, AdamW): (lr, timesteps, epochs, batch size).
_DDPM_DEFAULTS: dict[str, tuple[float, int, int, int]] = {
    "digits": (1e-3, 200, 20, 64),  # ours: offline smoke-size data
    "mnist": (1e-3, 200, 300, 128),
    "fashion-mnist": (1e-3, 200, 500, 128),
    "celeba": (2e-4, 1000, 200, 128),
}


@dataclass
class TrainConfig:
    """All options of ``greentrain train`` (one field per flag).

    ``None`` means "the paper's default for this dataset/model" until :func:`resolve` fills it.
    """

    # what to train
    model: str = "resnet18"
    dataset: str = "digits"
    data_dir: str = "data"  # torchvision root / ImageFolder root for imagenet
    download: bool = False
    # recipe (paper defaults when None)
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float | None = None  # None: Adam 0 (classify) / AdamW default 0.01 (ddpm)
    seed: int = 0
    val_fraction: float | None = None  # None: paper split (Table 1); digits: 0.15
    eval_batch_size: int | None = None  # None: max(batch_size, 256) (no gradients kept)
    workers: int = 0  # DataLoader worker processes
    # ssProp
    drop: float = 0.0  # target drop rate; 0 = dense baseline
    schedule: str = "bar"
    period: int | None = None  # None: 2 epochs for bar (the paper's choice), else whole run
    period_unit: str = "epoch"
    warmup: int = 0  # dense epochs before the schedule starts
    selection: str = "topk"
    dims: str = "channel"
    sparse_linear: bool = False  # also sparsify the final Linear layer
    dropout: float = 0.0  # nn.Dropout after each conv's BatchNorm+ReLU (paper Table 6 study)
    # execution
    device: str = "auto"  # auto: cuda if available else cpu
    deterministic: bool = False  # torch.use_deterministic_algorithms(True) + cudnn settings
    max_steps_per_epoch: int | None = None  # limit training batches per epoch (tests/CI)
    limit_eval_batches: int | None = None  # limit evaluation batches (tests/CI)
    out: str | None = None  # checkpoints/samples directory; None: no checkpoints
    resume: bool = False  # continue from <out>/last.pt
    progress: bool = True  # rich progress bars (silent anyway when stderr is not a TTY)
    # metering / store
    store: str | None = None  # None: $GREENTRAIN_STORE or ./reports/greentrain.db
    name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    meters: list[str] | None = None  # None: every available meter
    meter: bool = True  # False: no in-process metering (client calls become no-ops)
    country: str | None = None
    region: str | None = None
    carbon_intensity: float | None = None  # gCO2e/kWh override
    pue: float = 1.0
    # DDPM (helper H6's job reads these)
    timesteps: int | None = None  # diffusion steps T; paper: 200 (MNIST-like) / 1000 (CelebA)
    sample_steps: int | None = None  # reverse steps used for sampling/FID; None: timesteps
    base_channels: int = 16
    channel_mults: tuple[int, ...] = (1, 2, 4)
    num_samples: int = 64  # images in the saved sample grid
    fid_samples: int = 500  # generated images for FID
    fid_weights: str | None = None  # Inception weights path for the real FID

    @property
    def job(self) -> str:
        """``"ddpm"`` or ``"classify"``."""
        return "ddpm" if self.model == "ddpm" else "classify"

    def record(self) -> dict[str, Any]:
        """The config as JSON-ready dict for ``client.config(...)`` (contract keys included)."""
        out = dataclasses.asdict(self)
        out["job"] = self.job
        out["drop_rate"] = self.drop
        for key in ("betas", "channel_mults"):
            out[key] = list(out[key])
        return out


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"unknown {name} {value!r}; choose one of: {', '.join(allowed)}")


def validate(cfg: TrainConfig) -> None:
    """Raise ConfigError (one line, naming the fix) for any bad option."""
    _choice("model", cfg.model, MODELS)
    _choice("dataset", cfg.dataset, DATASETS)
    _choice("schedule", cfg.schedule, SCHEDULES)
    _choice("period unit", cfg.period_unit, PERIOD_UNITS)
    _choice("selection", cfg.selection, SELECTIONS)
    _choice("dims", cfg.dims, DIMS)
    if cfg.model == "ddpm" and cfg.dataset not in DDPM_DATASETS:
        raise ConfigError(
            f"ddpm is not set up for {cfg.dataset!r}; use --dataset {', '.join(DDPM_DATASETS)}"
        )
    if not 0.0 <= cfg.drop < 1.0:
        raise ConfigError(f"--drop must be in [0, 1), got {cfg.drop}")
    if not 0.0 <= cfg.dropout < 1.0:
        raise ConfigError(f"--dropout must be in [0, 1), got {cfg.dropout}")
    for flag, value in (
        ("--epochs", cfg.epochs),
        ("--batch-size", cfg.batch_size),
        ("--max-steps-per-epoch", cfg.max_steps_per_epoch),
        ("--limit-eval-batches", cfg.limit_eval_batches),
        ("--eval-batch-size", cfg.eval_batch_size),
    ):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}")
    if cfg.lr is not None and cfg.lr <= 0:
        raise ConfigError(f"--lr must be > 0, got {cfg.lr}")
    if cfg.period is not None and cfg.period <= 0:
        raise ConfigError(f"--period must be > 0, got {cfg.period}")
    if cfg.warmup < 0:
        raise ConfigError(f"--warmup must be >= 0, got {cfg.warmup}")
    if cfg.val_fraction is not None and not 0.0 < cfg.val_fraction < 1.0:
        raise ConfigError(f"--val-fraction must be in (0, 1), got {cfg.val_fraction}")
    if cfg.pue < 1.0:
        raise ConfigError(f"--pue must be >= 1.0, got {cfg.pue}")
    if cfg.resume and not cfg.out:
        raise ConfigError("--resume needs --out DIR (where the checkpoints are)")
    if cfg.workers < 0:
        raise ConfigError(f"--workers must be >= 0, got {cfg.workers}")


def resolve(cfg: TrainConfig) -> TrainConfig:
    """Validate and return a copy with every ``None`` recipe field set to the paper's value."""
    validate(cfg)
    new = dataclasses.replace(cfg, tags=dict(cfg.tags))
    if cfg.model == "ddpm":
        lr, timesteps, epochs, batch = _DDPM_DEFAULTS[cfg.dataset]
        new.lr = cfg.lr if cfg.lr is not None else lr
        new.timesteps = cfg.timesteps if cfg.timesteps is not None else timesteps
        new.weight_decay = cfg.weight_decay if cfg.weight_decay is not None else 0.01
    else:
        epochs, batch = _CLASSIFY_DEFAULTS[cfg.dataset][cfg.model]
        new.lr = cfg.lr if cfg.lr is not None else CLASSIFY_LR
        new.weight_decay = cfg.weight_decay if cfg.weight_decay is not None else 0.0
    new.epochs = cfg.epochs if cfg.epochs is not None else epochs
    new.batch_size = cfg.batch_size if cfg.batch_size is not None else batch
    new.eval_batch_size = cfg.eval_batch_size or max(new.batch_size, 256)
    if new.period is None and cfg.schedule == "bar" and cfg.period_unit == "epoch":
        new.period = 2  # the paper's choice: dense one epoch, sparse the next
    return new


def to_cli_args(cfg: TrainConfig) -> list[str]:
    """The ``greentrain train`` arguments that reproduce ``cfg`` (only non-default fields)."""
    default = TrainConfig()
    args: list[str] = []
    for f in dataclasses.fields(TrainConfig):
        value, base = getattr(cfg, f.name), getattr(default, f.name)
        if value == base:
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.name == "tags":
            for key, val in value.items():
                args += ["--tag", f"{key}={val}"]
        elif f.name == "meters":
            for name in value or []:
                args += ["--meter", name]
        elif f.name == "meter":
            args.append("--meter-self" if value else "--no-meter-self")
        elif isinstance(value, bool):
            args.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, (tuple, list)):
            args += [flag, ",".join(str(v) for v in value)]
        elif value is None:
            continue  # None is every optional field's default; nothing to pass
        else:
            args += [flag, str(value)]
    return args
