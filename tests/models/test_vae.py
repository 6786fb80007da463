"""The VAE: configuration checks, shapes across batch/latent/particle sizes, the
bounds, training and exact resumption on the offline digits, and the MNIST
acceptance numbers where MNIST is present."""

from __future__ import annotations

import pytest
import torch
from pyro import poutine

from ppl_models.data import load_images
from ppl_models.errors import UsageError
from ppl_models.inference import make_objective, svi_step
from ppl_models.io.checkpoint import load_checkpoint
from ppl_models.models.vae import (
    VAE,
    TrainSettings,
    VAEConfig,
    fit_vae,
    make_elbo,
    train_vae,
)
from ppl_models.models.vae.evaluate import (
    evaluate_bounds,
    log_weight_parts,
    log_weights,
)
from ppl_models.models.vae.priors import MixturePrior
from ppl_models.models.vae.state import checkpoint_payload
from tests.conftest import assert_same_parameters


def small_vae(**overrides) -> VAE:
    config = dict(image_shape=(8, 8), latent_dim=3, hidden_dims=(16,))
    return VAE(VAEConfig(**{**config, **overrides}))


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"latent_dim": 0}, "latent_dim"),
        ({"hidden_dims": (0,)}, "hidden_dim"),
        ({"architecture": "rnn"}, "architecture"),
        ({"prior": "laplace"}, "prior"),
        ({"likelihood": "poisson"}, "likelihood"),
        ({"mixture_components": 0}, "mixture_components"),
    ],
)
def test_bad_configuration_names_the_argument(overrides, message):
    with pytest.raises(UsageError, match=message):
        VAEConfig(image_shape=(8, 8), **overrides)


def test_mixture_prior_with_analytic_kl_is_refused():
    config = VAEConfig(image_shape=(8, 8), prior="mixture")
    with pytest.raises(UsageError, match="mixture prior"):
        make_elbo("meanfield", config)
    make_elbo("trace", config)


@pytest.mark.parametrize("settings,message", [
    ({"batch_size": 0}, "batch_size"),
    ({"epochs": 0}, "epochs"),
    ({"epochs": -3}, "epochs"),
    ({"lr": 0.0}, "lr"),
    ({"num_particles": 0}, "num_particles"),
])  # fmt: skip
def test_bad_training_settings_name_the_argument(settings, message):
    with pytest.raises(UsageError, match=message):
        TrainSettings(**settings)


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("latent_dim", [1, 4])
@pytest.mark.parametrize("particles", [1, 3])
@pytest.mark.parametrize("architecture", ["mlp", "conv"])
def test_model_and_guide_shapes_agree(batch, latent_dim, particles, architecture):
    vae = small_vae(latent_dim=latent_dim, architecture=architecture, base_depth=4)
    x = torch.rand(batch, 64).round()
    guide_trace = poutine.trace(vae.guide).get_trace(x)
    model_trace = poutine.trace(poutine.replay(vae.model, trace=guide_trace)).get_trace(
        x
    )
    assert guide_trace.nodes["z"]["value"].shape == (batch, latent_dim)
    assert model_trace.nodes["z"]["value"].shape == (batch, latent_dim)
    assert model_trace.nodes["x"]["fn"].event_shape == (64,)
    elbo = make_elbo("trace", vae.config, num_particles=particles)
    objective = make_objective(vae.model, vae.guide, elbo, x)
    optimizer = torch.optim.Adam(objective.parameters(), lr=1e-3)
    loss = svi_step(objective, optimizer, x)
    assert loss.shape == () and torch.isfinite(loss)
    log_w = log_weights(vae, x, num_samples=particles)
    assert log_w.shape == (particles, batch)


def test_log_weights_are_log_joint_minus_log_q_of_the_same_draws():
    vae = small_vae()
    x = torch.rand(5, 64).round()
    torch.manual_seed(3)
    parts = log_weight_parts(vae, x, 4)
    torch.manual_seed(3)
    log_w = log_weights(vae, x, 4)
    expected = parts["log_lik"] + parts["log_prior"] - parts["log_q"]
    torch.testing.assert_close(log_w, expected)
    assert log_weights(vae, x).shape == (1, 5)  # one draw by default


def test_iwae_bound_is_at_least_the_elbo_and_equals_it_for_one_sample():
    torch.manual_seed(0)
    vae = small_vae()
    x = torch.rand(40, 64).round()
    bounds = evaluate_bounds(vae, x, num_samples=50)
    assert bounds["iwae"] >= bounds["elbo"]
    one = evaluate_bounds(vae, x, num_samples=1)
    assert one["iwae"] == pytest.approx(one["elbo"])


