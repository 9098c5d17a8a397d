"""Test-wide isolation (no test writes the repository's store, inherits a wrapping run, shares
device locks or a journal folder with another test), the store backends, and the markers.

``store_target`` is parametrized over both backends: an SQLite file, and a fresh database on a
throwaway PostgreSQL server (one per session, :mod:`fixtures.pgserver`). Where PostgreSQL's
binaries are absent, the PostgreSQL cases skip and say why.

Markers (registered in pyproject.toml) are applied here, by file and by fixture, so that test
files need not repeat them: ``slow`` (:data:`SLOW_FILES`, :data:`SLOW_TESTS`: the fast loop is
``pytest -m "not slow"``), ``subprocess`` (:data:`SUBPROCESS_FILES`), ``postgres`` (every test
that uses the PostgreSQL server), ``browser`` and ``gpu`` (a test that skips without CUDA).
Under ``-m "not slow"`` a file whose every test is slow is not even imported, so the fast
loop does not pay for torch, Lightning or Transformers imports it never runs.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from fixtures.pgserver import PgServer, binaries

# Whole files that train or evaluate models, compile, run Triton's interpreter, start servers or
# browsers, or run Lightning, Transformers, MLflow or W&B end to end: seconds to minutes each
# (measured with `pytest --durations=0`; see docs/contributing.md).
SLOW_FILES = frozenset({
    "test_app.py", "test_bench_ssprop.py", "test_browser.py", "test_cli_flops.py",
    "test_cli_train.py", "test_cluster_sweep.py", "test_cluster_torchrun.py", "test_demo.py",
    "test_fid.py", "test_integrations_lightning.py", "test_integrations_readme.py",
    "test_integrations_trackers.py", "test_integrations_transformers.py", "test_jobs_classify.py",
    "test_jobs_data.py", "test_jobs_ddp.py", "test_jobs_ddpm.py", "test_meters_codecarbon.py",
    "test_meters_zeus.py", "test_models.py", "test_run_slow_meters.py", "test_ssprop_compile.py",
    "test_ssprop_fastpaths.py", "test_ssprop_kernels.py", "test_ssprop_variant_flags.py",
    "test_sweep.py",
})  # fmt: skip
# Single slow tests in otherwise fast files: "file.py::test_name" (every case) or
# "file.py::test_name[case]" (one case). Each took 5 s or more on the loaded 2-core machine
# (`pytest -m "not slow" --durations=60`, load average 8-12), about 1 s or more on a quiet one.
SLOW_TESTS = frozenset({
    "test_cli_errors.py::test_greentrain_alone_prints_help_without_an_error_line",
    "test_cli_errors.py::test_usage_errors_are_one_line_and_exit_2"
    "[args9-No such option: --bogus-flag]",  # sweep parses train's options: imports torch
    "test_cli_show_hostile.py::test_any_user_text_reaches_the_terminal_escaped",
    "test_cli_show_hostile.py::test_export_of_a_store_with_odd_values_succeeds_and_flags_them",
    "test_client_edges.py::test_a_64_mib_value_is_left_out_with_a_warning_and_later_calls_still_arrive",
    "test_client_values.py::test_any_logged_value_round_trips_as_its_json_safe_form",
    "test_cluster_election.py::test_a_group_beside_an_unrelated_run_splits_and_never_books_more_than_measured",
    "test_cluster_election.py::test_a_member_without_any_device_says_which_run_metered_them",
    "test_cluster_election.py::test_two_wrappers_of_a_group_on_one_host_count_each_device_once",
    "test_core_without_torch.py::test_a_command_needing_an_extra_names_that_extra_in_one_line",
    "test_core_without_torch.py::test_greentrain_run_runs_show_and_export_work_without_torch",
    "test_export.py::test_plots_write_png_and_pdf",
    "test_export_hostile.py::test_any_text_and_any_value_render_well_formed_in_every_format",
    "test_harness.py::test_eight_concurrent_wrappers_times_five_runs_lose_nothing",
    "test_layering.py::test_running_every_app_page_never_imports_meters_run_or_torch",
    "test_readme.py::test_the_ssprop_example_trains_with_a_bar_schedule",
    "test_report_reading.py::test_text_drop_rate_is_its_own_configuration_never_pooled_with_numbers",
    "test_run_budget.py::test_a_sweep_past_its_budget_starts_no_more_points_and_exits_124",
    "test_run_budget.py::test_dry_run_forecast_probes_each_configuration_once_and_reuses_its_probe",
    "test_run_budget.py::test_greentrain_train_stops_at_its_budget_with_exit_124",
    "test_run_concurrency.py::test_four_concurrent_runs_together_book_what_the_machine_used_not_four_times",
    "test_run_store_faults.py::test_a_busy_store_neither_stretches_the_run_nor_loses_a_metric",
    "test_run_store_faults.py::test_a_store_locked_past_the_end_spools_and_the_next_open_imports",
    "test_ssprop_conv.py::test_executed_backward_flops_fall_with_drop_rate",
    "test_ssprop_conv.py::test_torch_compile_runs_sparse_backward_without_crashing",
    "test_store_pg_errors.py::test_a_locked_table_neither_stretches_the_run_nor_loses_a_metric",
    "test_store_pg_errors.py::test_a_server_gone_mid_run_spools_and_the_next_open_imports",
})  # fmt: skip
SUBPROCESS_FILES = frozenset({
    "test_cli_errors.py", "test_cli_flops.py", "test_cli_lazy.py", "test_cli_plain_values.py",
    "test_cli_run.py", "test_client_edges.py",
    "test_cluster_client.py", "test_cluster_election.py", "test_cluster_torchrun.py",
    "test_core_without_torch.py", "test_export.py", "test_export_hostile.py", "test_harness.py",
    "test_integrations_lightning.py", "test_integrations_readme.py",
    "test_integrations_trackers.py", "test_integrations_training.py",
    "test_integrations_transformers.py", "test_jobs_ddp.py", "test_layering.py",
    "test_meters_estimate.py", "test_run_concurrency.py", "test_run_processes.py",
    "test_run_store_faults.py", "test_ssprop_kernels.py", "test_store.py",
    "test_store_pg_errors.py", "test_browser.py", "test_app_cli.py", "test_demo.py",
})  # fmt: skip
BROWSER_FILES = frozenset({"test_browser.py"})
PG_FIXTURES = frozenset({"pg_server", "pg_url"})


def pytest_configure(config: pytest.Config) -> None:
    """Run as the tests assume: SIGINT and SIGHUP handled by default, whatever the shell did.

    A background job of a non-interactive shell starts with SIGINT ignored, ``nohup`` with
    SIGHUP ignored, and every process the tests start would inherit that: a forwarded Ctrl-C
    would be ignored by the job (then killed after the grace period: 137, not 130), a SIGHUP
    would not end a ``track()`` block, and a budget could not interrupt ``greentrain train``
    (``_thread.interrupt_main`` does nothing while SIGINT is ignored).
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


