"""Back-test greentrain's energy forecast on recorded runs (issue 16).

For every finished run with two or more measured epochs in the given stores, replay the
forecast as made after 10% and 25% of its epochs and compare it with the energy its epochs
really took (method: ``greentrain.report.backtest``). Prints Markdown (the README's table)::

    python benchmarks/forecast_backtest.py reports/reference.db runs/sweeps.db
    python benchmarks/forecast_backtest.py STORE --at 0.1,0.25,0.5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from greentrain.errors import GreentrainError
from greentrain.report.backtest import backtest, markdown
from greentrain.store import Store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stores", nargs="+", help="store files to read")
    parser.add_argument("--at", default="0.1,0.25", help="fractions of the run's epochs seen")
    args = parser.parse_args(argv)
    try:
        fractions = [float(f) for f in args.at.split(",")]
    except ValueError:
        parser.error(f"--at takes comma-separated fractions, e.g. 0.1,0.25 (got {args.at!r})")
    if not all(0 < f < 1 for f in fractions):
        parser.error("--at fractions must lie between 0 and 1")
    for path in args.stores:
        try:
            store = Store(path, create=False)
            runs = [store.get_run(r["id"]) for r in store.list_runs()]
        except GreentrainError as err:
            print(f"error: {path}: {err}", file=sys.stderr)
            return 1
        rows = backtest(runs, fractions)
        print(markdown(rows, f"{Path(path).name}: {len(rows)} forecasts of {len(runs)} runs"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
