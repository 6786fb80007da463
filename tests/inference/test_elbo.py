"""The device ELBOs against Pyro's own on the terms the registered models do not
exercise: score-function gradients of discrete latents, several particles, analytic
KL under subsampling and masks, sites with no closed-form KL, auxiliary guide sites.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import RenyiELBO, Trace_ELBO, TraceMeanField_ELBO

from ppl_models.errors import UsageError
from ppl_models.inference.elbo import (
    DeviceIWAE_ELBO,
    DeviceTrace_ELBO,
    DeviceTraceMeanField_ELBO,
    make_elbo,
)


def loss_and_grads(elbo, model, guide, *args, seed=0):
    """Value and gradients by parameter name of ``elbo(model, guide)(*args)``."""
    objective = elbo(model, guide)
    objective.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    loss = objective(*args)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in objective.named_parameters()}


def assert_same_as_pyro(ours, theirs, model, guide, *args):
    loss, grads = loss_and_grads(ours, model, guide, *args)
    pyro_loss, pyro_grads = loss_and_grads(theirs, model, guide, *args)
    assert loss.shape == ()
    torch.testing.assert_close(loss, pyro_loss)
    assert grads.keys() == pyro_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, pyro_grads[name], msg=name)


def mixture_model(x):
    loc = pyro.sample("loc", dist.Normal(0.0, 2.0))
    with pyro.plate("data", x.shape[0]):
        c = pyro.sample("c", dist.Bernoulli(0.3))
        pyro.sample("x", dist.Normal(loc + 2.0 * c, 1.0), obs=x)


class MixtureGuide(torch.nn.Module):
    """A reparameterized global and a discrete local latent per data point."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.loc = torch.nn.Parameter(torch.tensor(0.5))
        self.log_scale = torch.nn.Parameter(torch.tensor(-0.5))
        self.logits = torch.nn.Parameter(torch.linspace(-1.0, 1.0, n))

    def forward(self, x):
        pyro.sample("loc", dist.Normal(self.loc, self.log_scale.exp()))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("c", dist.Bernoulli(logits=self.logits))


@pytest.mark.parametrize("particles", [1, 3])
def test_trace_elbo_gives_pyros_value_and_score_function_gradient(particles):
    # The discrete site's logits get their gradient only through the score-function
    # term, weighted by the log-ratios of their own data point.
    x = torch.tensor([-1.0, 0.5, 2.0, 3.0])
    ours = DeviceTrace_ELBO(num_particles=particles)
    theirs = Trace_ELBO(num_particles=particles)
    assert_same_as_pyro(ours, theirs, mixture_model, MixtureGuide(4), x)


def test_trace_elbo_value_is_the_elbo_not_the_surrogate():
    # One particle, a fixed draw: -ELBO = -(log p(loc, c, x) - log q(loc, c)).
    x = torch.tensor([0.0, 1.0])
    guide = MixtureGuide(2)
    torch.manual_seed(0)
    guide_trace = poutine.trace(guide).get_trace(x)
    model_trace = poutine.trace(poutine.replay(mixture_model, guide_trace)).get_trace(x)
    expected = guide_trace.log_prob_sum() - model_trace.log_prob_sum()
    loss, _ = loss_and_grads(DeviceTrace_ELBO(), mixture_model, guide, x)
    torch.testing.assert_close(loss, expected.detach())


def scaled_model(x, mask):
    # a Student-t prior has no closed-form KL from a Normal; the Normal ones have
    t = pyro.sample("t", dist.StudentT(4.0, 0.0, 1.0))
    # an observation before a latent site: the sum goes on past it
    pyro.sample("y", dist.Normal(t, 1.0), obs=x.mean())
    with pyro.plate("data", 6, subsample_size=x.shape[0]):
        with poutine.mask(mask=mask):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(z + t, 1.0), obs=x)


