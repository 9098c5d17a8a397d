"""Carbon factors from CodeCarbon's offline data, overrides, PUE and unit helpers."""

from __future__ import annotations

import pytest

from greentrain.carbon import CarbonFactors, country_codes, region_names, resolve_factors
from greentrain.errors import ConfigError
from greentrain.units import co2_g, joules_to_kwh, kwh_to_joules


def test_country_intensity_comes_with_source_and_year():
    f = resolve_factors(country="fra")
    assert f.country == "FRA" and f.region is None
    assert 0 < f.intensity_g_per_kwh < 200  # France's grid is mostly nuclear
    assert "global_energy_mix.json" in f.source and isinstance(f.year, int)


def test_us_state_uses_egrid_in_g_per_kwh():
    f = resolve_factors(country="USA", region="California")
    assert f.region == "california" and "usa_emissions.json" in f.source and "eGRID" in f.source
    assert f.year == 2023 and 50 < f.intensity_g_per_kwh < 500


def test_region_alone_infers_country_when_unambiguous():
    assert resolve_factors(region="quebec").country == "CAN"
    assert resolve_factors(region="SE3").country == "SWE"


def test_override_wins_and_is_labelled_user_override():
    f = resolve_factors(country="FRA", carbon_intensity=123.0, pue=1.5)
    assert (f.intensity_g_per_kwh, f.source, f.year, f.pue) == (123.0, "user override", None, 1.5)
    assert resolve_factors(carbon_intensity=10.0).intensity_g_per_kwh == 10.0


def test_default_is_world_average_with_no_year():
    f = resolve_factors()
    assert f.intensity_g_per_kwh == 475.0 and f.year is None and "world_average" in f.source


def test_co2_is_kwh_times_intensity_times_pue():
    f = CarbonFactors(400.0, "test", None, pue=1.25)
    assert f.co2_g(kwh_to_joules(2.0)) == pytest.approx(1000.0)
    assert co2_g(kwh_to_joules(2.0), f.intensity_g_per_kwh, f.pue) == pytest.approx(1000.0)
    assert joules_to_kwh(3.6e6) == 1.0
    assert f.to_dict()["pue"] == 1.25


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"country": "XXX"}, "unknown country"),
        ({"country": "USA", "region": "atlantis"}, "unknown region"),
        ({"country": "FRA", "region": "paris"}, "no regional carbon data"),
        ({"region": "nowhere"}, "pass --country"),
        ({"pue": 0.9}, "PUE"),
        ({"carbon_intensity": -1.0}, ">= 0"),
    ],
)
def test_bad_input_is_one_line_config_error_with_fix(kwargs, match):
    with pytest.raises(ConfigError, match=match) as err:
        resolve_factors(**kwargs)
    assert "\n" not in str(err.value)


def test_code_lists_are_available_for_help():
    assert {"USA", "FRA", "DEU"} <= country_codes()
    assert "california" in region_names("USA") and region_names("FRA") == []
