"""What `fit_ppca` records about a fit: its method and ELBO, the simulated truth, the
seconds it took, and where its tensors live after a resume."""

from __future__ import annotations

import logging
import time

import pytest
import torch

from ppl_models.device import resolve_device
from ppl_models.inference.elbo import DeviceTrace_ELBO, DeviceTraceMeanField_ELBO
from ppl_models.io.checkpoint import load_checkpoint
from ppl_models.models.ppca import PPCASpec, fit_ppca
from ppl_models.models.ppca.config import PPCARunConfig
from tests.conftest import TEST_DEVICE

DEVICE = resolve_device(TEST_DEVICE)


def test_a_fit_records_its_method_the_truth_and_the_seconds_it_took():
    start = time.perf_counter()
    fit = fit_ppca(
        inference="meanfield", num_datapoints=50, steps=5, device=DEVICE, progress=False
    )
    wall = time.perf_counter() - start
    assert fit.inference == "meanfield"
    assert fit.w_true is not None and fit.w_true.shape == fit.w.shape == (2, 1)
    assert 0 < fit.fit_seconds <= wall


@pytest.mark.parametrize(
    "inference, elbo",
    [("map", DeviceTrace_ELBO), ("meanfield", DeviceTraceMeanField_ELBO)],
)
def test_each_method_is_fitted_with_its_documented_elbo(monkeypatch, inference, elbo):
    from ppl_models.fullbatch import train as fullbatch_train

    used = []
    make_objective = fullbatch_train.make_objective

    def spy(model, guide, loss, *args, **kwargs):
        used.append(type(loss))
        return make_objective(model, guide, loss, *args, **kwargs)

    monkeypatch.setattr(fullbatch_train, "make_objective", spy)
    fit_ppca(inference=inference, num_datapoints=20, steps=1, device="cpu")
    assert used == [elbo]


def test_a_checkpointed_fit_reports_the_seconds_its_checkpoint_holds(tmp_path):
    # The summary and the checkpoint a resume starts from then agree.
    path = tmp_path / "checkpoint.pt"
    start = time.perf_counter()
    fit = fit_ppca(
        num_datapoints=50, steps=6, checkpoint_path=path, checkpoint_every=4,
        device="cpu", progress=False,
    )  # fmt: skip
    wall = time.perf_counter() - start
    assert isinstance(fit.fit_seconds, float) and 0 < fit.fit_seconds <= wall
    assert fit.fit_seconds == load_checkpoint(path, "ppca")["fit_seconds"]


def test_a_resumed_fit_keeps_the_simulated_truth_on_the_fits_device(tmp_path):
    path = tmp_path / "checkpoint.pt"
    first = fit_ppca(
        num_datapoints=50, steps=4, checkpoint_path=path, device=DEVICE, progress=False
    )
    # Loaded on the CPU, as a run on another machine would load it.
    record = load_checkpoint(path, "ppca")
    resumed = fit_ppca(steps=8, resume_from=record, device=DEVICE, progress=False)
    assert resumed.w_true is not None
    assert torch.equal(resumed.w_true.cpu(), first.w_true.cpu())
    # It went on from the checkpoint's data (a fresh fit would simulate 5000 points).
    assert torch.equal(resumed.x.cpu(), first.x.cpu())
    assert torch.equal(resumed.losses[:4].cpu(), first.losses.cpu())
    for tensor in (resumed.x, resumed.w_true, resumed.losses, resumed.w):
        assert tensor.device == DEVICE
    assert resumed.losses.shape == (8,)