def test_the_elbo_splits_into_distortion_and_rate():
    torch.manual_seed(0)
    vae = small_vae()
    x = torch.rand(40, 64).round()
    bounds = evaluate_bounds(vae, x, num_samples=30)
    assert bounds["elbo"] == pytest.approx(-(bounds["distortion"] + bounds["rate"]))
    assert bounds["distortion"] > 0  # -log p(x | z) of binary pixels
    # The rate estimates KL(q(z|x) || N(0, I)); with 30 draws per image it is
    # close to the closed form.
    with torch.no_grad():
        loc, scale = vae.encode(x)
    kl = (0.5 * (loc**2 + scale**2 - 1) - scale.log()).sum(-1).mean()
    assert bounds["rate"] == pytest.approx(float(kl), rel=0.05, abs=0.05)


def test_chunked_evaluation_covers_every_image_and_sample(monkeypatch):
    # With log-weights that depend on the image only, both bounds equal the mean of
    # -sum(x); any image or sample lost or counted twice by the chunking shows.
    import ppl_models.models.vae.evaluate as evaluate

    def fake_parts(vae, x, num_samples=1):
        log_lik = (-x.sum(-1)).expand(num_samples, x.shape[0])
        zero = torch.zeros_like(log_lik)
        return {"log_lik": log_lik, "log_prior": zero, "log_q": zero}

    monkeypatch.setattr(evaluate, "log_weight_parts", fake_parts)
    x = torch.rand(30, 64)
    expected = float(-x.sum(-1).mean())
    for max_elements in (64 * 5, 64 * 7 * 3, 2**24):
        bounds = evaluate_bounds(None, x, num_samples=8, max_elements=max_elements)
        assert bounds["elbo"] == pytest.approx(expected, rel=1e-6)
        assert bounds["iwae"] == pytest.approx(expected, rel=1e-6)
        assert bounds["distortion"] == pytest.approx(-expected, rel=1e-6)
        assert bounds["rate"] == 0


def test_bounds_equal_a_hand_computation_from_fixed_log_weights(monkeypatch):
    # Log-weights that differ across samples and images, computed by hand in float64:
    # the IWAE bound is the log of the mean weight (not the largest log-weight, not
    # the mean log-weight), and chunking over images and samples must not change it.
    import ppl_models.models.vae.evaluate as evaluate

    num_images, num_samples = 6, 10
    k = torch.arange(num_samples, dtype=torch.float64).unsqueeze(-1)
    b = torch.arange(num_images, dtype=torch.float64)
    log_lik_table = -(k - 2.0 * b).square() / 4 - 60.0  # (K, B)
    log_q_table = 0.3 * k - 0.1 * b + 1.0
    log_prior_table = -0.2 * k * b - 2.0
    calls = {"samples": 0}

    def fixed_parts(vae, x, num_samples=1):
        # x carries the image index in its first pixel; samples are numbered by
        # how many have been drawn for this batch so far.
        index = x[:, 0].long()
        start = calls["samples"]
        calls["samples"] = (start + num_samples) % 10
        rows = slice(start, start + num_samples)
        return {
            "log_lik": log_lik_table[rows][:, index].float(),
            "log_prior": log_prior_table[rows][:, index].float(),
            "log_q": log_q_table[rows][:, index].float(),
        }

    monkeypatch.setattr(evaluate, "log_weight_parts", fixed_parts)
    log_w = log_lik_table + log_prior_table - log_q_table
    weights = log_w.exp()
    expected = {
        "elbo": float(log_w.mean(0).mean()),
        "iwae": float(weights.mean(0).log().mean()),
        "distortion": float(-log_lik_table.mean(0).mean()),
        "rate": float((log_q_table - log_prior_table).mean(0).mean()),
    }
    assert expected["iwae"] > expected["elbo"] + 1  # a case that tells them apart
    x = torch.zeros(num_images, 64)
    x[:, 0] = b.float()
    for max_elements in (64 * 3, 64 * 10, 64 * 25, 2**24):
        calls["samples"] = 0
        bounds = evaluate_bounds(None, x, num_samples, max_elements=max_elements)
        for key, value in expected.items():
            assert bounds[key] == pytest.approx(value, rel=1e-5), (key, max_elements)


@pytest.fixture(scope="module")
def digits(device):
    return load_images("digits", binarize="threshold", device=device)


def test_digits_trains_offline_and_the_elbo_improves(digits):
    torch.manual_seed(0)
    fit = fit_vae(
        "digits",
        binarize="threshold",
        epochs=8,
        batch_size=64,
        lr=3e-3,
        latent_dim=4,
        hidden_dims=(64,),
        device="cpu",
        progress=False,
    )
    history = fit.history
    assert history.epochs_done == 8
    assert history.test_elbo[-1] > history.test_elbo[0] + 1.0
    assert history.train_elbo[-1] > history.train_elbo[0]
    assert history.images_per_second > 0
    assert fit.sample(5).shape == (5, 64)
    assert fit.reconstruct(digits.test[:3]).shape == (3, 64)
    bounds = fit.evaluate(iwae_samples=20, num_images=100)
    assert bounds["iwae"] >= bounds["elbo"]


