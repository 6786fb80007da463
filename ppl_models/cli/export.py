"""``ppl-models export DIR``: a run's fit as ArviZ's InferenceData, in NetCDF."""

from __future__ import annotations

from pathlib import Path

import torch

from ppl_models.criticism.inference_data import require_arviz
from ppl_models.fits import load_fit
from ppl_models.io.atomic import atomic_open
from ppl_models.validation import check_positive_int

#: the file ``export`` writes into the run directory unless told otherwise
INFERENCE_DATA = "inference_data.nc"


def export_run(
    run_dir: Path, out: Path | None, num_samples: int | None, device: torch.device
) -> Path:
    """Write the fit in ``run_dir`` as InferenceData (``to_inference_data``, with the
    model's default number of draws unless ``num_samples`` is given) to ``out``
    (default ``run_dir/inference_data.nc``), whole or not at all.

    :returns: the file written.
    """
    # Refused before the fit is loaded: a missing extra or a bad count at once.
    require_arviz()
    if num_samples is not None:
        check_positive_int("--samples", num_samples)
    fit = load_fit(run_dir, device)
    options = {} if num_samples is None else {"num_samples": num_samples}
    inference_data = fit.to_inference_data(**options)
    path = run_dir / INFERENCE_DATA if out is None else out
    with atomic_open(path, "wb") as handle:
        inference_data.to_netcdf(handle, engine="h5netcdf")
    return path
