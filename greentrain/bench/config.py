"""Options of ``greentrain bench ssprop``: one dataclass, parsed and validated in one place.

Every bad value raises :class:`~greentrain.errors.ConfigError` with a one-line message that
names the fix; the CLI turns it into ``error: ...`` and exit code 2.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch

from greentrain.errors import ConfigError
from greentrain.jobs.config import validate_variant_options
from greentrain.jobs.models import MODEL_NAMES, STEMS

DTYPES = ("float32", "bfloat16")
DEVICES = ("cpu", "cuda")
OPTIMIZERS = ("adam", "sgd")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
SCHEDULE_DROP_RATE = 0.8  # the paper's setting: bar schedule, period 2 epochs, drop 0.8
SCHEDULE_PERIOD_EPOCHS = 2


@dataclass
class BenchConfig:
    """Settings of one ``bench ssprop`` run (all variants share them).

    Attributes:
        model: model-zoo name (``greentrain.jobs.models.build_model``), e.g. ``"resnet18"``, or
            ``"ddpm"``: the paper's DDPM UNet with its noise-prediction loss.
        unet_base: the UNet's base channels with ``ddpm`` (None: the paper's for the image
            size: 128 at 64x64).
        stem: ``"cifar"`` (3x3 stride-1 first conv, no max-pool) or ``"imagenet"``.
        num_classes: classifier width (the loss uses random labels in ``[0, num_classes)``).
        batch_size: images per step.
        input_shape: ``(C, H, W)`` of one image.
        drops: drop rates of the sparse variants, each in ``[0, 1)``.
        device: ``"cpu"`` or ``"cuda"`` (``"cuda:N"`` accepted).
        dtype: ``"float32"``, or ``"bfloat16"`` (autocast to bf16; fp32 master weights).
        channels_last: put models and inputs in channels_last memory format.
        other_layout: also time dense in the other memory layout, so the fastest dense
            configuration is the faster of the two (False: dense in ``channels_last``'s layout
            only; saves a compile per run with CUDA graphs; results say which was measured).
        compile: ``torch.compile`` every variant's model (dense too).
        compile_mode: ``torch.compile`` mode with ``compile``: ``"default"``,
            ``"reduce-overhead"`` (CUDA graphs on a GPU) or ``"max-autotune"``. Every compiled
            model uses ``fullgraph=True``: a graph break is an error, not a slow path.
        cuda_graphs: compile every variant with ``mode="reduce-overhead"`` (CUDA graphs replay
            the whole forward and backward; CUDA only).
        fused_optimizer: the optimizer's fused implementation for every variant, dense
            included (None: fused where torch has one for the device, else foreach).
        graph_replays: CUDA graph replays per timed repetition of a layer's backward.
        steps: timed rounds; each round runs one train step of every variant.
        warmup: untimed rounds before the timed ones (every variant steps in each).
        schedule_check: also time a model driven by the paper's bar schedule.
        per_layer: time each conv layer's backward in isolation.
        phases: also measure forward, backward and optimizer step of each steady variant alone,
            seconds and (on CUDA) joules per phase, next to analytic backward FLOPs
            (``greentrain.bench.phases``).
        layer_reps: timed repetitions per layer and variant (default: ``steps``).
        optimizer: ``"adam"`` (the paper's, lr 2e-4) or ``"sgd"`` (momentum 0.9).
        selection, dims: passed to ``ssprop.convert``.
        backend: the selection kernels of every sparse variant: ``"auto"`` (triton on CUDA
            when installed, aten elsewhere), ``"aten"`` or ``"triton"``.
        reselect_every: the sparse variants rank channels on one backward in N and reuse the
            kept ones in between (1: the paper's method, every backward).
        min_channels: layers of the sparse variants with fewer output channels stay dense
            (0: none).
        seed: seeds the shared initial weights and the synthetic batch.
        threads: torch intra-op threads during the run (None: torch's default); restored after.
        energy_rounds: rounds of energy blocks (GPU only); each round runs one block of every
            variant, in rotated order.
        energy_block_s: target length of one energy block, seconds: the block has enough
            consecutive steps to last about this long at dense speed (at least 2, even), so the
            NVML counter's update period (tens of ms) is small against it.
    """

    model: str = "resnet18"
    unet_base: int | None = None
    stem: str = "cifar"
    num_classes: int = 10
    batch_size: int = 64
    input_shape: tuple[int, int, int] = (3, 32, 32)
    drops: tuple[float, ...] = (0.0, 0.4, 0.8)
    device: str = "cpu"
    dtype: str = "float32"
    channels_last: bool = False
    other_layout: bool = True
    compile: bool = False
    compile_mode: str = "default"
    cuda_graphs: bool = False
    fused_optimizer: bool | None = None
    graph_replays: int = 20
    steps: int = 20
    warmup: int = 3
    schedule_check: bool = False
    per_layer: bool = True
    phases: bool = False
    layer_reps: int | None = None
    optimizer: str = "adam"
    selection: str = "topk"
    dims: str = "channel"
    backend: str = "auto"
    reselect_every: int = 1
    min_channels: int = 0
    seed: int = 0
    threads: int | None = None
    energy_rounds: int = 5
    energy_block_s: float = 1.0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready copy (tuples become lists)."""
        data = asdict(self)
        data["input_shape"] = list(self.input_shape)
        data["drops"] = list(self.drops)
        data["layer_reps"] = self.effective_layer_reps
        return data

    @property
    def effective_layer_reps(self) -> int:
        """Repetitions per layer and variant in the per-layer table."""
        return self.layer_reps if self.layer_reps is not None else self.steps


def parse_input_shape(text: str) -> tuple[int, int, int]:
    """Parse ``"C,H,W"`` (e.g. ``"3,32,32"``) into three positive integers."""
    parts = [p.strip() for p in str(text).replace("x", ",").split(",")]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or any(v <= 0 for v in values):
        raise ConfigError(
            f"--input must be three positive integers C,H,W, e.g. --input 3,32,32 (got {text!r})"
        )
    return values  # type: ignore[return-value]


def parse_drops(text: str) -> tuple[float, ...]:
    """Parse ``"0,0.4,0.8"`` into drop rates, each in ``[0, 1)``; duplicates are removed."""
    out: list[float] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            rate = float(part)
        except ValueError:
            raise ConfigError(
                f"--drops must be comma-separated numbers in [0, 1), e.g. 0,0.4,0.8 (got {part!r})"
            ) from None
        if not math.isfinite(rate) or not 0.0 <= rate < 1.0:
            raise ConfigError(
                f"--drops value {part} is out of range: each drop rate must be in [0, 1), "
                "e.g. --drops 0,0.4,0.8"
            )
        if rate not in out:
            out.append(rate)
    if not out:
        raise ConfigError("--drops needs at least one drop rate in [0, 1), e.g. --drops 0,0.8")
    return tuple(out)


def validate(cfg: BenchConfig) -> BenchConfig:
    """Check every field; return ``cfg`` or raise :class:`ConfigError` naming the fix."""
    if cfg.dtype not in DTYPES:
        raise ConfigError(f"--dtype must be one of {', '.join(DTYPES)} (got {cfg.dtype!r})")
    if cfg.optimizer not in OPTIMIZERS:
        raise ConfigError(
            f"--optimizer must be one of {', '.join(OPTIMIZERS)} (got {cfg.optimizer!r})"
        )
    models = (*MODEL_NAMES, "ddpm")
    if cfg.model not in models:
        raise ConfigError(f"--model must be one of {', '.join(models)} (got {cfg.model!r})")
    if cfg.unet_base is not None and cfg.unet_base < 8:
        raise ConfigError(f"--unet-base must be >= 8 channels (got {cfg.unet_base})")
    if cfg.stem not in STEMS:
        raise ConfigError(f"--stem must be cifar or imagenet (got {cfg.stem!r})")
    if cfg.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1 (got {cfg.batch_size})")
    if cfg.batch_size < 2:
        raise ConfigError("--batch-size must be >= 2: BatchNorm needs two samples in train mode")
    if cfg.steps < 1:
        raise ConfigError(f"--steps must be >= 1 (got {cfg.steps})")
    if cfg.warmup < 0:
        raise ConfigError(f"--warmup must be >= 0 (got {cfg.warmup})")
    if cfg.threads is not None and cfg.threads < 1:
        raise ConfigError(f"--threads must be >= 1 (got {cfg.threads})")
    if cfg.compile_mode not in COMPILE_MODES:
        raise ConfigError(
            f"--compile-mode must be one of {', '.join(COMPILE_MODES)} (got {cfg.compile_mode!r})"
        )
    if cfg.graph_replays < 1:
        raise ConfigError(f"--graph-replays must be >= 1 (got {cfg.graph_replays})")
    if cfg.energy_rounds < 1:
        raise ConfigError(f"--energy-rounds must be >= 1 (got {cfg.energy_rounds})")
    if not math.isfinite(cfg.energy_block_s) or cfg.energy_block_s <= 0:
        raise ConfigError(f"--energy-block-s must be > 0 seconds (got {cfg.energy_block_s})")
    if cfg.layer_reps is not None and cfg.layer_reps < 1:
        raise ConfigError(f"--layer-reps must be >= 1 (got {cfg.layer_reps})")
    validate_variant_options(cfg.backend, cfg.reselect_every, cfg.min_channels, cfg.device)
    parse_input_shape(",".join(str(v) for v in cfg.input_shape))
    parse_drops(",".join(str(d) for d in cfg.drops))
    kind = cfg.device.split(":", 1)[0]
    if kind not in DEVICES:
        raise ConfigError(f"--device must be cpu or cuda (got {cfg.device!r})")
    if cfg.cuda_graphs and kind != "cuda":
        raise ConfigError("--cuda-graphs needs --device cuda (CUDA graphs replay GPU work)")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                "--device cuda but no CUDA device is available to torch: use --device cpu, "
                "or install a CUDA build of torch on a GPU machine"
            )
    return cfg
