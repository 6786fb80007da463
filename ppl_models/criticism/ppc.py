"""Posterior predictive checks: replicate the data from the fitted model and ask
whether the observed data look like the replicates under chosen statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from pyro.infer import Predictive

Statistic = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class CheckResult:
    """One test statistic: its observed value, its replicated values and the
    posterior predictive p-value ``P(T(x_rep) > T(x_obs)) + P(T(x_rep) = T(x_obs))/2``.
    """

    name: str
    observed: float
    replicated: torch.Tensor  # (num_samples,), on the CPU
    p_value: float

    def as_dict(self) -> dict[str, float]:
        """``{"observed": ..., "p_value": ...}`` for ``summary.json``."""
        return {"observed": self.observed, "p_value": self.p_value}


def exceedance(replicated: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """1 where a replicate exceeds the observed value, 1/2 on a tie, else 0.

    Its mean over replicates is the mid-p-value: a statistic that ties often (a pixel
    that is blank in the data and in every replicate) gets p = 0.5, not 1, so it is
    not flagged as extreme. Elementwise, in float64.
    """
    above = (replicated > observed).double()
    return above + 0.5 * (replicated == observed).double()


def replicate(
    model: Callable[..., Any],
    guide: Callable[..., Any],
    args: tuple,
    *,
    num_samples: int,
    site: str = "x",
    parallel: bool = False,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Replicated data sets ``x_rep ~ p(x_rep | x)``, drawn with :class:`Predictive`.

    Each replicate uses its own draw of the latents from ``guide``.

    :param args: arguments for both model and guide, with the data left out so that
        the model generates it.
    :param chunk_size: draw at most this many replicates at once (memory bound).
    :returns: (num_samples, *site_shape), on the model's device.
    """
    chunk_size = chunk_size or num_samples
    chunks = []
    for start in range(0, num_samples, chunk_size):
        count = min(chunk_size, num_samples - start)
        predictive = Predictive(
            model,
            guide=guide,
            num_samples=count,
            return_sites=[site],
            parallel=parallel,
        )
        chunks.append(predictive(*args)[site])
    return torch.cat(chunks)


def posterior_predictive_check(
    observed: torch.Tensor,
    replicated: torch.Tensor,
    statistics: Mapping[str, Statistic],
) -> dict[str, CheckResult]:
    """Compare ``statistics`` of the observed data with those of the replicates.

    :param observed: the data, in the layout the model's site uses.
    :param replicated: (S, *observed.shape) replicates, e.g. from :func:`replicate`.
    :param statistics: name -> function of one data set returning a scalar tensor.
    :returns: name -> :class:`CheckResult`.
    """
    results = {}
    for name, statistic in statistics.items():
        t_obs = statistic(observed)
        t_rep = torch.stack([statistic(x_rep) for x_rep in replicated])
        results[name] = CheckResult(
            name=name,
            observed=float(t_obs),
            replicated=t_rep.detach().cpu(),
            p_value=float(exceedance(t_rep, t_obs).mean()),
        )
    return results
