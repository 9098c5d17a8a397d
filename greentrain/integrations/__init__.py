"""Where users already work: Lightning, the Hugging Face ``Trainer``, MLflow and W&B.

Thin adapters over :mod:`greentrain.client`, :func:`greentrain.run.track` and
:mod:`greentrain.report`:

* :mod:`~greentrain.integrations.lightning` and :mod:`~greentrain.integrations.transformers`:
  ``EnergyCallback``, one metered window per epoch and per evaluation, the trainer's metrics
  beside each window's energy, and each window's energy (J, kWh, CO2e) in the trainer's own
  logger at the trainer's step, with or without ``greentrain run``. Both share
  :mod:`~greentrain.integrations.training`; :mod:`~greentrain.integrations.trainer_runs` tags
  the trainer's own MLflow/W&B run and announces it to the run.
* :mod:`~greentrain.integrations.trackers`: MLflow and W&B runs; a run's energy per window,
  totals, carbon factors and meter provenance into them after the fact
  (:mod:`~greentrain.integrations.exporting`, ``greentrain export --to``, retriable) or live as
  windows close (:mod:`~greentrain.integrations.mirror`, ``greentrain run --mirror``); what is
  sent is decided by :mod:`~greentrain.integrations.payload`, under the names of
  :mod:`~greentrain.integrations.names`.

Importing this package imports none of those libraries; each module loads its own when used,
and a missing one is a one-line error naming the ``integrations`` extra.
"""
