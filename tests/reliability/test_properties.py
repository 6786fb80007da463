"""Property-based checks over sizes: model and guide agree on every site's shape,
and log-probabilities and losses stay finite, for PPCA and the VAE."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pyro import poutine

from ppl_models.inference import make_objective
from ppl_models.models.ppca import PPCA, make_guide
from ppl_models.models.ppca.fit import make_elbo as ppca_elbo
from ppl_models.models.vae import VAE, VAEConfig, make_elbo

SETTINGS = settings(max_examples=25, deadline=None)


def check_traces(model, guide, args, latent_sites):
    guide_trace = poutine.trace(guide).get_trace(*args)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(
        *args
    )
    for site in latent_sites:
        assert (
            model_trace.nodes[site]["value"].shape
            == guide_trace.nodes[site]["value"].shape
        )
    model_trace.compute_log_prob()
    guide_trace.compute_log_prob()
    for trace in (model_trace, guide_trace):
        for node in trace.nodes.values():
            if node["type"] == "sample" and "log_prob" in node:
                assert torch.isfinite(node["log_prob"]).all(), node["name"]


@SETTINGS
@given(
    n=st.integers(1, 30),
    data_dim=st.integers(1, 6),
    latent_frac=st.floats(0.0, 1.0),
    inference=st.sampled_from(["map", "meanfield"]),
    particles=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_ppca_shapes_and_finiteness(
    n, data_dim, latent_frac, inference, particles, seed
):
    torch.manual_seed(seed)
    latent_dim = 1 + int(latent_frac * (data_dim - 1))
    model = PPCA(data_dim, latent_dim)
    x = torch.randn(data_dim, n)
    guide = make_guide(model, inference)
    elbo = ppca_elbo(inference)
    elbo.num_particles = particles
    objective = make_objective(model, guide, elbo, x)
    check_traces(model, guide, (x,), ("w", "z"))
    assert torch.isfinite(objective(x))


@SETTINGS
@given(
    batch=st.integers(1, 9),
    latent_dim=st.integers(1, 5),
    particles=st.integers(1, 4),
    prior=st.sampled_from(["normal", "mixture"]),
    likelihood=st.sampled_from(["bernoulli", "continuous_bernoulli", "normal"]),
    seed=st.integers(0, 2**16),
)
def test_vae_shapes_and_finiteness(
    batch, latent_dim, particles, prior, likelihood, seed
):
    torch.manual_seed(seed)
    config = VAEConfig(
        image_shape=(4, 4),
        latent_dim=latent_dim,
        hidden_dims=(8,),
        prior=prior,
        likelihood=likelihood,
    )
    vae = VAE(config)
    x = torch.rand(batch, 16)
    if likelihood == "bernoulli":
        x = x.round()
    check_traces(vae.model, vae.guide, (x,), ("z",))
    loss = make_objective(
        vae.model, vae.guide, make_elbo("trace", config, particles), x
    )(x)
    assert loss.shape == () and torch.isfinite(loss)
    if prior == "normal":
        analytic = make_elbo("meanfield", config, particles)
        assert torch.isfinite(analytic.differentiable_loss(vae.model, vae.guide, x))
