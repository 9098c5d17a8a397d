"""One naming scheme (greentrain.integrations.names): the table in docs/reference/tracker-names.md
names exactly what the callbacks, the mirror and the export send, with the unit its suffix says,
and no greentrain name is the path prefix of another or of a trainer's (MLflow's file store)."""

from __future__ import annotations

import re
from pathlib import Path

from fixtures.runs import make_run

from greentrain.integrations import names, payload
from greentrain.integrations.training import window_energy
from greentrain.record.vocabulary import DOMAINS

TABLE = Path(__file__).resolve().parents[2] / "docs" / "reference" / "tracker-names.md"
UNITS = {"_j": "J", "_kwh": "kWh", "_g": "gCO2e", "_s": "s"}


def documented() -> dict[str, str]:
    """``{name pattern: unit}`` of the table's rows."""
    rows = re.findall(r"^\| `(greentrain/[^`]+)` \| ([^|]+) \|", TABLE.read_text(), flags=re.M)
    return {name: unit.strip() for name, unit in rows}


def pattern(row: str) -> re.Pattern:
    text = re.escape(row).replace(re.escape("<window>"), r"[A-Za-z0-9_\-]+")
    domain = "(" + "|".join(map(re.escape, DOMAINS)) + ")"  # the record's domains only
    return re.compile(text.replace(re.escape("<domain>"), domain) + "$")


def sent_names() -> set[str]:
    run = make_run("n0", accs=[0.5, 0.7], epoch_energy_j=[3.6e5] * 2)
    run["net_energy_j"] = 1.0
    out = {p.key for p in payload.record_points(run) if names.is_greentrain(p.key)}
    out |= set(payload.totals(run))
    answer = {"name": "eval", "index": 1, "duration_s": 2.0,
              "energy": {"cpu": {"energy_j": 2.0, "source": "rapl:counter"}},
              "carbon": {"intensity_g_per_kwh": 400.0, "pue": 1.0}}  # fmt: skip
    return out | set(window_energy(answer, step=3).metrics())


def test_every_name_sent_is_a_row_of_the_table_with_the_unit_its_suffix_says():
    rows = documented()
    assert len(rows) == 11 and "net" not in DOMAINS  # greentrain/net_energy_j is the total
    for name in sent_names():
        matching = [row for row in rows if pattern(row).match(name)]
        assert len(matching) == 1, name
        (row,) = matching
        unit = next(u for suffix, u in UNITS.items() if name.endswith(suffix))
        assert rows[row] == unit, name


def test_no_name_is_the_path_prefix_of_another_or_of_a_trainers():
    sent = sent_names() | {names.window_name(w, q) for w in ("cpu", "net", "energy", "a/b")
                           for q in ("energy_j", "cpu_energy_j")}  # fmt: skip
    trainers = {"epoch", "epoch/loss", "train/loss", "val_acc", "greentrain"}
    for name in sent:
        assert name.count("/") == 1 and name.startswith("greentrain/"), name
        for other in sent | trainers:
            assert not other.startswith(name + "/"), (name, other)
    assert len({names.window_name("cpu", "energy_j"), names.total_name("cpu_energy_j")}) == 2
