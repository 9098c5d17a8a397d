"""The classification job: the paper's ResNet recipe, dense or with ssProp, reporting per epoch.

Recipe (paper Sec. "Implementation", Tables 1-2): Adam (lr 2e-4, betas (0.9, 0.999)), Kaiming
init (in the model zoo), no LR scheduler, no augmentation, per-dataset normalisation, the paper's
batch sizes/epochs; every choice is a :class:`~greentrain.jobs.config.TrainConfig` field.

Per epoch (1-based ``epoch``) the job logs through :mod:`greentrain.client`, inside
``client.window("epoch", index=epoch - 1)`` (0-based, as the harness numbers windows) so
the harness records that epoch's energy:
``epoch``, ``train_loss`` (mean over the epoch's iterations), ``test_acc`` (top-1 fraction; on
CelebA the mean attribute accuracy), ``test_top5`` (ImageNet), ``test_attr_acc`` (CelebA),
``val_acc`` (when the dataset has a val split), ``drop_rate`` (mean of the rates the drop
scheduler applied in the epoch's iterations), ``backward_flops_per_iter`` (analytic backward
FLOPs per iteration, ``ssprop.flops`` Eq. 6-8, averaged over the epoch's iterations at the rate
each ran at -- equal to the FLOPs at the mean rate when the rate is constant within the epoch,
as with the paper's bar schedule of period 2 epochs), ``epoch_time_s`` (wall time of the
epoch's training + evaluation). After the last epoch: ``best_test_acc`` and ``final_test_acc``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, RandomSampler
from torch.utils.data.distributed import DistributedSampler

import ssprop
from greentrain import client
from greentrain.errors import ConfigError
from greentrain.jobs import checkpoint as ckpt
from greentrain.jobs.config import TrainConfig
from greentrain.jobs.data import DataBundle, load_for
from greentrain.jobs.distributed import DistContext, all_reduce_mean, barrier, pick_device
from greentrain.jobs.loop import (
    FlopsAt,
    build_drop_scheduler,
    compiled,
    deterministic,
    epoch_flops_plan,
    seed_everything,
    train_steps,
)
from greentrain.jobs.models import build_model
from greentrain.jobs.progress import EpochProgress
from greentrain.jobs.recipes import resolve


@dataclass
class ClassifyResult:
    """What a finished (or stopped) classification run produced."""

    history: list[dict[str, Any]] = field(default_factory=list)  # one dict per epoch
    best_test_acc: float | None = None
    final_test_acc: float | None = None
    model: nn.Module | None = None  # the trained model (unwrapped from DDP)
    checkpoint: str | None = None  # path of the last checkpoint, when --out was given
    epochs_done: int = 0


def add_dropout(model: nn.Module, p: float) -> nn.Module:
    """Put ``nn.Dropout(p)`` right after every ``nn.Conv2d`` (paper Table 6 study).

    Each convolution ``conv`` becomes ``nn.Sequential(conv, nn.Dropout(p))``: dropout acts on
    the convolution's output, before the BatchNorm that follows it; the stem and the 1x1
    downsample convolutions included. Done before ``ssprop.convert``, which finds the
    convolutions inside the new containers. Returns ``model`` (changed in place).
    """
    if p <= 0:
        return model
    targets = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d) and name]
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        conv = getattr(parent, child)
        setattr(parent, child, nn.Sequential(conv, nn.Dropout(p)))
    return model


def build_classifier(cfg: TrainConfig, data: DataBundle) -> nn.Module:
    """The zoo model for ``cfg`` with dropout and ssProp applied as configured."""
    stem = "imagenet" if cfg.dataset == "imagenet" else "cifar"
    model = build_model(
        cfg.model, num_classes=data.num_classes, in_channels=data.in_channels, stem=stem
    )
    add_dropout(model, cfg.dropout)
    if cfg.drop > 0:
        try:
            ssprop.convert(
                model,
                drop_rate=cfg.drop,
                selection=cfg.selection,
                dims=cfg.dims,
                linear=cfg.sparse_linear,
                backend=cfg.backend,
                reselect_every=cfg.reselect_every,
                min_channels=cfg.min_channels,
            )
        except ValueError as err:
            raise ConfigError(str(err)) from err
    return model


def _loader(dataset: Any, batch_size: int, cfg: TrainConfig, **kw: Any) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=cfg.workers,
        pin_memory=torch.cuda.is_available(),
        **kw,
    )


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    *,
    task: str,
    top5: bool = False,
    limit_batches: int | None = None,
) -> dict[str, float]:
    """Accuracy of ``model`` on ``loader``: ``acc`` (top-1, or mean attribute accuracy for
    multi-label), plus ``top5`` when asked. Fractions in [0, 1]."""
    was_training = model.training
    model.eval()
    correct = correct5 = total = 0.0
    for i, (x, y) in enumerate(loader):
        if limit_batches is not None and i >= limit_batches:
            break
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        out = model(x)
        if task == "multilabel":
            correct += ((out > 0).long() == y.long()).float().sum().item()
            total += y.numel()
        else:
            correct += (out.argmax(1) == y).sum().item()
            if top5:
                k = min(5, out.shape[1])
                correct5 += (out.topk(k, dim=1).indices == y[:, None]).any(1).sum().item()
            total += y.shape[0]
    model.train(was_training)
    result = {"acc": correct / total if total else math.nan}
    if top5:
        result["top5"] = correct5 / total if total else math.nan
    return result


def train_classifier(
    cfg: TrainConfig,
    *,
    ctx: DistContext | None = None,
    data: DataBundle | None = None,
    power_w: Callable[[], float | None] | None = None,
    forecast: Callable[[], str | None] | None = None,
    stop_after_epoch: int | None = None,
) -> ClassifyResult:
    """Train (or resume) the classification job described by ``cfg``.

    ``ctx`` is the process's place in DDP (default: one process on ``cfg.device``). Metering is
    the caller's business (see :func:`greentrain.jobs.distributed`/``launch``); the job only talks
    to :mod:`greentrain.client`, a no-op outside a run. ``power_w`` and ``forecast`` feed the
    progress bar (:class:`~greentrain.jobs.progress.EpochProgress`). ``stop_after_epoch``
    (1-based) ends the session after that epoch as if interrupted -- for tests of ``--resume``.
    """
    cfg = resolve(cfg)
    if stop_after_epoch is None:
        stop_after_epoch = cfg.stop_after_epoch
    if ctx is None:
        ctx = DistContext(device=pick_device(cfg.device))
    device = ctx.device
    with deterministic(cfg.deterministic):
        seed_everything(cfg.seed)
        if data is None:
            data = load_for(cfg, download=cfg.download and ctx.is_main)
        model = build_classifier(cfg, data)
        flops_at = FlopsAt(model, (cfg.batch_size, *data.input_shape))
        model.to(device)

        if ctx.distributed:
            sampler: Any = DistributedSampler(data.train, shuffle=True, seed=cfg.seed)
            generator = None
        else:
            generator = torch.Generator()
            sampler = RandomSampler(data.train, generator=generator)
        train_loader = _loader(data.train, cfg.batch_size, cfg, sampler=sampler)
        test_loader = _loader(data.test, cfg.eval_batch_size, cfg, shuffle=False)
        val_loader = (
            _loader(data.val, cfg.eval_batch_size, cfg, shuffle=False)
            if data.val is not None
            else None
        )
        steps_per_epoch = len(train_loader)
        if cfg.max_steps_per_epoch is not None:
            steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)

        train_model: nn.Module = model
        if ctx.distributed:
            train_model = DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        train_model = compiled(train_model, cfg, device)
        optimizer = torch.optim.Adam(
            model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay
        )
        scheduler = build_drop_scheduler(cfg, model, cfg.epochs, steps_per_epoch)
        if data.task == "multilabel":
            bce = nn.BCEWithLogitsLoss()

            def criterion(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
                return bce(out, y.float())

        else:
            criterion = nn.CrossEntropyLoss()

        result = ClassifyResult(model=model)
        start_epoch = 0
        if cfg.resume:
            start_epoch, extra = ckpt.resume(
                cfg.out, model=model, optimizer=optimizer, scheduler=scheduler,
                announce=ctx.is_main,
            )  # fmt: skip
            result.history = list(extra.get("history", []))
            result.best_test_acc = extra.get("best_test_acc")
            result.epochs_done = start_epoch
        if ctx.is_main:
            plan = epoch_flops_plan(scheduler, flops_at, cfg.epochs, steps_per_epoch)
            client.config(
                **cfg.record(), steps_per_epoch=steps_per_epoch, world_size=ctx.world_size,
                **({"backward_flops_per_epoch": plan} if plan else {}),
            )  # fmt: skip

        top5 = cfg.dataset == "imagenet"
        with EpochProgress(cfg.progress and ctx.is_main, power_w=power_w, forecast=forecast) as bar:
            for e in range(start_epoch, cfg.epochs):
                epoch = e + 1
                # on every rank: the client marks windows from each node's local rank 0 only, so
                # under `greentrain run` on each node every node's wrapper reads its meters here
                with client.window("epoch", index=e):
                    t0 = time.perf_counter()
                    if generator is not None:
                        generator.manual_seed(cfg.seed * 1_000_003 + e)
                    else:
                        sampler.set_epoch(e)
                    train_model.train()
                    bar.start_epoch(e, cfg.epochs, steps_per_epoch)

                    def loss_fn(batch: Any) -> torch.Tensor:
                        x, y = batch
                        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                        return criterion(train_model(x), y)

                    done = train_steps(
                        train_loader,
                        steps_per_epoch,
                        loss_fn,
                        optimizer=optimizer,
                        scheduler=scheduler,
                        flops_at=flops_at,
                        bar=bar,
                    )
                    train_loss = all_reduce_mean(done.mean(done.loss_sum), ctx)
                    # mean over the epoch's steps; rounded so 0.8 summed 313 times reads 0.8
                    drop_rate = round(done.mean(done.rate_sum), 12)
                    metrics: dict[str, Any] = {}
                    if ctx.is_main:
                        test = evaluate(
                            model,
                            test_loader,
                            device,
                            task=data.task,
                            top5=top5,
                            limit_batches=cfg.limit_eval_batches,
                        )
                        metrics = {
                            "epoch": epoch,
                            "train_loss": train_loss,
                            "test_acc": test["acc"],
                        }
                        if top5:
                            metrics["test_top5"] = test["top5"]
                        if data.task == "multilabel":
                            metrics["test_attr_acc"] = test["acc"]
                        if val_loader is not None:
                            val = evaluate(
                                model,
                                val_loader,
                                device,
                                task=data.task,
                                limit_batches=cfg.limit_eval_batches,
                            )
                            metrics["val_acc"] = val["acc"]
                        metrics["drop_rate"] = drop_rate
                        metrics["backward_flops_per_iter"] = done.mean(done.flops_sum)
                        metrics["epoch_time_s"] = time.perf_counter() - t0
                        client.log(step=epoch, **metrics)
                        bar.end_epoch(loss=train_loss, acc=test["acc"], drop_rate=drop_rate)
                if ctx.is_main:
                    result.history.append(metrics)
                    acc = metrics["test_acc"]
                    if result.best_test_acc is None or acc > result.best_test_acc:
                        result.best_test_acc = acc
                    result.final_test_acc = acc
                    if cfg.out:
                        result.checkpoint = str(
                            ckpt.save_checkpoint(
                                cfg.out,
                                model=model,
                                optimizer=optimizer,
                                scheduler=scheduler,
                                epoch=e,
                                extra={
                                    "history": result.history,
                                    "best_test_acc": result.best_test_acc,
                                },
                            )
                        )
                result.epochs_done = epoch
                barrier(ctx)
                if stop_after_epoch is not None and epoch >= stop_after_epoch:
                    break
        if ctx.is_main and result.epochs_done >= cfg.epochs and result.history:
            result.final_test_acc = result.history[-1]["test_acc"]
            client.log(best_test_acc=result.best_test_acc, final_test_acc=result.final_test_acc)
    return result
