"""Test-wide isolation (no test writes the repository's store, inherits a wrapping run, shares
device locks or a journal folder with another test), the store backends, and the markers.

``store_target`` is parametrized over both backends: an SQLite file, and a fresh database on a
throwaway PostgreSQL server (one per session, :mod:`fixtures.pgserver`). Where PostgreSQL's
binaries are absent, the PostgreSQL cases skip and say why.

Markers (registered in pyproject.toml) are applied here, by file and by fixture, so that test
files need not repeat them: ``slow`` (:data:`SLOW_FILES`, :data:`SLOW_TESTS`: the fast loop is
``pytest -m "not slow"``; :data:`FAST_TESTS` keep a test of a slow file in it), ``subprocess``
(:data:`SUBPROCESS_FILES`), ``postgres`` (every test that uses the PostgreSQL server),
``browser`` and ``gpu`` (a test that skips without CUDA).
Under ``-m "not slow"`` a file whose every test is slow is not even imported, so the fast
loop does not pay for torch, Lightning or Transformers imports it never runs.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
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
    "test_store_faults_disk.py", "test_store_faults_pg.py", "test_sweep.py",
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

    # Added for the two-minute loop: each took 2 s or more in `pytest -m "not slow"
    # --durations=0` on the loaded 2-core machine (load 8-10; about 0.6 s or more quiet). One
    # test per behaviour stays fast where a file would lose its last (test_run_processes.py keeps
    # a forwarded signal and the watchdog of a dead wrapper): see docs/contributing.md.
    "test_client_fork.py::test_a_dataloaders_workers_log_into_the_epoch_window",
    "test_client_resilience.py::test_a_hundred_processes_connecting_at_once_lose_no_entry",
    "test_client_resilience.py::test_a_wrapper_stopped_for_15_s_never_holds_the_script_and_loses_nothing_uncounted",
    "test_cluster_groups.py::test_a_group_reads_as_one_run_with_totals_summed_over_its_nodes",
    "test_cluster_groups.py::test_a_node_stopped_by_its_budget_marks_the_group_budget",
    "test_export.py::test_cli_export_writes_file_and_plot",
    "test_export_hostile.py::test_every_format_renders_a_bad_value_in_any_field",
    "test_export_hostile.py::test_every_format_renders_the_nasty_study_well_formed",
    "test_export_hostile.py::test_latex_of_the_nasty_study_compiles_with_plain_pdflatex",
    "test_export_hostile.py::test_plots_survive_names_that_are_math_text_or_controls",
    "test_gpu_runbook.py::test_a_stage_past_its_deadline_dies_with_its_process_group_and_later_stages_run",
    "test_gpu_runbook.py::test_collect_writes_the_report_bench_tables_and_where_table",
    "test_gpu_runbook.py::test_cuda_only_tests_skip_on_cpu_with_their_reason",
    "test_gpu_runbook.py::test_pack_fetches_wheels_for_the_gpu_python_and_writes_a_manifest",
    "test_gpu_runbook.py::test_simulated_gpu_machine_runs_every_cpu_stage_and_returns_two_files",
    "test_gpu_runbook.py::test_the_simulated_machine_lacks_what_the_image_lacks_except_carried_wheels",
    "test_harness.py::test_command_not_found_exits_127_and_records_failed_run",
    "test_harness.py::test_show_json_of_recorded_run_is_valid_json",
    "test_harness.py::test_sigint_to_harness_reaches_child_once_and_marks_run_interrupted_with_energy",
    "test_harness.py::test_terminal_ctrl_c_reaches_the_job_exactly_once_and_the_job_owns_the_terminal",
    "test_harness.py::test_track_under_outer_run_binds_to_it_and_meters_once",
    "test_journal.py::test_a_clock_step_mid_run_changes_no_duration",
    "test_journal.py::test_an_importer_killed_mid_apply_leaves_a_claim_the_next_sync_finishes",
    "test_journal.py::test_concurrent_appliers_of_the_same_entries_store_each_once_by_their_keys",
    "test_journal.py::test_four_concurrent_importers_of_one_journal_store_each_entry_once",
    "test_meters_estimate.py::test_a_real_run_records_the_cpu_seconds_of_each_estimate_and_the_statement_names_them",
    "test_meters_estimate.py::test_attached_child_cpu_time_is_charged_even_after_it_exited",
    "test_meters_estimate.py::test_default_follows_own_tree_including_children",
    "test_nested_runs.py::test_a_grandchild_is_counted_once_even_when_its_parent_is_not_selected",
    "test_nested_runs.py::test_an_inner_run_records_its_parent_and_the_parent_lists_it",
    "test_nested_runs.py::test_an_inner_run_selected_without_its_parent_is_counted",
    "test_nested_runs.py::test_every_total_counts_the_inner_energy_once",
    "test_no_overwrite.py::test_export_output_onto_a_stores_write_ahead_log_is_refused",
    "test_no_overwrite.py::test_export_output_onto_another_applications_sqlite_database_is_refused",
    "test_no_overwrite.py::test_export_output_onto_the_store_is_refused_and_the_store_kept[csv]",
    "test_no_overwrite.py::test_export_output_onto_the_store_is_refused_and_the_store_kept[json]",
    "test_no_overwrite.py::test_export_output_onto_the_store_is_refused_and_the_store_kept[markdown]",
    "test_no_overwrite.py::test_export_output_onto_the_store_is_refused_and_the_store_kept[model-card]",
    "test_no_overwrite.py::test_export_overwrites_an_ordinary_file_without_force",
    "test_no_overwrite.py::test_export_plot_onto_an_sqlite_database_is_refused",
    "test_no_overwrite.py::test_export_with_force_overwrites_the_named_database",
    "test_readers_damaged.py::test_a_null_energy_is_unreadable_not_zero",
    "test_readers_damaged.py::test_a_store_on_read_only_media_is_listed_shown_and_exported",
    "test_readers_damaged.py::test_a_text_energy_and_duration_are_shown_unreadable_and_the_rest_is_read",
    "test_readers_damaged.py::test_an_unreadable_schema_version_is_read_and_never_written",
    "test_readers_damaged.py::test_every_app_page_reads_a_store_with_damaged_cells",
    "test_record_forecast.py::test_the_interval_holds_the_known_truth_of_drifting_correlated_series_about_95_in_100",
    "test_run_budget.py::test_dry_run_forecast_probes_every_seed_itself_reuses_its_probe_and_measures_finished_points",
    "test_run_budget.py::test_greentrain_run_stops_an_endless_job_at_its_budget_with_exit_124",
    "test_run_budget.py::test_track_raises_budget_exceeded_in_the_loop_and_records_budget",
    "test_run_budget_stop.py::test_a_block_that_catches_every_interrupt_is_recorded_as_not_stopped",
    "test_run_budget_stop.py::test_a_budget_hit_mid_epoch_leaves_the_cut_epoch_out_of_the_forecast",
    "test_run_budget_stop.py::test_greentrain_run_kills_a_job_that_ignores_sigint_and_traps_sigterm",
    "test_run_budget_stop.py::test_greentrain_run_stops_a_job_ignoring_sigint_with_sigterm",
    "test_run_budget_stop.py::test_greentrain_train_started_with_sigint_ignored_stops_at_its_budget",
    "test_run_budget_stop.py::test_track_outside_the_main_thread_is_stopped_in_its_own_thread",
    "test_run_budget_stop.py::test_track_raises_past_a_handler_that_swallows_the_interrupt",
    "test_run_budget_stop.py::test_track_stops_a_block_whose_process_ignores_sigint",
    "test_run_budget_stop.py::test_track_stops_a_block_whose_thread_blocks_sigint_in_its_signal_mask",
    "test_run_concurrency.py::test_a_busy_run_gets_the_cpu_share_an_idle_run_beside_it_does_not",
    "test_run_concurrency.py::test_a_run_alone_keeps_the_whole_machine_figure",
    "test_run_process_tree.py::test_a_daemon_that_left_the_group_is_stopped_through_the_cgroup_when_the_wrapper_dies",
    "test_run_process_tree.py::test_the_job_cgroups_cpu_time_covers_an_escaped_daemon_and_the_cgroup_is_removed",
    "test_run_processes.py::test_a_job_that_exits_130_or_143_by_itself_failed_and_was_not_interrupted",
    "test_run_processes.py::test_a_long_tmpdir_does_not_stop_the_command_or_its_client_calls",
    "test_run_processes.py::test_a_signal_to_the_wrappers_process_group_reaches_the_job_once",
    "test_run_processes.py::test_an_executable_script_without_shebang_runs_through_sh",
    "test_run_processes.py::test_output_piped_into_head_ends_the_job_with_sigpipe_as_in_a_shell",
    "test_run_processes.py::test_processes_the_command_leaves_running_are_stopped_and_noted",
    "test_run_processes.py::test_sigterm_to_the_wrapper_stops_every_worker_of_the_job",
    "test_run_processes.py::test_supervised_child_and_its_children_stop_when_the_parent_gets_sigterm",
    "test_run_processes.py::test_with_stderr_closed_nothing_of_greentrain_reaches_the_jobs_stdout",
    "test_run_store_faults.py::test_a_store_locked_past_the_grace_leaves_the_journal_and_sync_lands_it",
    "test_run_store_faults.py::test_reading_commands_never_create_a_store_for_a_mistyped_path",
    "test_run_store_faults.py::test_rm_refuses_a_running_run_unless_forced_and_the_wrapper_keeps_the_exit_code",
    "test_store_pg_errors.py::test_a_password_in_the_url_is_never_stored_nor_printed",
    "test_store_pg_errors.py::test_reading_commands_never_create_a_store_in_an_empty_database",
    "test_text_and_secrets.py::test_a_non_utf8_directory_name_and_argument_are_recorded_escaped_not_lost",
    "test_text_and_secrets.py::test_a_store_url_of_any_scheme_is_masked_in_error_messages",
    "test_text_and_secrets.py::test_credentials_never_land_in_the_record_exports_or_messages",
    "test_text_and_secrets.py::test_valid_text_is_stored_unchanged",
})  # fmt: skip
# Tests that stay in the fast loop although their file is slow: every package keeps a fast test
# of its core behaviour (each of these takes well under a second).
FAST_TESTS = frozenset({
    "test_cluster_sweep.py::test_a_local_point_gets_a_password_url_in_its_environment_not_its_command",
    "test_fid.py::test_frechet_distance_of_gaussians_matches_closed_form",
    "test_jobs_classify.py::test_dropout_flag_puts_dropout_after_every_convolution",
    "test_jobs_data.py::test_missing_dataset_raises_config_error_naming_the_fix",
    "test_jobs_ddpm.py::test_linear_beta_schedule_and_strided_sampling_timesteps",
    "test_models.py::test_cifar_stem_is_a_3x3_stride1_conv_without_bias_and_no_maxpool",
    "test_sweep.py::test_bad_grid_values_raise_config_error",
    "test_sweep.py::test_sweep_id_depends_on_grid_and_result_changing_flags_only",
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
    _cache_bytecode_outside_the_tree()


def _cache_bytecode_outside_the_tree() -> None:
    """With ``PYTHONDONTWRITEBYTECODE`` set (as on the project's shared machine), every Python
    process the tests start -- a few hundred ``greentrain run`` wrappers and jobs -- would compile
    greentrain's modules again (about 0.1 s of CPU each). Cache the bytecode instead, in a folder
    of its own under the temporary directory (``PYTHONPYCACHEPREFIX``), never in the tree."""
    if not os.environ.pop("PYTHONDONTWRITEBYTECODE", None):
        return
    prefix = os.environ.setdefault(
        "PYTHONPYCACHEPREFIX", str(Path(tempfile.gettempdir()) / f"pycache-tests-{os.getuid()}")
    )
    sys.pycache_prefix, sys.dont_write_bytecode = prefix, False  # this process's imports too


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
    if any(test.startswith(f"{name}::") for test in FAST_TESTS):
        return False  # some of its tests stay fast
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
        names = {f"{name}::{item.originalname}", f"{name}::{item.name}"}
        if names & SLOW_TESTS:
            marks.add("slow")
        if names & FAST_TESTS:
            marks.discard("slow")
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
