"""PPCA fitting speed: full-batch SVI steps per second, plain and compiled."""

from __future__ import annotations

import time
from typing import Any

import pyro
import torch
from measure import synchronize

from ppl_models.inference import make_objective, run_svi
from ppl_models.models.ppca.fit import make_elbo
from ppl_models.models.ppca.model import PPCA, make_guide, simulate


def ppca_rows(device: torch.device, steps: int, compile: bool) -> list[dict[str, Any]]:
    """Steps per second of the default experiment (5000 points, D=2, K=1) for MAP
    and mean-field, plain and (if ``compile``) compiled; the compile is timed apart.
    """
    rows = []
    for inference in ("map", "meanfield"):
        plain_rate = None
        for mode in (None, "default") if compile else (None,):
            pyro.set_rng_seed(0)
            model = PPCA(2, 1, 0.5).to(device)
            x, _, _ = simulate(model, 5000)
            guide = make_guide(model, inference)
            objective = make_objective(
                model, guide, make_elbo(inference), x, compile=mode
            )
            optimizer = torch.optim.Adam(objective.parameters(), lr=0.05)
            start = time.perf_counter()
            run_svi(objective, optimizer, 10, x, progress=False)  # warm-up, compile
            synchronize(device)
            warmup = time.perf_counter() - start
            start = time.perf_counter()
            run_svi(objective, optimizer, steps, x, progress=False)
            synchronize(device)
            rate = steps / (time.perf_counter() - start)
            plain_rate = plain_rate or rate
            rows.append(
                {
                    "inference": inference,
                    "path": "zoo-compiled" if mode else "zoo",
                    "steps_per_s": rate,
                    "compile_s": warmup if mode else 0.0,
                    "vs_plain": rate / plain_rate,
                }
            )
    return rows
