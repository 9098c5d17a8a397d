"""Run records -> the numbers, tables, statements and figures a study reports.

Every function takes run objects (the schema of ``greentrain show --json``) and returns plain
values, pandas DataFrames or text; nothing here reads the store, meters or torch, so the
exports, the CLI and the app share one implementation.

* :mod:`~greentrain.report.reading`: every value of a record read tolerantly; a value of the
  wrong type, non-finite or impossible is left out (never 0) and noted as an ``Issue``.
* :mod:`~greentrain.report.escape`: text from a record made safe for each target (LaTeX,
  Markdown, CSV, plain text, terminal, matplotlib).
* :mod:`~greentrain.report.stats`: mean, std and 95% t-interval (never 0 where undefined).
* :mod:`~greentrain.report.runs`: figures of one run (final accuracy, kWh, FLOPs, curves).
* :mod:`~greentrain.report.grouping`: runs pooled per configuration (model, dataset, schedule,
  drop rate; seeds pooled).
* :mod:`~greentrain.report.study`: Pareto front, savings vs dense, study totals.
* :mod:`~greentrain.report.formatting`, :mod:`~greentrain.report.tables`,
  :mod:`~greentrain.report.statement`, :mod:`~greentrain.report.plots`: the export formats.

Units: energy in kWh at this edge (:mod:`greentrain.units`), carbon in grams CO2e, time in
seconds, FLOPs as counts. Estimated energies stay flagged everywhere.

Import the submodules; this package's ``__init__`` imports nothing, so the CLI can read
:mod:`~greentrain.report.formatting`'s format names without loading pandas.
"""