def _file_markers(name: str) -> set[str]:
    marks = set()
    if name in SLOW_FILES:
        marks.add("slow")
    if name in SUBPROCESS_FILES:
        marks.add("subprocess")
    if name in BROWSER_FILES:
        marks.add("browser")
    return marks


def _deselects_whole_file(config: pytest.Config, name: str) -> bool:
    """True when ``-m`` rejects every test of file ``name`` whatever markers its tests add."""
    expression = config.getoption("markexpr", "")
    if not expression or "slow" not in _file_markers(name):
        return False
    try:
        from _pytest.mark.expression import Expression
    except ImportError:  # pragma: no cover - a pytest without it: collect, then deselect
        return False
    compiled = Expression.compile(expression)
    file_marks = _file_markers(name)
    every = file_marks | {"slow", "subprocess", "postgres", "browser", "gpu"}
    return not compiled.evaluate(file_marks.__contains__) and not compiled.evaluate(
        every.__contains__
    )


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.suffix == ".py" and _deselects_whole_file(config, collection_path.name):
        return True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        name = item.path.name
        marks = _file_markers(name)
        if {f"{name}::{item.originalname}", f"{name}::{item.name}"} & SLOW_TESTS:
            marks.add("slow")
        params = getattr(getattr(item, "callspec", None), "params", {})
        if PG_FIXTURES & set(item.fixturenames) or params.get("store_target") == "postgresql":
            marks.add("postgres")
        for skip in item.iter_markers("skipif"):
            reason = str(skip.kwargs.get("reason", ""))
            if "CUDA" in reason or "GPU" in reason:
                marks.add("gpu")
        for mark in sorted(marks):
            item.add_marker(mark)


@pytest.fixture(autouse=True)
def _isolated_greentrain_env(tmp_path_factory, monkeypatch):
    """Point the default store at a temporary file and drop any outer run's channel."""
    store_dir = tmp_path_factory.mktemp("store")
    monkeypatch.setenv("GREENTRAIN_STORE", str(store_dir / "greentrain.db"))
    monkeypatch.setenv("GREENTRAIN_JOURNAL_DIR", str(store_dir / "journal"))
    monkeypatch.setenv("GREENTRAIN_LOCK_DIR", str(store_dir / "locks"))
    for name in ("GREENTRAIN_RUN", "GREENTRAIN_CHANNEL", "GREENTRAIN_LOG_ALL_RANKS"):
        monkeypatch.delenv(name, raising=False)
    for name in ("SLURM_JOB_ID", "SLURM_STEP_ID", "SLURM_PROCID", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    yield


@pytest.fixture(scope="session")
def pg_server():
    """A throwaway PostgreSQL server for the session (skips when PostgreSQL is absent)."""
    _, why = binaries()
    if why:
        pytest.skip(why)
    server = PgServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server) -> str:
    """The URL of a new, empty database on the session's server."""
    return pg_server.url(pg_server.new_database())


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request, tmp_path) -> str:
    """A new store for each backend: an SQLite file path, or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "g.db")
    return request.getfixturevalue("pg_url")
