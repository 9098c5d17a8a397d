"""A carbon intensity's recorded source as a citation a reader can check: publisher, title,
year and scope -- never a file path.

:mod:`greentrain.carbon` records where each intensity came from as the CodeCarbon data file,
the key read in it and the publisher's reference (``codecarbon data/private_infra/
carbon_intensity_per_source.json [world_average] (https://www.iea.org/...2019/emissions)``).
:func:`carbon_citation` turns the sources it knows into words (the IEA's 2019 world average,
EPA eGRID, ...), and for any other text drops what looks like a file path.
"""

from __future__ import annotations

import re

from greentrain.report.escape import plain_text

SCOPE = "location-based grid average (annual), generation emissions"
_KEY = re.compile(r"\[([^\]]+)\]")
_PATH = re.compile(r"(?:codecarbon data/private_infra/)?\S*/?\S+\.(?:json|csv)\b")
_PAREN = re.compile(r"\(([^()]*)\)\s*$")


def _key(source: str) -> str:
    m = _KEY.search(source)
    return m.group(1) if m else ""


def carbon_citation(source: object, year: object = None) -> tuple[str, str]:
    """``(citation, year)`` of a recorded carbon-intensity source; the year is the recorded one,
    else the one the publication states, else ``"year not stated"``."""
    text = plain_text(source or "unknown source")
    known = None if year in (None, "", "year not stated") else str(year)
    if text == "user override":
        return "an intensity given by the user (greentrain --carbon-intensity)", known or (
            "year not stated"
        )
    if "carbon_intensity_per_source.json" in text and "world_average" in text:
        return (
            "IEA, Global Energy & CO2 Status Report 2019, world average "
            f"({SCOPE}; via CodeCarbon's offline data)",
            known or "2019",
        )
    if "global_energy_mix.json" in text:
        return (
            f"Our World in Data energy-mix data for {_key(text)}, as packaged by CodeCarbon "
            f"({SCOPE})",
            known or "year not stated",
        )
    if "usa_emissions.json" in text:
        publisher = _PAREN.search(text)
        name = publisher.group(1) if publisher else "US EPA eGRID"
        return f"{name}, subregion {_key(text)} ({SCOPE})", known or "year not stated"
    if "canada_energy_mix.json" in text:
        return (
            f"CodeCarbon's {_key(text)} generation mix x its per-source emission factors ({SCOPE})",
            known or "year not stated",
        )
    if "china_provincial_emissions.json" in text:
        return (
            f"China MEE/NBS provincial emission factor for {_key(text)}, CO2 only ({SCOPE})",
            known or "year not stated",
        )
    if "nordic_emissions.json" in text:
        return (
            f"Nordic bidding-zone emission factor for {_key(text)}, via CodeCarbon ({SCOPE})",
            known or "year not stated",
        )
    cleaned = " ".join(_PATH.sub("", text).split()) or "unknown source"
    return cleaned, known or "year not stated"