class ScaledGuide(torch.nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.t_loc = torch.nn.Parameter(torch.tensor(0.3))
        self.z_loc = torch.nn.Parameter(torch.linspace(-0.5, 0.5, n))
        self.z_log_scale = torch.nn.Parameter(torch.full((n,), -0.3))
        self.aux_loc = torch.nn.Parameter(torch.tensor(1.0))

    def forward(self, x, mask):
        # an auxiliary site: only in the guide, so it adds its entropy
        u = pyro.sample(
            "u", dist.Normal(self.aux_loc, 2.0), infer={"is_auxiliary": True}
        )
        pyro.sample("t", dist.Normal(self.t_loc + 0.0 * u, 0.5))
        data = pyro.plate("data", 6, subsample_size=x.shape[0])
        with data, poutine.mask(mask=mask):
            pyro.sample("z", dist.Normal(self.z_loc, self.z_log_scale.exp()))


@pytest.mark.parametrize("particles", [1, 2])
def test_mean_field_elbo_gives_pyros_value_and_gradient(particles):
    x = torch.tensor([0.5, -1.0, 2.0])
    mask = torch.tensor([True, False, True])
    ours = DeviceTraceMeanField_ELBO(num_particles=particles)
    theirs = TraceMeanField_ELBO(num_particles=particles)
    assert_same_as_pyro(ours, theirs, scaled_model, ScaledGuide(3), x, mask)


def test_mean_field_elbo_refuses_a_guide_it_cannot_reparameterize():
    # Its gradient would silently miss the score-function term.
    x = torch.tensor([0.0, 1.0])
    with pyro.validation_enabled(True), pytest.raises(NotImplementedError):
        DeviceTraceMeanField_ELBO()(mixture_model, MixtureGuide(2))(x)


# Pyro's checks that need no host read hold in the device ELBOs, with validation off
# as well (a fit switches it off for speed); each refuses what Pyro's ELBO refuses.


def plated_model():
    with pyro.plate("data", 5):
        pyro.sample("z", dist.Normal(0.0, 1.0))


def unplated_guide():
    loc = pyro.param("loc", torch.tensor(0.3))
    pyro.sample("z", dist.Normal(loc, 1.0))


def test_mean_field_refuses_a_guide_site_outside_its_model_sites_plates():
    # With validation on, Pyro's shape check (which both ELBOs run) refuses it
    # first; without, Pyro's KL assertion does, and this ELBO raises in its place.
    with pyro.validation_enabled(False):
        with pytest.raises(AssertionError):
            TraceMeanField_ELBO().differentiable_loss(plated_model, unplated_guide)
        with pytest.raises(ValueError) as error:
            DeviceTraceMeanField_ELBO().differentiable_loss(
                plated_model, unplated_guide
            )
    assert str(error.value) == (
        "site 'z': KL(guide || model) has shape (5,), the guide's distribution "
        "batch shape (): put the guide site in the same plates as the model site"
    )


def masked_model():
    with pyro.plate("data", 4), poutine.mask(mask=False):
        pyro.sample("z", dist.Normal(0.0, 1.0))
    pyro.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(0.5))


def masked_guide():
    loc = pyro.param("loc", torch.zeros(4))
    with pyro.plate("data", 4), poutine.mask(mask=False):
        pyro.sample("z", dist.Normal(loc, 1.0))


def masked_distribution_model():
    with pyro.plate("data", 4):
        pyro.sample("z", dist.Normal(0.0, 1.0).mask(False))
    pyro.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(0.5))


def masked_distribution_guide():
    loc = pyro.param("loc", torch.ones(4))
    with pyro.plate("data", 4):
        pyro.sample("z", dist.Normal(loc, 1.0).mask(False))


@pytest.mark.parametrize(
    "model, guide",
    [
        (masked_model, masked_guide),  # poutine.mask: the site's mask is False
        # .mask(False): Pyro's KL of the masked-out distribution is the number 0
        (masked_distribution_model, masked_distribution_guide),
    ],
)
def test_mean_field_skips_a_masked_out_site_as_pyro_does_and_counts_the_next(
    model, guide
):
    ours = DeviceTraceMeanField_ELBO().differentiable_loss(model, guide)
    theirs = TraceMeanField_ELBO().differentiable_loss(model, guide)
    assert torch.is_tensor(ours)
    assert float(ours) == pytest.approx(float(theirs))
    assert float(ours) == pytest.approx(
        -dist.Normal(0.0, 1.0).log_prob(torch.tensor(0.5)).item()
    )


