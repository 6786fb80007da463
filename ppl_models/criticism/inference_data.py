"""A fitted Pyro model and guide as ArviZ's InferenceData, for ``az.summary``,
``az.loo`` and ArviZ's posterior predictive plots.

ArviZ converts MCMC runs from Pyro, not SVI fits (arviz-devs/arviz 2453), so this
does it with Pyro's own tools: ``Predictive`` draws the latents from the guide and
the replicated data from the model, and ``poutine.condition`` scores each observed
point under each draw. Every site keeps the shape it has in one run of the program:
``Predictive``'s padding for plates (pyro-ppl/pyro 2122) is removed.

The groups are those ArviZ's conventions name: ``posterior`` (one chain of draws from
the guide), ``posterior_predictive``, ``observed_data`` and ``log_likelihood`` (one
value per data point and draw, for LOO). The log likelihood is the model's to give:
:func:`conditional_log_likelihood` scores the observed site given all latents, which
is right for a model whose latents are global; a model with a latent per data point
should integrate it out, or give none. Needs the ``arviz`` extra: ``pip install
"ppl_models[arviz]"``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from pyro import poutine
from pyro.infer import Predictive
from pyro.poutine.util import site_is_subsample

from ppl_models.errors import UsageError

#: one draw's latents (site name -> value) -> the log likelihood of each point, (N,)
PointwiseLogLikelihood = Callable[[dict[str, torch.Tensor]], torch.Tensor]


def latent_sites(trace: poutine.Trace) -> list[str]:
    """The names of ``trace``'s latent sample sites: not observed, not a plate's
    subsample, and not a guide's auxiliary site (AutoNormal's unconstrained)."""
    return [
        name
        for name, site in trace.nodes.items()
        if site["type"] == "sample"
        and not site["is_observed"]
        and not site_is_subsample(site)
        and not site["infer"].get("is_auxiliary")
    ]


def require_arviz() -> Any:
    """``arviz_base``, or a UsageError that says how to install it."""
    try:
        import arviz_base
    except ImportError:
        raise UsageError(
            'ArviZ export needs the arviz extra: pip install "ppl_models[arviz]"'
        ) from None
    return arviz_base


def to_inference_data(
    model: Callable[..., Any],
    guide: Callable[..., Any],
    *,
    fit_args: tuple,
    predict_args: tuple,
    observed_site: str,
    guide_args: tuple | None = None,
    num_samples: int = 200,
    dims: Mapping[str, Sequence[str]] | None = None,
    log_likelihood: PointwiseLogLikelihood | None = None,
    log_likelihood_dims: Sequence[str] = ("point",),
) -> Any:
    """Draw from ``guide`` and ``model`` and return ArviZ's InferenceData (an
    ``xarray.DataTree``). Draws from the caller's generators: seed them first.

    :param fit_args: the model's arguments with the data observed.
    :param predict_args: the model's arguments with the observations left out.
    :param guide_args: the guide's arguments for the draws (default:
        ``predict_args``; an amortized guide needs the data).
    :param dims: site name -> names of its dimensions (one run's shape).
    :param log_likelihood: one draw's latents -> the log likelihood of each data
        point, (N,); None gives no ``log_likelihood`` group.
    :returns: groups ``posterior``, ``posterior_predictive``, ``observed_data`` and
        ``log_likelihood``, with one chain of ``num_samples`` draws; a point-mass
        guide (MAP) gets no ``log_likelihood``: there is no posterior to leave a
        point out of.
    """
    arviz_base = require_arviz()
    import xarray

    guide_args = predict_args if guide_args is None else guide_args
    dims = dict(dims or {})
    with torch.no_grad():
        one_run = poutine.trace(guide).get_trace(*guide_args)
        shapes = {name: one_run.nodes[name]["value"].shape
                  for name in latent_sites(one_run)}  # fmt: skip
        drawn = Predictive(guide, num_samples=num_samples, return_sites=list(shapes))
        latents = {
            name: value.reshape(num_samples, *shapes[name])
            for name, value in drawn(*guide_args).items()
        }
        observed = _observed_site(model, fit_args, observed_site)
        replicate = Predictive(
            model, posterior_samples=latents, return_sites=[observed_site]
        )
        replicated = replicate(*predict_args)[observed_site]
        replicated = replicated.reshape(num_samples, *observed["value"].shape)
        # A point-mass guide has no posterior to leave a point out of.
        point_mass = all(bool((v == v[:1]).all()) for v in latents.values())
        pointwise = None
        if log_likelihood is not None and not point_mass:
            pointwise = torch.stack(
                [
                    log_likelihood({name: v[s] for name, v in latents.items()})
                    for s in range(num_samples)
                ]
            )

    def dataset(values: dict[str, torch.Tensor], sample_dims=None, own_dims=None):
        arrays = {name: value.detach().cpu().numpy() for name, value in values.items()}
        return arviz_base.dict_to_dataset(
            {k: v[None] if sample_dims is None else v for k, v in arrays.items()},
            dims=own_dims or dims,
            sample_dims=sample_dims,
            inference_library=None,
        )

    groups = {
        "posterior": dataset(latents),
        "posterior_predictive": dataset({observed_site: replicated}),
        "observed_data": dataset({observed_site: observed["value"]}, sample_dims=[]),
    }
    if pointwise is not None:
        groups["log_likelihood"] = dataset(
            {observed_site: pointwise},
            own_dims={observed_site: list(log_likelihood_dims)},
        )
    return xarray.DataTree.from_dict(groups)


def _observed_site(model: Callable[..., Any], args: tuple, site: str) -> dict:
    trace = poutine.trace(model).get_trace(*args)
    if site not in trace.nodes or not trace.nodes[site]["is_observed"]:
        raise UsageError(f"the model observes no site named {site!r}")
    return trace.nodes[site]


def conditional_log_likelihood(
    model: Callable[..., Any], args: tuple, site: str, data_plate: str
) -> PointwiseLogLikelihood:
    """``log p(x_n | latents)`` for each data point n of the observed ``site``,
    (N,): its log density summed over every dimension but ``data_plate``'s.
    """

    def pointwise(latents: dict[str, torch.Tensor]) -> torch.Tensor:
        node = _observed_site(poutine.condition(model, data=latents), args, site)
        log_prob = node["fn"].log_prob(node["value"])
        frames = [f for f in node["cond_indep_stack"] if f.name == data_plate]
        if not frames:
            raise UsageError(f"site {site!r} is in no plate named {data_plate!r}")
        keep = log_prob.dim() + frames[0].dim
        other = [d for d in range(log_prob.dim()) if d != keep]
        return log_prob.sum(dim=other) if other else log_prob

    return pointwise
