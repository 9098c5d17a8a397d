"""Several metered training runs: one launched run, sweeps over grids, the demo comparison.

Builds on :mod:`greentrain.jobs` (what trains) and :mod:`greentrain.run` (how it is metered);
the CLI's ``train``, ``sweep`` and ``demo`` commands are thin over it.
"""
