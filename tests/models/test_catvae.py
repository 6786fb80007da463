"""The categorical VAE: its temperature schedule, its bounds held against the exact
likelihood of a model small enough to enumerate, the picture of what each latent
controls, and bad settings refused. The shared tests (device trap, ELBO equal to
Pyro's, save/load, exact resume, command line) cover it as a registered model, and
tests/test_distributions.py its relaxed distributions."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from pyro import poutine
from torch.nn import functional as F

from ppl_models.cli import main
from ppl_models.errors import UsageError
from ppl_models.models.catvae import CatVAE, CatVAEConfig, CatVAEFit, CatVAESpec
from ppl_models.models.catvae.config import CatVAERunConfig
from ppl_models.models.catvae.experiment import latent_traversal
from ppl_models.models.catvae.model import temperature_at
from ppl_models.models.vae import fit_vae
from ppl_models.models.vae.evaluate import evaluate_bounds
from ppl_models.models.vae.experiment import VAEEvaluation


def tiny(**overrides) -> CatVAE:
    torch.manual_seed(0)
    config = dict(image_shape=(4, 4), latent_dim=2, num_classes=3, hidden_dims=(8,))
    return CatVAE(CatVAEConfig(**{**config, **overrides}))


def exact_log_likelihood(vae: CatVAE, x: torch.Tensor) -> torch.Tensor:
    """log p(x) of the discrete model, summing over all K^N codes: (B,)."""
    n, k = vae.config.latent_dim, vae.config.num_classes
    codes = torch.stack([F.one_hot(torch.tensor(c), k).float()
                         for c in itertools.product(range(k), repeat=n)])  # fmt: skip
    with torch.no_grad():
        logits = vae.model.decoder(codes)  # (K^N, P)
        lik = torch.distributions.Bernoulli(logits=logits[:, None]).log_prob(x)
    return lik.sum(-1).logsumexp(0) - n * math.log(k)


@pytest.mark.parametrize("straight_through", [False, True])
def test_the_bounds_are_below_the_exact_likelihood_and_near_it(straight_through):
    # The discrete model's bounds, and the straight-through relaxed ones (a hard
    # code of a Concrete draw is a categorical draw, so the marginal is the
    # discrete model's), bound log p(x), which 2 latents of 3 classes enumerate.
    vae = tiny(straight_through=straight_through)
    x = torch.rand(40, 16).round()
    exact = float(exact_log_likelihood(vae, x).mean())
    torch.manual_seed(1)
    with vae.as_discrete():
        discrete = evaluate_bounds(vae, x, 2000)
    # (up to the Monte Carlo error of 2000 draws a bound of the mean of 40 images)
    assert discrete["elbo"] < discrete["iwae"] <= exact + 0.01
    assert discrete["iwae"] == pytest.approx(exact, abs=0.01)  # q covers 9 codes
    relaxed = evaluate_bounds(vae, x, 2000)
    assert relaxed["elbo"] < relaxed["iwae"]
    if straight_through:
        assert relaxed["iwae"] <= exact + 0.02
        assert relaxed["iwae"] == pytest.approx(exact, abs=0.1)


def test_the_temperature_anneals_by_step_or_epoch_to_its_floor():
    config = CatVAEConfig(temperature=2.0, min_temperature=0.5, anneal_rate=0.1)
    assert temperature_at(config, 0, 10) == 2.0
    assert temperature_at(config, 3, 10) == pytest.approx(2.0 * math.exp(-0.3))
    assert temperature_at(config, 100, 10) == 0.5
    per_epoch = CatVAEConfig(temperature=2.0, anneal_rate=0.1, anneal_per="epoch")
    assert temperature_at(per_epoch, 19, 10) == pytest.approx(2.0 * math.exp(-0.1))
    # Training sets it before each step: the last of 2 epochs of 2 steps is step 3,
    # in epoch 1.
    for anneal_per, t in (("step", 3), ("epoch", 1)):
        fit = fit_vae("digits", epochs=2, batch_size=32, train_images=64,
                      test_images=8, latent_dim=2, num_classes=3, hidden_dims=(8,),
                      temperature=2.0, anneal_rate=0.1, anneal_per=anneal_per,
                      fit_class=CatVAEFit, device="cpu", progress=False)  # fmt: skip
        assert fit.vae.temperature == pytest.approx(2.0 * math.exp(-0.1 * t))
        prior, posterior = fit.vae.codes  # one temperature, in model and guide
        assert float(prior.temperature) == float(posterior.temperature)


@pytest.mark.parametrize("straight_through", [False, True])
def test_straight_through_decodes_hard_codes_and_still_trains_the_encoder(
    straight_through,
):
    vae, x = tiny(straight_through=straight_through), torch.rand(5, 16).round()
    guide = poutine.trace(vae.guide).get_trace(x)
    z = guide.nodes["z"]["value"]
    assert z.shape == (5, 2, 3)
    assert bool(((z == 0) | (z == 1)).all()) == straight_through
    model = poutine.trace(poutine.replay(vae.model, trace=guide)).get_trace(x)
    (model.log_prob_sum() - guide.log_prob_sum()).backward()
    assert vae.guide.encoder.net[0].weight.grad.abs().sum() > 0


def test_a_checkpoint_keeps_the_networks_and_the_temperature_only():
    # The uniform prior's probabilities are rebuilt from the config, not saved.
    state = tiny().state_dict()
    assert {k for k in state if "net." not in k} == {
        "model.anchor", "model.prior.temperature", "guide.anchor",
        "guide.posterior.temperature",
    }  # fmt: skip
    assert any(k.startswith("model.decoder.net.") for k in state)
    assert any(k.startswith("guide.encoder.net.") for k in state)


def test_a_fit_reports_the_discrete_models_bounds_and_the_relaxed_beside_them():
    fit = fit_vae("digits", epochs=1, batch_size=32, train_images=64, test_images=16,
                  latent_dim=2, num_classes=3, hidden_dims=(8,), fit_class=CatVAEFit,
                  device="cpu", progress=False)  # fmt: skip
    assert fit.settings.elbo == "meanfield"  # the categoricals' KL, by default
    seed = fit.settings.seed
    discrete = fit.evaluate(1, seed=seed)["elbo"]
    # The held-out ELBO of each epoch is the discrete model's, from the same draws.
    assert fit.history.test_elbo[-1] == discrete
    with fit.vae.as_discrete():
        assert fit.evaluate(1, seed=seed, reported=False)["elbo"] == discrete
    relaxed = fit.evaluate(5, seed=seed, reported=False)
    assert relaxed["elbo"] != discrete
    # evaluate's entries beside the discrete bounds are the relaxed model's
    entries = CatVAESpec.evaluation_entries(fit, VAEEvaluation(iwae_samples=5))
    assert entries["test_relaxed_elbo"] == relaxed["elbo"]
    assert entries["test_relaxed_iwae"] == relaxed["iwae"]
    assert entries["temperature"] == fit.vae.temperature


def test_the_model_and_the_guide_say_what_they_lack():
    vae = tiny()
    with pytest.raises(UsageError, match="the catvae model needs images x"):
        vae.model()
    with pytest.raises(UsageError, match="the catvae guide encodes images"):
        vae.guide(None)
    assert vae.model(None, 3).shape == (3, 16)  # generated images


def test_the_traversal_decodes_the_code_with_one_latent_set_to_each_class():
    vae, x = tiny(), torch.rand(16).round()
    images = latent_traversal(vae, x)
    assert images.shape == (2 * 3, 16)
    with torch.no_grad():
        code = F.one_hot(vae.guide.encoder(x[None])[0].argmax(-1), 3).float()
        code[1] = F.one_hot(torch.tensor(2), 3)  # latent 2 set to class 3
        expected = torch.sigmoid(vae.model.decoder(code))
    torch.testing.assert_close(images[1 * 3 + 2], expected)


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(num_classes=1), "num_classes must be an integer from 2 to"),
        (dict(latent_dim=0), "latent_dim must be a positive integer"),
        (dict(temperature=0.0), "temperature must be a positive"),
        (dict(min_temperature=2.0), "min_temperature 2.0 is above the starting"),
        (dict(anneal_rate=-1.0), "anneal_rate must be"),
        (dict(anneal_per="batch"), "unknown anneal_per 'batch'"),
    ],
)
def test_bad_settings_are_refused_by_name(settings, message):
    for config_class in (CatVAEConfig, CatVAERunConfig):
        with pytest.raises(UsageError, match=message):
            config_class(**settings)


def test_the_vaes_own_settings_are_refused_on_the_command_line(capsys, tmp_path):
    out = tmp_path / "run"
    main(["fit", "catvae", "--help"])
    assert "--guide" not in capsys.readouterr().out  # dropped: no option
    for flag, value in [("--mixture-components", "3"), ("--base-depth", "8")]:
        status = main(["fit", "catvae", "--dataset", "digits", flag, value,
                       "--out", str(out)])  # fmt: skip
        assert status == 2 and not out.exists()
        assert f"unrecognized arguments: {flag} {value}" in capsys.readouterr().err
    # and from Python, by name
    with pytest.raises(UsageError, match="flows is not a setting of CatVAERunConfig"):
        CatVAERunConfig(flows=3)


def test_the_networks_take_the_configs_activation_and_any_batch_shape():
    vae = tiny(activation="relu")
    for net in (vae.guide.encoder.net, vae.model.decoder.net):
        kinds = {type(layer) for layer in net if not isinstance(layer, torch.nn.Linear)}
        assert kinds == {torch.nn.ReLU}
    x = torch.rand(2, 3, 16).round()  # (samples, batch, pixels)
    assert vae.guide.encoder(x).shape == (2, 3, 2, 3)  # (..., latents, classes)
    assert vae.model.decoder(torch.rand(2, 3, 2, 3)).shape == (2, 3, 16)
