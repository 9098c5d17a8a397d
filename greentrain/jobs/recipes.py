"""The paper's training recipes (ssProp, Tables 2 and 3), filled into a :class:`TrainConfig`.

:func:`resolve` validates a config and returns a copy whose ``None`` recipe fields hold the
paper's value for the dataset and model; that resolved config is what a job receives and what it
records with ``client.config(...)``.
"""

from __future__ import annotations

import dataclasses

from greentrain.jobs.config import TrainConfig

# Paper Table 2 (classification): (epochs, batch size) for ResNet-18 / ResNet-50. ResNet-26 (the
# paper's Table 7 model) uses the ResNet-18 column; ``digits`` is ours (not in the paper): sized so
# a CPU run takes seconds per epoch; ``synthetic-cifar10`` takes CIFAR-10's recipe.
CLASSIFY_DEFAULTS: dict[str, dict[str, tuple[int, int]]] = {
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
DDPM_DEFAULTS: dict[str, tuple[float, int, int, int]] = {
    "digits": (1e-3, 200, 20, 64),  # ours: offline smoke-size data
    "mnist": (1e-3, 200, 300, 128),
    "fashion-mnist": (1e-3, 200, 500, 128),
    "celeba": (2e-4, 1000, 200, 128),
}
BAR_PERIOD_EPOCHS = 2  # the paper's choice: dense one epoch, sparse the next


def resolve(cfg: TrainConfig) -> TrainConfig:
    """Validate and return a copy with every ``None`` recipe field set to the paper's value."""
    cfg.validate()
    new = dataclasses.replace(cfg)
    if cfg.model == "ddpm":
        lr, timesteps, epochs, batch = DDPM_DEFAULTS[cfg.dataset]
        new.lr = cfg.lr if cfg.lr is not None else lr
        new.timesteps = cfg.timesteps if cfg.timesteps is not None else timesteps
        new.weight_decay = cfg.weight_decay if cfg.weight_decay is not None else 0.01
    else:
        epochs, batch = CLASSIFY_DEFAULTS[cfg.dataset][cfg.model]
        new.lr = cfg.lr if cfg.lr is not None else CLASSIFY_LR
        new.weight_decay = cfg.weight_decay if cfg.weight_decay is not None else 0.0
    new.epochs = cfg.epochs if cfg.epochs is not None else epochs
    new.batch_size = cfg.batch_size if cfg.batch_size is not None else batch
    new.eval_batch_size = cfg.eval_batch_size or max(new.batch_size, 256)
    if new.period is None and cfg.schedule == "bar" and cfg.period_unit == "epoch":
        new.period = BAR_PERIOD_EPOCHS
    return new