def test_the_defaults_are_the_lectures_experiment_and_those_of_the_command_line():
    # A step on the default data: 5000 points, on the default device.
    fit = fit_ppca(steps=1, progress=False)
    # Simulated data: the lecture's known noise scale and no mean, recorded as such.
    lecture = PPCARunConfig(steps=1, checkpoint_every=1, noise_scale=0.5, mean="zero")
    assert fit.config == lecture
    assert (
        PPCASpec.resolve_config(PPCARunConfig(steps=1, checkpoint_every=1)) == lecture
    )
    assert fit.x.shape == (2, 5000) and fit.device == resolve_device("auto")
    # And the default length, on a few points.
    assert fit_ppca(num_datapoints=10, progress=False).losses.shape == (1000,)
    assert PPCARunConfig().steps == 1000


def test_simulated_data_have_the_noise_scale_asked_for():
    # x = w z + noise, D=2, K=1: the covariance's smaller eigenvalue is sigma^2.
    for sigma in (0.05, 0.5):
        x = fit_ppca(noise_scale=sigma, num_datapoints=4000, steps=1,
                     device="cpu", progress=False).x  # fmt: skip
        smallest = torch.linalg.eigvalsh(x @ x.T / x.shape[1])[0].item()
        assert smallest == pytest.approx(sigma**2, rel=0.1)


def test_the_criticism_figures_are_titled_with_the_method(monkeypatch, tmp_path):
    from ppl_models.models.ppca import criticize as ppca_criticize

    titles = []
    plot_ppc, plot_replay = ppca_criticize.plot_ppc, ppca_criticize.plot_replay_scatter

    def ppc_spy(checks, title=None):
        titles.append(title)
        return plot_ppc(checks, title=title)

    def replay_spy(observed, generated, title=None):
        titles.append((title, list(generated)))
        return plot_replay(observed, generated, title=title)

    monkeypatch.setattr(ppca_criticize, "plot_ppc", ppc_spy)
    monkeypatch.setattr(ppca_criticize, "plot_replay_scatter", replay_spy)
    fit = fit_ppca(inference="meanfield", num_datapoints=50, steps=2, device="cpu",
                   progress=False)  # fmt: skip
    fit.criticize(tmp_path)
    assert titles == [
        ("PPCA, meanfield: observed vs replayed latents", ["replayed (meanfield)"]),
        "PPCA, meanfield: posterior predictive checks",
    ]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["ppc.png", "replay.png"]


def test_the_specs_fit_without_a_config_takes_the_defaults(monkeypatch):
    from ppl_models.fullbatch import spec as spec_module

    monkeypatch.setattr(spec_module, "train", lambda spec, config, device, **o: config)
    expected = PPCASpec.resolve_config(PPCARunConfig())
    assert PPCASpec.fit(device="cpu") == expected


