"""Produce the README's ssProp performance table (Markdown on stdout).

Runs the same code as ``greentrain bench ssprop`` (``greentrain.bench.run_ssprop_bench``) for
each layout (contiguous, then channels_last), or renders results saved with
``greentrain bench ssprop --json > result.json``::

    python benchmarks/bench_ssprop.py --model resnet18 --batch-size 64 --drops 0,0.8 --steps 20
    python benchmarks/bench_ssprop.py --from-json nchw.json cl.json     # no re-measuring

Nothing is recorded in the store (use ``greentrain bench ssprop`` for a recorded run).
"""

from __future__ import annotations

import argparse
import json
import sys

from greentrain.bench import (
    BenchConfig,
    parse_drops,
    parse_input_shape,
    run_ssprop_bench,
    to_markdown,
    validate,
)
from greentrain.errors import ConfigError


def _command(cfg: BenchConfig) -> str:
    parts = [
        "greentrain bench ssprop",
        f"--model {cfg.model}",
        f"--batch-size {cfg.batch_size}",
        "--input " + ",".join(str(v) for v in cfg.input_shape),
        "--drops " + ",".join(f"{d:g}" for d in cfg.drops),
        f"--device {cfg.device}",
        f"--dtype {cfg.dtype}",
        f"--steps {cfg.steps}",
    ]
    if cfg.warmup != BenchConfig.warmup:
        parts.append(f"--warmup {cfg.warmup}")
    if cfg.layer_reps is not None and cfg.layer_reps != cfg.steps:
        parts.append(f"--layer-reps {cfg.layer_reps}")
    if cfg.channels_last:
        parts.append("--channels-last")
    if cfg.compile:
        parts.append("--compile")
    if cfg.schedule_check:
        parts.append("--schedule-check")
    return " ".join(parts)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet18")
    p.add_argument("--stem", default="cifar")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--input", default="3,32,32")
    p.add_argument("--drops", default="0,0.8")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument(
        "--layouts", default="contiguous,channels_last", help="contiguous and/or channels_last"
    )
    p.add_argument("--compile", action="store_true")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--no-layers", action="store_true", help="skip the per-layer tables")
    p.add_argument("--no-schedule-check", action="store_true")
    p.add_argument(
        "--from-json", nargs="+", metavar="FILE", help="render saved --json results instead"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    results: list[tuple[dict, str | None]] = []
    try:
        if args.from_json:
            for path in args.from_json:
                with open(path, encoding="utf-8") as fh:
                    result = json.load(fh)
                results.append((result, _command(_config_of(result))))
        else:
            for layout in [s.strip() for s in args.layouts.split(",") if s.strip()]:
                if layout not in ("contiguous", "channels_last"):
                    raise ConfigError(f"--layouts takes contiguous,channels_last (got {layout!r})")
                cfg = validate(
                    BenchConfig(
                        model=args.model,
                        stem=args.stem,
                        batch_size=args.batch_size,
                        input_shape=parse_input_shape(args.input),
                        drops=parse_drops(args.drops),
                        device=args.device,
                        dtype=args.dtype,
                        channels_last=layout == "channels_last",
                        compile=args.compile,
                        steps=args.steps,
                        warmup=args.warmup,
                        schedule_check=not args.no_schedule_check,
                        per_layer=not args.no_layers,
                    )
                )
                log = lambda m: print(f"[bench] {m}", file=sys.stderr, flush=True)  # noqa: E731
                results.append((run_ssprop_bench(cfg, log=log), _command(cfg)))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for result, command in results:
        print(to_markdown(result, command=command, per_layer=not args.no_layers))
    return 0


def _config_of(result: dict) -> BenchConfig:
    c = dict(result["config"])
    c["input_shape"] = tuple(c["input_shape"])
    c["drops"] = tuple(c["drops"])
    known = set(BenchConfig.__dataclass_fields__)
    return BenchConfig(**{k: v for k, v in c.items() if k in known})


if __name__ == "__main__":
    sys.exit(main())
