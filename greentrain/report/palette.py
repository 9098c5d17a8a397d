"""One colour per configuration, the same in every chart of the app and every exported figure.

Colours come from the Okabe-Ito palette (distinguishable with the common colour-vision
deficiencies), assigned in the sorted order of the configuration labels so that the same set of
configurations gets the same colours on every surface; dense is always :data:`DENSE`. Beyond
eight sparse configurations the palette repeats (the legend and the labels still tell them
apart).

For a ratio to dense, :data:`RATIO_SCALE` is a diverging scale to be centred on 1.0x: worse
than dense in orange, better in blue, dense itself white.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

OKABE_ITO: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
    "#F0E442",  # yellow
    "#000000",  # black
)
DENSE = "#7F7F7F"  # grey: the baseline
RATIO_SCALE: tuple[tuple[float, str], ...] = ((0.0, "#D55E00"), (0.5, "#FFFFFF"), (1.0, "#0072B2"))


def is_dense_label(label: str) -> bool:
    """Whether a configuration label names a dense configuration (``".../ dense"``)."""
    return label.split(", ", 1)[0].endswith("/ dense") or label.split(", ", 1)[0] == "dense"


def colours(labels: Iterable[str]) -> dict[str, str]:
    """configuration label -> hex colour, stable for a given set of labels."""
    out: dict[str, str] = {}
    sparse = sorted({str(x) for x in labels if not is_dense_label(str(x))})
    for i, label in enumerate(sparse):
        out[label] = OKABE_ITO[i % len(OKABE_ITO)]
    for label in labels:
        if is_dense_label(str(label)):
            out[str(label)] = DENSE
    return out


def ratio_range(values: Iterable[float | None]) -> tuple[float, float]:
    """A colour range symmetric around 1.0 on a log scale that holds every ratio: dense sits
    at the scale's centre whatever the spread (noise never reads as a winner)."""
    logs = [abs(math.log(v)) for v in values if v is not None and v > 0 and math.isfinite(v)]
    span = max(logs, default=0.0) or math.log(1.1)
    return math.exp(-span), math.exp(span)