@pytest.mark.parametrize("inference", ["meanfield", "map"])
def test_against_nuts_holds_the_fit_against_the_draws(inference, monkeypatch, tmp_path):
    # NUTS itself is checked in test_ppca_real_data.py; here a stand-in posterior
    # (draws about the fit's w, sd 0.1) checks what the criticism makes of it.
    from ppl_models.models.ppca import criticize as ppca_criticize
    from ppl_models.models.ppca import nuts

    fit = fit_ppca(inference=inference, num_datapoints=50, steps=100, device="cpu",
                   progress=False)  # fmt: skip
    fit.config.against_nuts = True
    fit.config.nuts_samples, fit.config.nuts_warmup = 400, 7
    sampled, plotted = [], []

    def sample_w(x, model, reference, *, num_samples, warmup_steps):
        sampled.append((x, model, reference, num_samples, warmup_steps))
        noise = torch.randn(num_samples, *reference.shape, generator=torch.Generator())
        assert reference.norm() > 1.0  # far from 0: no draw is aligned by a flip
        return nuts.NutsPosterior(reference.detach() + 0.1 * noise, 1.01, 300.0)

    def plot_spy(draws, names, **options):
        plotted.append((draws, names, options))
        return plot_against_draws(draws, names, **options)

    plot_against_draws = ppca_criticize.plot_against_draws
    monkeypatch.setattr(nuts, "sample_w", sample_w)
    monkeypatch.setattr(ppca_criticize, "plot_against_draws", plot_spy)
    numbers = fit.criticize(tmp_path)["vs_nuts"]
    [(x, model, reference, num_samples, warmup_steps)] = sampled
    assert x is fit.x and model is fit.model and torch.equal(reference, fit.w)
    assert (num_samples, warmup_steps) == (400, 7)
    assert (tmp_path / "vs_nuts.png").stat().st_size > 0
    assert numbers["nuts_samples"] == 400 and numbers["nuts_r_hat_max"] == 1.01
    assert numbers["median_abs_mean_diff_in_sds"] < 0.2  # the draws sit about w
    [(draws, names, options)] = plotted
    assert draws.shape == (400, 2) and names == ["$w_{11}$", "$w_{21}$"]
    assert options["title"] == f"PPCA, {inference}: w against NUTS (z integrated out)"
    assert options["draws_label"] == "NUTS draws"
    closed = options["points"]["closed form (ML)"]
    assert torch.allclose(closed.abs(), fit.w_closed_form.flatten().abs())
    if inference == "meanfield":  # a distribution: its sds against NUTS's
        assert numbers["median_sd_ratio"] == pytest.approx(
            float((fit.w_scale / 0.1).flatten().quantile(0.5)), rel=0.1
        )
        mean, sd = options["normals"]["mean-field q"]
        assert torch.equal(mean, fit.w.flatten()) and torch.equal(
            sd, fit.w_scale.flatten()
        )
        assert list(options["points"]) == ["closed form (ML)"]
    else:  # a point
        assert "sd_ratio" not in numbers and not options["normals"]
        assert list(options["points"]) == ["map point", "closed form (ML)"]
        assert torch.equal(options["points"]["map point"], fit.w.flatten())


LOSS_NOTE = "the loss at each step: it should fall, then level off"
PPC_NOTE = (
    "each test statistic of the data (red) among the same statistic of replicated "
    "data sets; p near 0 or 1 flags a misfit"
)
REPLAY_NOTE = (
    "the data beside data generated from the fitted w{}: the two clouds should overlap"
)
NUTS_NOTE = "the fit's w against NUTS draws of its posterior, with the closed form"
MAP_PPC_NOTE = (
    "; joint MAP sits near p = 1 on the variance along the axis: its codes z absorb "
    "the noise, and replicates add it again"
)


@pytest.mark.parametrize("inference", ["map", "collapsed", "meanfield"])
def test_the_demo_says_what_each_figure_shows(inference):
    notes = PPCASpec.figure_notes(PPCARunConfig(inference=inference))
    assert notes == {
        "loss.png": LOSS_NOTE,
        "ppc.png": PPC_NOTE + (MAP_PPC_NOTE if inference == "map" else ""),
        "replay.png": REPLAY_NOTE.format(
            ", z integrated out" if inference == "collapsed" else " and z"
        ),
        "vs_nuts.png": NUTS_NOTE,
    }  # fmt: skip


@pytest.mark.parametrize("mean", ["auto", "learned", "zero"])
def test_a_users_data_is_fitted_with_the_mean_asked_for(mean):
    # "auto" learns a mean on the user's data (the lecture's zero mean is for its
    # simulated data); "zero" keeps the lecture's model on them.
    x = torch.randn(100, 2) + 5.0
    fit = fit_ppca(x, mean=mean, steps=2, device="cpu", progress=False)
    assert fit.config.mean == ("learned" if mean == "auto" else mean)
    assert bool(fit.mu.abs().max() > 1.0) == (mean != "zero")


def test_a_fit_without_progress_is_silent(caplog):
    # Without a terminal, progress=None logs the loss now and then; False, nothing.
    for progress, logs in ((None, True), (False, False)):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            fit_ppca(num_datapoints=50, steps=20, device="cpu", progress=progress)
        lines = [r.getMessage() for r in caplog.records]
        assert any(line.startswith("ppca map: step 20/20") for line in lines) == logs
