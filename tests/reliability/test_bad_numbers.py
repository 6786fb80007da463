"""Numbers outside what the code can use: each of the adversarial trial's examples
is refused where it enters, in one line, with no file written (the trial found them
accepted until they crashed, some after a run directory had been written).
"""

from __future__ import annotations

import shutil

import pytest

from ppl_models.errors import UsageError
from ppl_models.models.ppca import fit_ppca
from tests.reliability.cli_runs import DIGITS, PPCA, assert_refused, run


@pytest.mark.parametrize(
    "argv, message",
    [
        ([*DIGITS, "--seed", "-1"], "seed must be an integer from 0 to 4294967295"),
        ([*DIGITS, "--seed", str(2**64)], "seed must be an integer from 0 to"),
        ([*PPCA, "--seed", "-1"], "seed must be an integer from 0 to 4294967295"),
        ([*PPCA, "--seed", str(2**64)], "seed must be an integer from 0 to"),
        ([*PPCA, "--ppc-samples", "0"], "ppc_samples must be a positive integer"),
        ([*PPCA, "--ppc-samples", "-1"], "ppc_samples must be a positive integer"),
        (
            [*DIGITS, "--batch-size", str(2**70)],
            "batch_size must be at most 2147483647",
        ),
        ([*PPCA, "--num-datapoints", "1"], "num_datapoints=1: at least 2 are needed"),
    ],
)
def test_a_number_the_fit_cannot_use_is_refused_before_any_file(
    tmp_path, argv, message
):
    out = tmp_path / "run"
    assert_refused(*run(*argv, "--out", out), message)
    assert not out.exists()


def test_fit_ppca_refuses_a_seed_that_is_not_an_integer():
    with pytest.raises(UsageError, match="seed must be an integer from 0 to"):
        fit_ppca(seed=1.5, steps=2, progress=False, device="cpu")


@pytest.mark.parametrize(
    "images, message",
    [
        ("0", "iwae_images must be a positive integer, got 0"),
        ("-5", "iwae_images must be a positive integer, got -5"),
        ("1000000", "iwae_images=1000000, but the test set has"),
    ],
)
def test_evaluate_refuses_a_number_of_images_and_records_nothing(
    runs, tmp_path, images, message
):
    # the count is neither used as something else nor recorded as it was given
    run_dir = shutil.copytree(runs["vae"], tmp_path / "vae")
    before = (run_dir / "summary.json").read_text()
    status, err = run("evaluate", run_dir, "--iwae-images", images, "--device", "cpu")
    assert_refused(status, err, message)
    assert (run_dir / "summary.json").read_text() == before
