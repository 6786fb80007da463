"""Logistic regression: the model's likelihood, the minibatch ELBO's scale, the
data's checks and split, and the criticism against NUTS on a tiny data file.

The registry tests (tests/models/test_registered_*.py) run it too, as every model.
"""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO

from ppl_models.cli import main
from ppl_models.criticism.classification import (
    held_out_checks,
    predictive_log_probs,
)
from ppl_models.data import labelled
from ppl_models.errors import DataError, UsageError
from ppl_models.fullbatch.nuts import against_nuts
from ppl_models.inference.elbo import DeviceTraceMeanField_ELBO
from ppl_models.models.logreg import LogReg, LogRegConfig, LogRegSpec, make_guide


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory):
    """60 points, 2 features, labels from a noisy linear rule; the label last."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    y = (x[:, 0] + 0.5 * x[:, 1] + 0.5 * rng.normal(size=60) > 0).astype(int)
    path = tmp_path_factory.mktemp("logreg") / "tiny.csv"
    np.savetxt(path, np.c_[x, y], delimiter=",")
    return path


def test_two_classes_are_logistic_regression_and_more_are_softmax():
    x, w, b = torch.randn(5, 3), torch.randn(3, 1), torch.randn(1)
    logits = LogReg(2, 1.0).logits(x, w, b)
    p_one = torch.softmax(logits, dim=-1)[:, 1]
    torch.testing.assert_close(p_one, torch.sigmoid(x @ w[:, 0] + b))
    w3, b3 = torch.randn(3, 4), torch.randn(4)
    torch.testing.assert_close(LogReg(4, 1.0).logits(x, w3, b3), x @ w3 + b3)
    # Batched draws (S, D, C) give (S, N, K).
    assert LogReg(2, 1.0).logits(x, w.expand(7, 3, 1), b.expand(7, 1)).shape == (
        7,
        5,
        2,
    )


def test_the_minibatch_elbo_is_an_unbiased_estimate_of_the_full_one():
    # With a fixed point-mass guide, the loss averaged over every minibatch of 2 of
    # 6 points (the plate draws each alike) is the full-batch loss: the plate
    # scales the minibatch's log likelihood by N / B.
    pyro.set_rng_seed(0)
    x, y = torch.randn(6, 2), torch.tensor([0, 1, 2, 2, 1, 0])
    full, sub = LogReg(3, 1.0), LogReg(3, 1.0, batch_size=2)
    guide = make_guide(full, "map")
    guide(x, y)  # its parameters, drawn once and shared by every loss
    elbo = Trace_ELBO()
    with torch.no_grad():
        full_loss = elbo.loss(full, guide, x, y)
        losses = [
            elbo.loss(
                poutine.condition(sub, data={"data": torch.tensor(i)}), guide, x, y
            )
            for i in combinations(range(6), 2)
        ]
        node = poutine.trace(sub).get_trace(x, y).nodes["y"]
    assert np.mean(losses) == pytest.approx(full_loss, rel=1e-6)
    assert len(set(losses)) > 1  # the minibatches differ
    assert node["value"].shape == (2,) and node["scale"] == pytest.approx(3.0)


@pytest.mark.parametrize(
    "rows,message",
    [
        ([[0.0, 0.5], [1.0, 1.0], [2.0, 0.0]], "must be integers 0..K-1, got 0.5"),
        ([[0.0, -1], [1.0, 1.0], [2.0, 0.0]], "must be integers 0..K-1, got -1"),
        ([[0.0, 0], [1.0, 2], [2.0, 0]], "each with an example: got 3 class(es), none"),
        ([[0.0, 0], [1.0, 0], [2.0, 0]], "must name K >= 2 classes"),
        ([[np.nan, 0], [1.0, 1], [2.0, 0]], "NaN"),
        ([[0.0], [1.0], [2.0]], "no feature column is left"),
    ],
)
def test_bad_labels_and_features_are_refused(tmp_path, rows, message):
    path = tmp_path / "bad.csv"
    np.savetxt(path, np.array(rows), delimiter=",")
    with pytest.raises(DataError, match=None) as error:
        labelled.load(None, path, None)
    assert message in str(error.value)


def test_the_split_is_seeded_and_standardized_by_the_train_points(tiny_csv):
    x, y = labelled.load(None, tiny_csv, None)
    torch.manual_seed(1)
    x_train, y_train, x_test, y_test, mean, sd = labelled.split(x, y, 0.25)
    torch.manual_seed(1)
    assert torch.equal(labelled.split(x, y, 0.25)[2], x_test)
    assert (len(x_train), len(x_test)) == (45, 15)
    torch.testing.assert_close(x_train.mean(0), torch.zeros(2), atol=1e-6, rtol=0)
    torch.testing.assert_close(x_train.std(0), torch.ones(2))
    raw = torch.cat([x_train, x_test]) * sd + mean  # the same points, as read
    torch.testing.assert_close(raw.sum(0), x.sum(0), rtol=1e-5, atol=1e-4)
    with pytest.raises(UsageError, match="leaves 0 held out"):
        labelled.split(x, y, 0.001)


def test_a_bad_label_column_is_one_line_on_the_command_line(tiny_csv, capsys, tmp_path):
    argv = ["fit", "logreg", "--data", str(tiny_csv), "--label-column", "5"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "label column 5 is not among the 3 columns" in err and "\n" not in err


@pytest.fixture(scope="module")
def tiny_fits(tiny_csv, tmp_path_factory):
    """A NUTS fit, a minibatch mean-field fit and a MAP fit of the tiny file,
    criticised."""
    out = {}
    for inference, batch in (("nuts", None), ("meanfield", 16), ("map", None)):
        config = LogRegConfig(
            inference=inference,
            data=tiny_csv,
            steps=150,
            lr=0.05,
            batch_size=batch,
            nuts_samples=40,
            nuts_warmup=40,
            ppc_samples=10,
        )
        fit = LogRegSpec.fit(config, "cpu", progress=False)
        folder = tmp_path_factory.mktemp(inference)
        out[inference] = fit, fit.criticize(folder), folder
    return out


def test_nuts_is_an_inference_method_with_its_own_diagnostics(tiny_fits):
    fit, numbers, folder = tiny_fits["nuts"]
    assert fit.config.num_classes == 2 and fit.config.dataset is None
    assert "vs_nuts" not in numbers and numbers["nuts"]["nuts_r_hat_max"] < 1.3
    assert numbers["nuts"]["nuts_n_eff_min"] > 1
    assert "ppc" in numbers  # the predictive checks too
    assert numbers["heldout_accuracy"] >= 0.7
    assert (folder / "calibration.png").is_file()


def test_a_minibatch_fit_steps_on_minibatches_and_reports_on_all_points(tiny_fits):
    fit = tiny_fits["meanfield"][0]
    x, y = fit.data
    assert poutine.trace(fit.model).get_trace(x, y).nodes["y"]["value"].shape == (16,)
    assert isinstance(LogRegSpec.elbo(fit.config), DeviceTraceMeanField_ELBO)
    summary = fit.summary()
    shape = (summary["num_train"], summary["num_test"], summary["num_features"])
    assert shape == (48, 12, 2)  # 60 points, a fifth held out
    assert set(fit.extras) == {"x_test", "y_test", "feature_mean", "feature_sd"}
    # The pointwise log likelihood (for LOO) covers every train point.
    w, b = torch.randn(2, 1), torch.randn(1)
    got = LogRegSpec.log_likelihood(fit)({"w": w, "b": b})
    expected = torch.distributions.Categorical(logits=fit.model.logits(x, w, b))
    torch.testing.assert_close(got, expected.log_prob(y))
    share = LogRegSpec.statistics(fit.config)["share of class 1"]
    assert float(share(torch.tensor([0, 1, 1, 1]))) == 0.75


def test_a_minibatch_vi_fit_is_held_against_nuts(tiny_fits):
    fit, numbers, folder = tiny_fits["meanfield"]
    vs = numbers["vs_nuts"]
    assert len(vs["sd_ratio"]) == len(vs["mean_diff_in_sds"]) == 3  # w1, w2, b
    assert vs["min_sd_ratio"] <= vs["median_sd_ratio"] <= vs["max_sd_ratio"]
    assert 0.5 < vs["median_sd_ratio"] < 2 and vs["median_abs_mean_diff_in_sds"] < 1
    assert vs["max_abs_mean_diff_in_sds"] == max(map(abs, vs["mean_diff_in_sds"]))
    assert vs["nuts_r_hat_max"] < 1.3 and vs["nuts_n_eff_min"] > 1
    # Both predict the held-out labels about equally well.
    nuts = tiny_fits["nuts"][1]
    assert abs(numbers["heldout_log_density"] - nuts["heldout_log_density"]) < 0.1
    assert (folder / "vs_nuts.png").is_file() and (folder / "ppc.png").is_file()
    json.dumps(numbers, allow_nan=False)


def test_the_posterior_predictive_averages_probabilities_over_draws_in_chunks():
    draws = {"w": torch.randn(250, 3, 4), "b": torch.randn(250, 4)}
    x = torch.randn(6, 3)
    model = LogReg(4, 1.0)

    def log_probs(d):
        return torch.log_softmax(model.logits(x, d["w"], d["b"]), -1)

    expected = log_probs(draws).exp().mean(0).log()
    for chunk in (7, 100, 250):
        got = predictive_log_probs(log_probs, draws, chunk=chunk)
        torch.testing.assert_close(got, expected)


def test_a_map_fit_is_held_against_nuts_by_its_means_alone(tiny_fits):
    numbers = tiny_fits["map"][1]
    vs = numbers["vs_nuts"]
    assert "sd_ratio_note" in vs and "median_sd_ratio" not in vs
    assert vs["median_abs_mean_diff_in_sds"] < 1 and "ppc" in numbers


def test_held_out_numbers_and_a_point_against_draws():
    log_p = torch.log(torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]]))
    numbers, bins = held_out_checks(log_p, torch.tensor([0, 1, 1, 0]))
    assert numbers["heldout_accuracy"] == 0.75
    expected = torch.log(torch.tensor([0.9, 0.8, 0.4, 0.7])).mean()
    assert numbers["heldout_log_density"] == pytest.approx(float(expected))
    # one point a bin: |0.9 - 1| + |0.8 - 1| + |0.6 - 0| + |0.7 - 1|, over 4
    assert numbers["heldout_calibration_error"] == pytest.approx(1.2 / 4)
    assert bins.count.tolist() == [0] * 6 + [1] * 4
    torch.testing.assert_close(bins.accuracy[6:], torch.tensor([0.0, 1.0, 1.0, 1.0]))
    torch.testing.assert_close(bins.confidence[6:], torch.tensor([0.6, 0.7, 0.8, 0.9]))
    nuts = {"w": torch.randn(400, 2, 1) * 2 + 1, "b": torch.randn(400, 1)}
    point = {"w": torch.ones(1, 2, 1), "b": torch.full((1, 1), 0.5)}
    vs, _, ratio = against_nuts(point, nuts, point=True)
    assert "median_sd_ratio" not in vs and "sd_ratio_note" in vs and ratio is None
    flat = torch.cat([nuts["w"].flatten(1), nuts["b"]], 1)
    expected = (torch.tensor([1.0, 1.0, 0.5]) - flat.mean(0)) / flat.std(0)
    torch.testing.assert_close(torch.tensor(vs["mean_diff_in_sds"]), expected)


def test_a_distribution_against_draws_gives_each_coefficients_sd_ratio():
    # NUTS's draws, and a fit's with the second coefficient's spread halved and the
    # third's doubled: ratios 1, 0.5 and 2, of which one is within 0.8 to 1.25.
    torch.manual_seed(0)
    nuts = {"w": torch.randn(4000, 2, 1), "b": torch.randn(4000, 1) + 3}
    fit = {"w": nuts["w"] * torch.tensor([1.0, 0.5])[:, None], "b": nuts["b"] * 2}
    vs, diff, ratio = against_nuts(fit, nuts, point=False)
    torch.testing.assert_close(ratio, torch.tensor([1.0, 0.5, 2.0]))
    assert (vs["min_sd_ratio"], vs["max_sd_ratio"]) == pytest.approx((0.5, 2.0))
    assert vs["median_sd_ratio"] == pytest.approx(1.0)
    assert vs["share_sd_ratio_within_0.8_1.25"] == pytest.approx(1 / 3)
    assert vs["sd_ratio"] == pytest.approx([1.0, 0.5, 2.0])
    # the means: the third's moved by 3 (doubled around 0), in NUTS sds of 1
    assert diff.tolist() == pytest.approx([0.0, 0.0, 3.0], abs=0.1)
    assert vs["max_abs_mean_diff_in_sds"] == pytest.approx(3.0, abs=0.1)
