"""The VAE's building blocks: the configuration and its error messages, the
likelihoods and priors it builds, the model's and guide's refusals, and the ELBOs
``make_elbo`` hands out."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from pyro import poutine
from torch.nn import functional as F

from ppl_models.errors import UsageError
from ppl_models.inference import make_objective, svi_step
from ppl_models.inference.elbo import ELBOS, DeviceTrace_ELBO, DeviceTraceMeanField_ELBO
from ppl_models.models.vae import VAE, VAEConfig, make_elbo
from ppl_models.models.vae.flows import flow_posterior
from ppl_models.models.vae.networks import ACTIVATIONS, ARCHITECTURES
from ppl_models.models.vae.priors import (
    PRIORS,
    MixturePrior,
    StandardNormalPrior,
    make_prior,
)

SMALL = dict(image_shape=(8, 8), latent_dim=3, hidden_dims=(16,))


def _choices(values) -> str:
    return ", ".join(values)


# The whole message, not a fragment: a user reads it to learn which argument is wrong
# and what it may be.
@pytest.mark.parametrize("overrides,message", [
    ({"latent_dim": 0}, "latent_dim must be a positive integer, got 0"),
    ({"hidden_dims": (16, -2)}, "hidden_dim must be a positive integer, got -2"),
    ({"mixture_components": 0},
     "mixture_components must be a positive integer, got 0"),
    ({"architecture": "rnn"},
     f"unknown architecture 'rnn': expected one of {_choices(ARCHITECTURES)}"),
    ({"activation": "swish"},
     f"unknown activation 'swish': expected one of {_choices(ACTIVATIONS)}"),
    ({"prior": "laplace"},
     f"unknown prior 'laplace': expected one of {_choices(PRIORS)}"),
    ({"likelihood": "poisson"},
     "unknown likelihood 'poisson': expected one of "
     "bernoulli, continuous_bernoulli, normal"),
    ({"guide": "flow"}, "unknown guide 'flow': expected one of normal, iaf"),
    ({"flows": 0}, "flows must be a positive integer, got 0"),
])  # fmt: skip
def test_a_bad_configuration_says_which_argument_and_why(overrides, message):
    with pytest.raises(UsageError) as error:
        VAEConfig(image_shape=(8, 8), **overrides)
    assert str(error.value) == message


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_listed_activation_is_accepted(activation):
    assert VAEConfig(**SMALL, activation=activation).activation == activation


def test_config_survives_a_json_round_trip_and_ignores_unknown_keys():
    # JSON turns tuples into lists; a config read back from a run's config.json
    # must equal the one saved, and keys of other settings saved beside it are left.
    config = VAEConfig(image_shape=[8, 8], latent_dim=3, hidden_dims=[16, 8])
    assert config.image_shape == (8, 8) and config.hidden_dims == (16, 8)
    saved = json.loads(json.dumps(config.to_dict()))
    assert saved["image_shape"] == [8, 8] and saved["latent_dim"] == 3
    restored = VAEConfig.from_dict({**saved, "epochs": 5, "lr": 0.001})
    assert restored == config
    assert hash(restored) == hash(config)
    assert restored.num_pixels == 64


@pytest.mark.parametrize("likelihood", ["bernoulli", "continuous_bernoulli", "normal"])
def test_the_models_log_likelihood_is_the_named_distribution(likelihood):
    # log p(x | z) recomputed with torch.distributions from the decoder's logits.
    torch.manual_seed(0)
    vae = VAE(VAEConfig(**SMALL, likelihood=likelihood))
    x = torch.rand(4, 64)
    if likelihood == "bernoulli":
        x = x.round()
    with torch.no_grad():
        trace = poutine.trace(vae.model).get_trace(x)
        trace.compute_log_prob()
        logits = vae.model.decoder(trace.nodes["z"]["value"])
        scale = vae.model.pixel_scale() if likelihood == "normal" else None
    pixels = {
        "bernoulli": lambda: torch.distributions.Bernoulli(logits=logits),
        "continuous_bernoulli": lambda: torch.distributions.ContinuousBernoulli(
            logits=logits
        ),
        "normal": lambda: torch.distributions.Normal(torch.sigmoid(logits), scale),
    }[likelihood]()
    expected = pixels.log_prob(x).sum(-1)
    torch.testing.assert_close(trace.nodes["x"]["log_prob"], expected)
    assert trace.nodes["x"]["log_prob"].shape == (4,)


def test_only_the_normal_likelihood_learns_a_pixel_scale_starting_at_0_1():
    normal = VAE(VAEConfig(**SMALL, likelihood="normal"))
    assert float(normal.model.pixel_scale().detach()) == pytest.approx(0.1, abs=1e-4)
    assert "model.raw_pixel_scale" in dict(normal.named_parameters())
    for likelihood in ("bernoulli", "continuous_bernoulli"):
        vae = VAE(VAEConfig(**SMALL, likelihood=likelihood))
        assert "model.raw_pixel_scale" not in dict(vae.named_parameters())


def test_the_model_and_guide_say_what_input_they_need():
    vae = VAE(VAEConfig(**SMALL))
    with pytest.raises(UsageError) as error:
        vae.model()
    assert str(error.value) == "the vae model needs images x or num_images"
    with pytest.raises(UsageError) as error:
        vae.guide(None)
    assert str(error.value) == "the vae guide encodes images: it needs x"
    generated = vae.model(None, num_images=5)
    assert generated.shape == (5, 64)


def test_the_configured_prior_is_built_with_its_sizes():
    normal = VAE(VAEConfig(**SMALL)).model.prior
    assert isinstance(normal, StandardNormalPrior)
    assert normal().event_shape == (3,)
    mixture = VAE(VAEConfig(**SMALL, prior="mixture", mixture_components=4))
    prior = mixture.model.prior
    assert isinstance(prior, MixturePrior)
    assert prior.components()["loc"].shape == (4, 3)
    assert prior().event_shape == (3,)
    assert isinstance(make_prior("normal", 2, 4), StandardNormalPrior)


def test_a_new_mixture_prior_has_equal_weights_and_unit_scales():
    # The documented start: every component a unit Gaussian, ten by default.
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation noise for the user either
        parts = MixturePrior(latent_dim=2).components()
    assert parts["weights"].shape == (10,)
    torch.testing.assert_close(parts["weights"], torch.full((10,), 0.1))
    torch.testing.assert_close(parts["scale"], torch.ones(10, 2), atol=1e-4, rtol=0)
    assert F.softplus(torch.tensor(0.5413)) == pytest.approx(1.0, abs=1e-4)


def test_the_standard_normal_prior_is_unit_gaussian_per_dimension():
    prior = StandardNormalPrior(3)()
    z = torch.tensor([[0.0, 1.0, -2.0]])
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    torch.testing.assert_close(prior.log_prob(z), expected)


@pytest.mark.parametrize("name,cls", [
    ("trace", DeviceTrace_ELBO), ("meanfield", DeviceTraceMeanField_ELBO),
])  # fmt: skip
def test_make_elbo_gives_the_named_elbo_vectorizing_two_or_more_particles(name, cls):
    config = VAEConfig(**SMALL)
    one = make_elbo(name, config)
    assert type(one) is cls
    assert one.num_particles == 1  # one particle by default
    assert not one.vectorize_particles  # one particle needs no particle plate
    assert one.max_plate_nesting == 1  # the data plate
    two = make_elbo(name, config, num_particles=2)
    assert two.num_particles == 2 and two.vectorize_particles


def test_make_elbo_refusals_say_why():
    normal, mixture = VAEConfig(**SMALL), VAEConfig(**SMALL, prior="mixture")
    with pytest.raises(UsageError) as error:
        make_elbo("meanfield", mixture)
    assert str(error.value) == (
        "--elbo meanfield needs a closed-form KL, which a mixture prior does not "
        "have: use --elbo trace with --prior mixture"
    )
    with pytest.raises(UsageError) as error:
        make_elbo("renyi", normal)
    assert str(error.value) == (
        "unknown elbo 'renyi': expected one of trace, meanfield, iwae"
    )
    with pytest.raises(UsageError) as error:
        make_elbo("trace", normal, num_particles=0)
    assert str(error.value) == "num_particles must be a positive integer, got 0"


def test_model_and_guide_share_the_data_plate_and_training_warns_of_nothing():
    # Pyro pairs the model's and the guide's z through their plates: a plate in one
    # and not the other makes every training step warn.
    vae, x = VAE(VAEConfig(**SMALL)), torch.rand(5, 64).round()
    guide_trace = poutine.trace(vae.guide).get_trace(x)
    model_trace = poutine.trace(poutine.replay(vae.model, trace=guide_trace)).get_trace(
        x
    )
    model_frames = model_trace.nodes["z"]["cond_indep_stack"]
    assert model_frames == guide_trace.nodes["z"]["cond_indep_stack"]
    assert [(f.dim, f.size) for f in model_frames] == [(-1, 5)]
    for name in ELBOS:
        objective = make_objective(vae.model, vae.guide, make_elbo(name, vae.config), x)
        optimizer = torch.optim.Adam(objective.parameters(), lr=1e-3)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            svi_step(objective, optimizer, x)


def test_model_and_guide_make_every_tensor_on_the_vaes_device():
    # With "meta" as the default device, a tensor made without device= (a plate's
    # indices included) would land on meta; everything must be on the VAE's device.
    vae, x = VAE(VAEConfig(**SMALL)), torch.rand(3, 64).round()
    torch.set_default_device("meta")
    try:
        guide_trace = poutine.trace(vae.guide).get_trace(x)
        model_trace = poutine.trace(vae.model).get_trace(None, 4)
    finally:
        torch.set_default_device(None)
    for trace in (guide_trace, model_trace):
        values = {
            name: site["value"].device.type
            for name, site in trace.nodes.items()
            if isinstance(site.get("value"), torch.Tensor)
        }
        assert "data" in values and set(values.values()) == {"cpu"}, values


def test_a_conv_vae_builds_its_networks_with_the_configs_base_depth():
    from ppl_models.models.vae import VAE, VAEConfig
    from ppl_models.models.vae.networks import build_networks

    config = VAEConfig(
        image_shape=(8, 8), latent_dim=3, architecture="conv", base_depth=4
    )
    vae = VAE(config)
    encoder, decoder = build_networks("conv", (8, 8), 3, base_depth=4)
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    assert count(vae) == count(encoder) + count(decoder)
    assert count(vae) < count(VAE(VAEConfig(**{**config.to_dict(), "base_depth": 32})))


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_the_iaf_guide_draws_codes_with_their_exact_density(architecture):
    # The density the ELBO uses comes from the flows' cached forward pass; it must
    # equal the density recomputed by inverting the flows (no cache), and the
    # flows must move the draws away from the encoder's Normal.
    torch.manual_seed(0)
    config = VAEConfig(**SMALL, guide="iaf", flows=3, architecture=architecture,
                       base_depth=4)  # fmt: skip
    vae = VAE(config)
    for step in vae.guide.flows:  # away from the identity they start near
        torch.nn.init.normal_(step.nn.layers[-1].weight, std=0.5)
    x = torch.rand(4, 64).round()
    with torch.no_grad():
        trace = poutine.trace(vae.guide).get_trace(x)
        site = trace.nodes["z"]
        z, q = site["value"], site["fn"]
        cached = q.log_prob(z)
        loc, scale, features = vae.guide.encoder.with_features(x)
        fresh = flow_posterior(loc, scale, features, vae.guide.flows)
        uncached = fresh.log_prob(z.clone())
        normal = torch.distributions.Normal(loc, scale).log_prob(z).sum(-1)
    assert z.shape == (4, 3) and cached.shape == (4,)
    torch.testing.assert_close(cached, uncached, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(cached, normal, atol=1e-2)
    assert len(vae.guide.flows) == 3
    assert len(VAE(VAEConfig(**SMALL)).guide.flows) == 0  # the Normal guide


def test_older_configs_without_a_guide_read_as_the_normal_guide():
    values = VAEConfig(**SMALL).to_dict()
    del values["guide"], values["flows"]
    assert VAEConfig.from_dict(values).guide == "normal"
