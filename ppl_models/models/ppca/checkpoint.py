"""PPCA checkpoints of the format before the full-batch base: read as today's.

Those checkpoints hold the data as ``x`` (data_dim, N) and the true axes of
simulated data as ``w_true``, beside the keys every full-batch checkpoint has
(``model_state``, ``guide_state``, ``losses``, ``fit_seconds`` and, for a run that
can go on, ``step``, ``optimizer_state``, ``rng``). Today's keep the model's
arguments as ``data`` (``[x]``) and ``w_true`` among the ``extras``.
"""

from __future__ import annotations

from typing import Any


def upgrade_checkpoint(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` in today's format (as it is, if it is already)."""
    if "x" not in record:
        return record
    upgraded = {k: v for k, v in record.items() if k not in ("x", "w_true")}
    upgraded["data"] = [record["x"]]
    if record.get("w_true") is not None:
        upgraded["extras"] = {"w_true": record["w_true"]}
    return upgraded