def test_images_per_second_counts_training_time_only(digits, monkeypatch):
    import time

    import ppl_models.models.vae.train as train

    def slow_evaluation(*args):
        time.sleep(0.5)
        return -1.0

    monkeypatch.setattr(train, "held_out_elbo", slow_evaluation)
    vae = VAE(VAEConfig(image_shape=(8, 8), latent_dim=2, hidden_dims=(16,)))
    start = time.perf_counter()
    history = train.train_vae(
        vae, digits.to("cpu"), train.TrainSettings(epochs=2), progress=False
    ).history
    wall = time.perf_counter() - start
    assert history.train_images == 2 * digits.train.shape[0]
    assert history.fit_seconds < wall - 1.0  # the two evaluations are left out
    assert history.images_per_second == pytest.approx(
        history.train_images / history.fit_seconds
    )


@pytest.mark.parametrize("variant", [
    {"prior": "mixture", "mixture_components": 4},
    {"elbo": "meanfield"},
    {"architecture": "conv", "base_depth": 8},
    {"likelihood": "continuous_bernoulli", "binarize": "none"},
    {"likelihood": "normal", "binarize": "none"},
])  # fmt: skip
def test_every_variant_trains_on_digits_without_nan(variant):
    kwargs = dict(binarize="dynamic", epochs=2, batch_size=100, lr=3e-3, latent_dim=4,
                  hidden_dims=(32,), device="cpu", progress=False)  # fmt: skip
    fit = fit_vae("digits", **{**kwargs, **variant})
    assert all(torch.isfinite(torch.tensor(fit.history.test_elbo)))
    assert all(torch.isfinite(torch.tensor(fit.history.train_elbo)))


def test_bernoulli_likelihood_refuses_grayscale_pixels():
    with pytest.raises(UsageError) as error:
        fit_vae(
            "digits", binarize="none", likelihood="bernoulli", epochs=1, device="cpu"
        )
    assert str(error.value) == (
        "a Bernoulli likelihood needs binarized pixels: use --binarize dynamic or "
        "threshold, or --likelihood continuous_bernoulli or normal for grayscale"
    )


def _train(epochs, digits, resume_from=None, checkpoint=None):
    torch.manual_seed(0)
    vae = small_vae(hidden_dims=(32,)).to(digits.device)
    settings = TrainSettings(epochs=epochs, batch_size=128, lr=3e-3, seed=0)
    history = train_vae(vae, digits, settings, resume_from=resume_from,
                        checkpoint_path=checkpoint, progress=False).history  # fmt: skip
    return vae, history


def test_resumed_training_matches_straight_training(digits, tmp_path):
    straight, straight_history = _train(2, digits)
    _train(1, digits, checkpoint=tmp_path / "ckpt.pt")
    record = load_checkpoint(tmp_path / "ckpt.pt", "vae", digits.device)
    assert record["epoch"] == 1
    resumed, resumed_history = _train(2, digits, resume_from=record)
    assert_same_parameters(straight.state_dict(), resumed.state_dict())
    if digits.device.type == "cpu":
        assert resumed_history.train_elbo == straight_history.train_elbo
        assert resumed_history.test_elbo == straight_history.test_elbo
    # A resume leaves the record as it was: a second one from it ends the same.
    again, _ = _train(2, digits, resume_from=record)
    assert_same_parameters(straight.state_dict(), again.state_dict())


def test_checkpoint_holds_everything_needed_to_resume(digits):
    vae, history = _train(1, digits)
    optimizer = torch.optim.Adam(vae.parameters())
    payload = checkpoint_payload(vae, optimizer, history)
    assert {"config", "vae_state", "optimizer_state", "epoch", "history", "rng"} <= set(
        payload
    )
    assert payload["config"]["image_shape"] == (8, 8)


def test_the_mixture_priors_components_are_its_distribution():
    torch.manual_seed(0)
    prior = MixturePrior(latent_dim=3, num_components=4)
    parts = prior.components()
    mixture = prior()
    torch.testing.assert_close(parts["weights"], mixture.mixture_distribution.probs)
    torch.testing.assert_close(parts["loc"], mixture.component_distribution.mean)
    torch.testing.assert_close(parts["scale"], mixture.component_distribution.stddev)
    assert parts["weights"].sum() == pytest.approx(1.0)
    assert not any(p.requires_grad for p in parts.values())
