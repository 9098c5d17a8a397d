"""Carbon accounting: CO2e (g) = energy (kWh) x carbon intensity (gCO2e/kWh) x PUE.

Intensities come from the offline data files shipped inside the ``codecarbon`` package
(``codecarbon/data/private_infra/...``), read directly as JSON (no network, and without
importing codecarbon itself):

* country (ISO-3166 alpha-3, e.g. ``FRA``): ``global_energy_mix.json``, field
  ``carbon_intensity`` and its ``year`` (Our World in Data / Ember yearly mix, mostly 2022-23);
* region, for ``USA`` (state, e.g. ``california``): ``2023/usa_emissions.json`` (EPA eGRID2023,
  lbs/MWh converted to g/kWh); ``CAN`` (province): ``2023/canada_energy_mix.json`` (generation
  mix -> intensity with CodeCarbon's coal/petroleum/gas factors; the file states no year, the
  data directory is ``2023``); ``CHN`` (province, e.g. ``beijing``):
  ``2023/china_provincial_emissions.json``; ``SWE``/``NOR``/``FIN`` bidding zones (``SE3``,
  ``NO1``, ``FI``): ``nordic_emissions.json``;
* an explicit ``carbon_intensity`` overrides all of them (source ``"user override"``).

Default when no country, region or intensity is given: the world average of CodeCarbon's
``carbon_intensity_per_source.json`` (475 gCO2e/kWh, IEA Global Energy & CO2 Status Report
2019); that file states no data year, so ``year`` is None. Every factor used is recorded in a
:class:`CarbonFactors` so any report can be recomputed.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from greentrain.errors import ConfigError
from greentrain.units import co2_g

G_PER_LB = 453.59237
# CodeCarbon's emission factors per generation source (kg/kWh), used for Canadian mixes.
_MIX_FACTORS_KG_PER_KWH = {
    "coal": 0.995725971,
    "petroleum": 0.8166885263,
    "naturalGas": 0.7438415916,
}
_NORDIC = {
    "SWE": ("SE1", "SE2", "SE3", "SE4"),
    "NOR": tuple(f"NO{i}" for i in range(1, 6)),
    "FIN": ("FI",),
}


@dataclass(frozen=True)
class CarbonFactors:
    """Every factor used to turn energy into CO2e, with its provenance.

    Attributes:
        intensity_g_per_kwh: grid carbon intensity, gCO2e per kWh.
        source: the dataset and file it came from, or ``"user override"``.
        year: the data year, or None when the source states none.
        pue: data-centre power usage effectiveness (>= 1; 1.0 = energy as metered).
        country: ISO-3166 alpha-3 code used, if any.
        region: region/state/province/zone used, if any.
    """

    intensity_g_per_kwh: float
    source: str
    year: int | None
    pue: float = 1.0
    country: str | None = None
    region: str | None = None

    def co2_g(self, energy_j: float) -> float:
        """Grams CO2e for ``energy_j`` joules: kWh x intensity x PUE."""
        return co2_g(energy_j, self.intensity_g_per_kwh, self.pue)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- CodeCarbon's offline data ----------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _data_dir() -> Path:
    spec = importlib.util.find_spec("codecarbon")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "carbon intensity data not found (package codecarbon missing); pip install "
            "codecarbon or pass --carbon-intensity G"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "private_infra"


@functools.cache
def _load(relative: str) -> Any:
    with open(_data_dir() / relative, encoding="utf-8") as f:
        return json.load(f)


def _rel(relative: str) -> str:
    return f"codecarbon data/private_infra/{relative}"


def country_codes() -> set[str]:
    """ISO-3166 alpha-3 codes with a country intensity in CodeCarbon's offline data."""
    return set(_load("global_energy_mix.json"))


def region_names(country: str) -> list[str]:
    """Region names accepted for ``country`` (USA, CAN, CHN, SWE, NOR, FIN), sorted."""
    country = country.upper()
    if country == "USA":
        return sorted(k for k in _load("2023/usa_emissions.json") if not k.startswith("_"))
    if country == "CAN":
        return sorted(_load("2023/canada_energy_mix.json"))
    if country == "CHN":
        return sorted(
            n
            for v in _load("2023/china_provincial_emissions.json")["data"].values()
            for n in v["names"]
        )
    if country in _NORDIC:
        return list(_NORDIC[country])
    return []