@pytest.mark.parametrize(
    "elbo", [DeviceTrace_ELBO, DeviceTraceMeanField_ELBO, DeviceIWAE_ELBO]
)
def test_an_empty_model_and_guide_give_a_zero_tensor(elbo):
    loss = elbo().differentiable_loss(lambda: None, lambda: None)
    assert torch.is_tensor(loss) and loss.shape == () and float(loss) == 0.0


def model_without_u():
    pyro.sample("t", dist.Normal(0.0, 1.0))


def guide_with(u_distribution, auxiliary):
    def guide():
        infer = {"is_auxiliary": True} if auxiliary else {}
        pyro.sample("u", u_distribution, infer=infer)
        pyro.sample("t", dist.Normal(pyro.param("t_loc", torch.tensor(0.1)), 1.0))

    return guide


def test_mean_field_refuses_a_guide_only_site_not_marked_auxiliary():
    guide = guide_with(dist.Normal(0.0, 1.0), auxiliary=False)
    with pytest.raises(AssertionError):
        TraceMeanField_ELBO().differentiable_loss(model_without_u, guide)
    with pytest.raises(ValueError) as error:
        DeviceTraceMeanField_ELBO().differentiable_loss(model_without_u, guide)
    assert str(error.value) == (
        "guide site 'u' is not in the model: mark it infer={'is_auxiliary': True} "
        "if it is auxiliary"
    )


def test_mean_field_refuses_sites_it_cannot_reparameterize_without_validation():
    auxiliary = guide_with(dist.Bernoulli(0.5), auxiliary=True)
    with pyro.validation_enabled(True), pytest.raises(NotImplementedError):
        TraceMeanField_ELBO().differentiable_loss(model_without_u, auxiliary)
    x = torch.tensor([0.0, 1.0])
    with pyro.validation_enabled(False):
        with pytest.raises(NotImplementedError):
            DeviceTraceMeanField_ELBO().differentiable_loss(model_without_u, auxiliary)
        with pytest.raises(NotImplementedError):
            DeviceTraceMeanField_ELBO()(mixture_model, MixtureGuide(2))(x)


@pytest.mark.parametrize("kind, cls", [
    ("trace", DeviceTrace_ELBO), ("meanfield", DeviceTraceMeanField_ELBO),
    ("iwae", DeviceIWAE_ELBO),
])  # fmt: skip
def test_make_elbo_builds_the_named_estimator_vectorizing_two_particles_on(kind, cls):
    one = make_elbo(kind)
    assert type(one) is cls
    assert (one.num_particles, one.vectorize_particles) == (1, False)
    three = make_elbo(kind, 3)
    assert (three.num_particles, three.vectorize_particles) == (3, True)
    assert make_elbo(kind, max_plate_nesting=2).max_plate_nesting == 2


def test_make_elbo_names_an_unknown_kind_and_a_bad_particle_count():
    with pytest.raises(UsageError) as error:
        make_elbo("renyi")
    assert str(error.value) == (
        "unknown elbo 'renyi': expected one of trace, meanfield, iwae"
    )
    with pytest.raises(UsageError) as error:
        make_elbo("trace", 0)
    assert str(error.value) == "num_particles must be a positive integer, got 0"


def local_model(x):
    """A global location and a continuous latent per data point."""
    loc = pyro.sample("loc", dist.Normal(0.0, 2.0))
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(loc, 1.0))
        pyro.sample("x", dist.Normal(z, 0.5), obs=x)


def local_guide(x, with_global=True):
    if with_global:
        loc = pyro.param("loc_q", torch.tensor(0.3))
        pyro.sample("loc", dist.Normal(loc, pyro.param("loc_s", torch.tensor(0.4))))
    z_loc = pyro.param("z_loc", 0.5 * x)
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(z_loc, pyro.param("z_s", torch.tensor(0.6))))


