"""Run records -> the numbers, tables, statements and figures a study reports.

Every function takes run objects (the schema of ``greentrain show --json``) and returns plain
values, pandas DataFrames or text; nothing here reads the store, meters or torch, so the
exports, the CLI and the app share one implementation.

* :mod:`~greentrain.report.reading`: every value of a record read tolerantly; a value of the
  wrong type, non-finite or impossible is left out (never 0) and noted as an ``Issue``.
* :mod:`~greentrain.report.escape`: text from a record made safe for each target (LaTeX,
  Markdown, CSV, plain text, terminal, matplotlib).
* :mod:`~greentrain.report.stats`: mean, std and 95% t-interval (never 0 where undefined).
* :mod:`~greentrain.report.runs`: figures of one run (final accuracy, kWh, FLOPs);
  :mod:`~greentrain.report.curves`: its figures over its windows (per epoch, accuracy curve).
* :mod:`~greentrain.report.configs`, :mod:`~greentrain.report.grouping`: runs pooled per
  configuration (model, dataset, schedule, drop rate and every other config key that varies;
  seeds pooled).
* :mod:`~greentrain.report.versus_dense`, :mod:`~greentrain.report.comparison`: each
  configuration against dense with a 95% interval, the answer sentence, the comparison table.
* :mod:`~greentrain.report.provenance`, :mod:`~greentrain.report.meter_check`: measured vs
  modelled per domain, in words; meters that disagree and whether the ranking survives.
* :mod:`~greentrain.report.unit_policy`, :mod:`~greentrain.report.palette`: the one unit policy
  and the one palette of every surface.
* :mod:`~greentrain.report.study`: Pareto front, savings vs dense, study totals.
* :mod:`~greentrain.report.formats`: the one registry of export formats;
  :mod:`~greentrain.report.tables` (``render``), :mod:`~greentrain.report.text_tables`,
  :mod:`~greentrain.report.latex_table`, :mod:`~greentrain.report.statement`,
  :mod:`~greentrain.report.model_card`, :mod:`~greentrain.report.plots`: the formats.

Units: energy in kWh at this edge (:mod:`greentrain.units`), carbon in grams CO2e, time in
seconds, FLOPs as counts; shown through :mod:`~greentrain.report.unit_policy`. Modelled
energies stay flagged everywhere.

Import the submodules; this package's ``__init__`` imports nothing, so the CLI can read
:mod:`~greentrain.report.formats`' registry without loading pandas.
"""
