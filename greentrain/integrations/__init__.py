"""Where users already work: Lightning, the Hugging Face ``Trainer``, MLflow and W&B.

Thin adapters over :mod:`greentrain.client`, :func:`greentrain.run.track` and
:mod:`greentrain.report`:

* :mod:`~greentrain.integrations.lightning` and :mod:`~greentrain.integrations.transformers`:
  ``EnergyCallback``, one metered window per epoch and per evaluation, the trainer's metrics
  beside each window's energy, and the epoch's energy (J, kWh) and CO2e in the trainer's own
  logger. Both share :mod:`~greentrain.integrations.training`.
* :mod:`~greentrain.integrations.trackers`: a run's energy per window, totals, carbon factors and
  meter provenance into MLflow or W&B -- after the fact (``greentrain export --to``) or live as
  windows close (``greentrain run --mirror``); what is sent is decided by
  :mod:`~greentrain.integrations.payload`.

Importing this package imports none of those libraries; each module loads its own when used,
and a missing one is a one-line error naming the ``integrations`` extra.
"""
