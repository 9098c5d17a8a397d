"""The stages of the GPU run, in priority order, each with its own deadline.

Issue 26's order: (1) a first check of 60-90 s (versions; the kernel tests on CUDA; the custom
ops under ``torch.compile(mode="reduce-overhead")`` against eager gradients; the per-layer
capture with the forward on the capture stream); (2) ResNet-50 224², batch 64, bf16,
channels_last, CUDA graphs, dense vs constant 0.8 (and drop 0), step time and J/step from the
NVML counter, Triton selection; (3) the same with ``--backend aten``; (4) per-layer conv
backward, eager, Triton vs aten; then, only if time is left, CIFAR ResNet-18, the DDPM UNet
(base 128, 64²) and joules per epoch.

Nothing in stages 1-4 needs codecarbon, zeus or diffusers: benches run with ``--no-record``.
``limit_s`` is a stage's own deadline; the runner also caps it at the run's time left and
starts a stage only when at least ``min_s`` is left. The seconds are budgets for an H100 with
a cold compile cache (the first wave's H100 took 17.7 ms per dense CUDA-graph step; compiles
dominate); the first call's whole budget is 9 minutes.

``{py}`` in a command is the runbook's Python, ``{work}`` the run's work folder. pytest runs
with ``-v``: a stage killed at its deadline writes no JUnit file, but its stdout keeps one line
per finished test.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GT = ["{py}", "-m", "greentrain"]
# progress lines go to the stage's log: a stage killed at its deadline shows how far it got
BENCH = [*GT, "bench", "ssprop", "--no-record", "--json"]
R50 = ["--model", "resnet50", "--stem", "imagenet", "--input", "3,224,224", "--batch-size", "64"]
GPU_BF16_CL = ["--device", "cuda", "--dtype", "bfloat16", "--channels-last"]
# 6 energy rounds: the fewest whose median interval reaches 95% (order statistics)
GRAPH_ROUNDS = ["--steps", "30", "--warmup", "5", "--energy-rounds", "6", "--energy-block-s", "1"]
# per-layer stages: whole-model rounds only as long as the bench needs them; the layer table
# is the figure (each layer's backward replayed in a CUDA graph, 10 interleaved repetitions)
LAYER_ROUNDS = ["--steps", "2", "--warmup", "1", "--energy-rounds", "1", "--energy-block-s",
                "0.2", "--layer-reps", "10", "--graph-replays", "20"]  # fmt: skip


@dataclass(frozen=True)
class Stage:
    """One subprocess of the run.

    ``output``: what its stdout is: ``"bench"`` (a ``bench ssprop --json`` result), ``"json"``
    (any JSON object) or ``"text"`` (pytest: its JUnit XML file is summarised instead).
    ``where``: the result is a row of the where-table. ``targets``: figure -> upper bound
    (see :mod:`gpu_collect`).
    """

    name: str
    what: str
    argv: tuple[str, ...]
    limit_s: float
    min_s: float
    output: str = "bench"
    optional: bool = False
    where: bool = False
    targets: dict[str, float] = field(default_factory=dict)


def gpu_stages() -> list[Stage]:
    """The plan for the lent GPU machine (the first call: 9 minutes in all)."""
    return [
        Stage("versions", "GPU model, driver, torch/CUDA/Triton versions, NVML counter",
              ("{py}", "benchmarks/gpu/gpu_versions.py"), 30, 5, output="json"),
        Stage("cuda-tests",
              "kernel tests on CUDA; reduce-overhead compile vs eager gradients; per-layer "
              "CUDA-graph capture on the forward's stream",
              ("{py}", "-m", "pytest", "-v", "-rs", "-p", "no:cacheprovider", "-k", "cuda",
               "--junitxml", "{work}/cuda-tests.xml", "tests/ssprop/test_ssprop_kernels.py",
               "tests/ssprop/test_ssprop_cuda_graphs.py"), 150, 30, output="text"),
        Stage("resnet50-graphs",
              "ResNet-50 224² b64 bf16 channels_last, CUDA graphs, Triton selection: dense vs "
              "drop 0 and 0.8, step time and NVML J/step",
              (*BENCH, *R50, *GPU_BF16_CL, "--cuda-graphs", "--drops", "0,0.8",
               "--no-other-layout", "--no-layers", *GRAPH_ROUNDS), 240, 90, where=True,
              targets={"step": 0.95, "energy": 0.94, "zero": 1.01}),
        Stage("resnet50-graphs-aten", "the same with --backend aten (no Triton selection)",
              (*BENCH, *R50, *GPU_BF16_CL, "--cuda-graphs", "--backend", "aten", "--drops",
               "0.8", "--no-other-layout", "--no-layers", *GRAPH_ROUNDS), 180, 60, where=True),
        Stage("layers-triton", "ResNet-50 per-layer conv backward, eager, Triton selection",
              (*BENCH, *R50, *GPU_BF16_CL, "--backend", "triton", "--drops", "0.8",
               *LAYER_ROUNDS), 90, 30, targets={"layer_backward": 0.65}),
        Stage("layers-aten", "ResNet-50 per-layer conv backward, eager, aten selection",
              (*BENCH, *R50, *GPU_BF16_CL, "--backend", "aten", "--drops", "0.8",
               *LAYER_ROUNDS), 90, 30),
        Stage("resnet18-graphs", "CIFAR ResNet-18 b128 bf16 channels_last, CUDA graphs",
              (*BENCH, "--model", "resnet18", "--input", "3,32,32", "--batch-size", "128",
               *GPU_BF16_CL, "--cuda-graphs", "--drops", "0,0.8", "--no-other-layout",
               "--no-layers", *GRAPH_ROUNDS), 180, 90, optional=True, where=True,
              targets={"step": 0.93, "zero": 1.01}),
        Stage("ddpm-graphs", "the paper's DDPM UNet (base 128) at 64², b64, CUDA graphs",
              (*BENCH, "--model", "ddpm", "--input", "3,64,64", "--unet-base", "128",
               "--batch-size", "64", *GPU_BF16_CL, "--cuda-graphs", "--drops", "0.8",
               "--no-other-layout", "--no-layers", *GRAPH_ROUNDS), 240, 120, optional=True,
              where=True, targets={"step": 0.82, "energy": 0.80}),
        Stage("epochs", "joules per epoch: dense, constant 0.8, bar 0.8 (synthetic CIFAR-10)",
              (*GT, "sweep", "--dataset", "synthetic-cifar10", "--drop", "0,0.8", "--schedule",
               "constant,bar", "--epochs", "2", "--device", "cuda", "--no-progress", "--meter",
               "nvml", "--carbon-intensity", "475", "--store", "{work}/epochs.db",
               "--sweep-id", "gpu-runbook-epochs"), 240, 150, output="text", optional=True),
    ]  # fmt: skip


def simulated_stages() -> list[Stage]:
    """The CPU-runnable path of the plan, for ``run --simulate-gpu-machine`` (CI): the same
    scripts and CLI, a tiny model on CPU."""
    tiny = ["--model", "resnet18", "--input", "3,8,8", "--batch-size", "4", "--drops", "0,0.8",
            "--steps", "6", "--warmup", "1", "--layer-reps", "1", "--threads", "1"]  # fmt: skip
    return [
        Stage("versions", "versions (no GPU here)", ("{py}", "benchmarks/gpu/gpu_versions.py"),
              60, 5, output="json"),
        Stage("cuda-tests", "the CUDA tests (skipped without a GPU, with their reason)",
              ("{py}", "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
               "--junitxml", "{work}/cuda-tests.xml", "tests/ssprop/test_ssprop_cuda_graphs.py"),
              90, 5, output="text"),
        Stage("tiny-cpu", "tiny ResNet-18 on CPU through bench ssprop --no-record",
              (*BENCH, *tiny, "--no-other-layout"), 120, 5, where=True),
    ]  # fmt: skip