def local_only_model(x):
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(z, 0.5), obs=x)


def renyi_loss_and_grads(elbo, model, guide, *args, seed=0):
    """Pyro's RenyiELBO steps the gradients itself, of the params in its store."""
    pyro.clear_param_store()
    torch.manual_seed(seed)
    loss = elbo.loss_and_grads(model, guide, *args)
    store = pyro.get_param_store()
    return loss, {n: store.get_param(n).unconstrained().grad.clone() for n in store}


def iwae_loss_and_grads(elbo, model, guide, *args, seed=0):
    pyro.clear_param_store()
    torch.manual_seed(seed)
    loss = elbo.differentiable_loss(model, guide, *args)
    store = pyro.get_param_store()
    params = {n: store.get_param(n).unconstrained() for n in store}
    grads = torch.autograd.grad(loss, list(params.values()))
    return loss.detach(), dict(zip(params, grads, strict=True))


@pytest.mark.parametrize("particles", [1, 4])
@pytest.mark.parametrize("vectorize", [False, True])
@pytest.mark.parametrize(
    "model, guide",
    [(local_model, local_guide),
     (local_only_model, lambda x: local_guide(x, with_global=False))],
    ids=["global-and-local", "local"],
)  # fmt: skip
def test_iwae_gives_renyi_alpha_0s_value_and_gradient(
    particles, vectorize, model, guide
):
    # A global latent ties the data points: the weight is per particle, summed over
    # the plate. Without one, every point has its own weights (the VAE's case).
    x = torch.tensor([0.3, -1.2, 2.0])
    settings = dict(num_particles=particles, max_plate_nesting=1,
                    vectorize_particles=vectorize)  # fmt: skip
    try:
        loss, grads = iwae_loss_and_grads(DeviceIWAE_ELBO(**settings), model, guide, x)
        theirs, their_grads = renyi_loss_and_grads(
            RenyiELBO(alpha=0.0, **settings), model, guide, x
        )
    finally:
        pyro.clear_param_store()
    assert loss.shape == ()
    assert float(loss) == pytest.approx(theirs, rel=1e-6)
    assert grads.keys() == their_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, their_grads[name], msg=name)


def test_iwae_with_one_particle_is_the_elbo_and_more_particles_tighten_it():
    x = torch.tensor([0.3, -1.2, 2.0])
    guide = lambda x: local_guide(x, with_global=False)  # noqa: E731
    try:
        torch.manual_seed(5)
        one = DeviceIWAE_ELBO(num_particles=1).differentiable_loss(
            local_only_model, guide, x
        )
        torch.manual_seed(5)
        elbo = DeviceTrace_ELBO().differentiable_loss(local_only_model, guide, x)
        torch.manual_seed(5)
        many = DeviceIWAE_ELBO(
            num_particles=4000, vectorize_particles=True, max_plate_nesting=1
        ).differentiable_loss(local_only_model, guide, x)
        torch.manual_seed(5)
        elbo_many = DeviceTrace_ELBO(
            num_particles=4000, vectorize_particles=True, max_plate_nesting=1
        ).differentiable_loss(local_only_model, guide, x)
    finally:
        pyro.clear_param_store()
    torch.testing.assert_close(one, elbo)
    # log p(x) in closed form: x ~ Normal(0, sqrt(1 + 0.25)) per point
    log_px = dist.Normal(0.0, 1.25**0.5).log_prob(x).sum()
    assert float(-elbo_many) < float(-many) <= float(log_px) + 0.01
    assert float(-many) == pytest.approx(float(log_px), abs=0.02)


def test_iwae_refuses_a_guide_site_it_cannot_reparameterize():
    x = torch.tensor([0.0, 1.0])
    with pyro.validation_enabled(False), pytest.raises(NotImplementedError):
        DeviceIWAE_ELBO(num_particles=2)(mixture_model, MixtureGuide(2))(x)
