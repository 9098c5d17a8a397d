"""Record the real runs the forecast back-test replays: varied jobs with epochs of a few
seconds, run one after another into one store (``reports/forecast-backtest/real-jobs.db``).

Kinds (each ``--seeds`` times, every run ``--epochs`` epochs, metered by the ``estimate``
meter, the only one a machine without RAPL or a GPU has):

* ``dense``, ``constant 0.8``, ``bar 0.8``: ``greentrain train`` (resnet18 on digits,
  ``--max-steps-per-epoch`` batches per epoch, one thread);
* ``contended``: ``greentrain train`` dense with two threads on a 2-core machine other jobs
  share (its threads wait for each other and for the other jobs);
* ``growing``, ``shrinking``: a job wrapped by ``greentrain run`` (:func:`epoch_job`, matrix
  products) whose epochs do 8% more, or 6% less, work than the one before.

Sibling runs: the seeds of a kind share its command but for ``--seed``, so each run has the
earlier seeds of its kind as siblings (``greentrain.record.siblings``). Usage::

    nice -n 10 python benchmarks/forecast_real_jobs.py --seeds 4 \
        --store reports/forecast-backtest/real-jobs.db
    python benchmarks/forecast_backtest.py reports/forecast-backtest/real-jobs.db --siblings
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

GROWTH = {"growing": 1.08, "shrinking": 0.94}


def epoch_job(epochs: int, growth: float, seed: int) -> None:
    """A wrapped job: ``epochs`` epoch windows, epoch ``e`` doing ``units * growth**e`` products
    of two 256x256 matrices (float64; about 2 ms each on one core), ``units`` 600 for a growing
    job, 1,200 for a shrinking one (first epochs of 1-2 s of CPU). Reports its epoch count through
    ``client.config``."""
    import numpy as np

    from greentrain import client

    client.config(epochs=epochs, growth=growth, seed=seed)
    units = 600 if growth > 1 else 1200
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((256, 256))
    for epoch in range(epochs):
        with client.window("epoch", index=epoch):
            b = a
            for _ in range(round(units * growth**epoch)):
                b = np.tanh(b @ a / 16.0)
            client.log(epoch=epoch + 1, checksum=float(b.sum()))


def commands(kind: str, seed: int, epochs: int, steps: int, store: str) -> tuple[list[str], dict]:
    """The command of one run and its environment's additions."""
    py = sys.executable
    common = ["--store", store, "--meter", "estimate", "--tag", f"kind={kind}"]
    if kind in GROWTH:
        job = [py, os.path.abspath(__file__), "job", "--epochs", str(epochs),
               "--growth", str(GROWTH[kind]), "--seed", str(seed)]  # fmt: skip
        return [py, "-m", "greentrain", "run", *common, "--name", f"{kind}", "--", *job], {
            "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"
        }  # fmt: skip
    drop = {"dense": "0", "contended": "0", "constant 0.8": "0.8", "bar 0.8": "0.8"}[kind]
    schedule = "bar" if kind == "bar 0.8" else "constant"
    train = [py, "-m", "greentrain", "train", *common, "--name", kind, "--epochs", str(epochs),
             "--seed", str(seed), "--drop", drop, "--schedule", schedule,
             "--max-steps-per-epoch", str(steps), "--limit-eval-batches", "2",
             "--no-progress"]  # fmt: skip
    threads = "2" if kind == "contended" else "1"
    return train, {"OMP_NUM_THREADS": threads}


KINDS = ("dense", "constant 0.8", "bar 0.8", "growing", "shrinking", "contended")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="?", default="record", choices=["record", "job"])
    parser.add_argument("--store", default="reports/forecast-backtest/real-jobs.db")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=4, help="batches per epoch (train jobs)")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--growth", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.what == "job":
        epoch_job(args.epochs, args.growth, args.seed)
        return 0
    for seed in range(args.first_seed, args.first_seed + args.seeds):  # seeds outermost
        for kind in args.kinds.split(","):
            cmd, env = commands(kind, seed, args.epochs, args.steps, args.store)
            started = time.monotonic()
            done = subprocess.run(cmd, env={**os.environ, **env}, check=False)
            print(f"{kind} seed {seed}: exit {done.returncode}, "
                  f"{time.monotonic() - started:.0f} s", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