def _country_factor(country: str) -> tuple[float, str, int | None]:
    mix = _load("global_energy_mix.json")
    if country not in mix:
        sample = "USA, FRA, DEU, GBR, CHN, IND, SWE"
        raise ConfigError(
            f"unknown country {country!r}; use an ISO-3166 alpha-3 code such as {sample}"
        )
    row = mix[country]
    return (
        float(row["carbon_intensity"]),
        _rel("global_energy_mix.json") + f" [{country}]",
        row.get("year"),
    )


def _region_factor(country: str, region: str) -> tuple[float, str, int | None]:
    key = region.strip().lower()
    if country == "USA":
        data = _load("2023/usa_emissions.json")
        if key in data and not key.startswith("_"):
            meta = data["_source"]
            g_per_kwh = float(data[key]["emissions"]) * G_PER_LB / 1000.0  # lbs/MWh -> g/kWh
            return (
                g_per_kwh,
                f"{_rel('2023/usa_emissions.json')} [{key}] ({meta['name']})",
                meta.get("year"),
            )
    elif country == "CAN":
        data = _load("2023/canada_energy_mix.json")
        if key in data:
            mix = data[key]
            kg = sum(
                mix.get(src, 0.0) / mix["total"] * f for src, f in _MIX_FACTORS_KG_PER_KWH.items()
            )
            return (
                kg * 1000.0,
                f"{_rel('2023/canada_energy_mix.json')} [{key}] (mix x CodeCarbon source factors)",
                2023,
            )
    elif country == "CHN":
        data = _load("2023/china_provincial_emissions.json")
        for code, row in data["data"].items():
            if key in row["names"] or key == code.lower():
                return (
                    float(row["emission_factor"]),
                    f"{_rel('2023/china_provincial_emissions.json')} [{code}] (MEE/NBS, CO2 only)",
                    row.get("year"),
                )
    elif country in _NORDIC:
        data = _load("nordic_emissions.json")["data"]
        up = region.strip().upper()
        if up in _NORDIC[country] and up in data:
            return (
                float(data[up]["emission_factor"]),
                f"{_rel('nordic_emissions.json')} [{up}]",
                data[up].get("year"),
            )
    else:
        raise ConfigError(
            f"no regional carbon data for country {country!r}; regions exist for USA, CAN, CHN, "
            "SWE, NOR, FIN; drop --region or pass --carbon-intensity G"
        )
    names = region_names(country)
    raise ConfigError(
        f"unknown region {region!r} for {country}; use one of: {', '.join(names[:8])}"
        + (", ..." if len(names) > 8 else "")
    )


def _infer_country(region: str) -> str:
    key = region.strip().lower()
    hits = [
        c
        for c in ("USA", "CAN", "CHN", "SWE", "NOR", "FIN")
        if key in [n.lower() for n in region_names(c)]
    ]
    if len(hits) != 1:
        raise ConfigError(
            f"cannot tell which country region {region!r} is in; pass --country (e.g. USA with "
            "--region california)"
        )
    return hits[0]


def resolve_factors(
    country: str | None = None,
    region: str | None = None,
    carbon_intensity: float | None = None,
    pue: float = 1.0,
) -> CarbonFactors:
    """The carbon factors for a run (see the module docstring for the order of precedence).

    Args:
        country: ISO-3166 alpha-3 code (case-insensitive).
        region: US state, Canadian/Chinese province or Nordic bidding zone; needs ``country``
            unless the name is unambiguous.
        carbon_intensity: gCO2e/kWh; overrides the data files.
        pue: power usage effectiveness, >= 1.0.

    Raises:
        ConfigError: unknown country/region, negative intensity, PUE < 1.
    """
    if pue is None or not pue >= 1.0:
        raise ConfigError(f"PUE must be >= 1.0 (got {pue}); use 1.0 for energy as metered")
    country = country.strip().upper() if country else None
    region = region.strip() if region else None
    if carbon_intensity is not None:
        if not carbon_intensity >= 0:
            raise ConfigError(f"carbon intensity must be >= 0 gCO2e/kWh (got {carbon_intensity})")
        return CarbonFactors(
            float(carbon_intensity), "user override", None, float(pue), country, region
        )
    if region and not country:
        country = _infer_country(region)
    if country and region:
        intensity, source, year = _region_factor(country, region)
        return CarbonFactors(intensity, source, year, float(pue), country, region.lower())
    if country:
        intensity, source, year = _country_factor(country)
        return CarbonFactors(intensity, source, year, float(pue), country, None)
    data = _load("carbon_intensity_per_source.json")
    return CarbonFactors(
        float(data["world_average"]),
        f"{_rel('carbon_intensity_per_source.json')} [world_average] "
        f"({data.get('world_average_source', '')})",
        None,
        float(pue),
        None,
        None,
    )
