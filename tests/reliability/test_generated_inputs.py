"""Generated bad input for every option of the command line and every argument of
the Python API: each is refused with exit status 2 (or the API's ``UsageError``),
one line, no traceback and no file written. Generated good data is fitted to
finite numbers, never to a silently wrong result.

Each test draws ``PPL_MODELS_GENERATED_EXAMPLES`` cases (default 60); the closing
run of the hardening work drew thousands::

    PPL_MODELS_GENERATED_EXAMPLES=1000 pytest tests/reliability/test_generated_inputs.py
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppl_models.errors import UsageError
from ppl_models.models.ppca import fit_ppca
from ppl_models.models.vae import fit_vae
from ppl_models.registry import get_model, list_models
from ppl_models.settings import Setting, settings_of
from ppl_models.validation import MAX_INT
from tests.reliability.cli_runs import assert_refused, run

EXAMPLES = int(os.environ.get("PPL_MODELS_GENERATED_EXAMPLES", "60"))
GENERATED = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# Text that is not a number in any form Python's int() or float() reads.
NOT_A_NUMBER = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1
).filter(lambda t: _not_a_number(t) and not t.startswith("-"))


def _not_a_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return True
    return False


def bad_int(s: Setting) -> st.SearchStrategy[str]:
    low = 1 if s.low is None else int(s.low)
    high = MAX_INT if s.high is None else int(s.high)
    return st.one_of(
        st.integers(max_value=low - 1).map(str),
        st.integers(min_value=high + 1, max_value=2**80).map(str),
        st.tuples(st.integers(-(10**6), 10**6), st.integers(1, 99)).map(
            lambda t: f"{t[0]}.{t[1]:02d}"
        ),
        NOT_A_NUMBER,
    )


def bad_float(s: Setting) -> st.SearchStrategy[str]:
    # below the least value (positive by default: 0 is refused; a declared low
    # is allowed, as anneal_rate's 0)
    below = st.floats(max_value=0.0, allow_nan=False)
    if s.low is not None:  # -0.0 is no less than 0.0
        below = st.floats(max_value=s.low, allow_nan=False).filter(lambda v: v < s.low)
    return st.one_of(
        below.map(repr),
        st.sampled_from(["nan", "inf", "-inf", "NaN", "1e400"]),
        NOT_A_NUMBER,
    )


def bad_choice(s: Setting) -> st.SearchStrategy[str]:
    return st.text(min_size=1).filter(
        lambda t: t not in s.choices and not t.startswith("-")
    )


def bad_text(s: Setting) -> st.SearchStrategy[str] | None:
    """Text ``s``'s option must refuse, or None for a setting that takes any."""
    if s.type is int:
        return bad_int(s)
    if s.type is float:
        return bad_float(s)
    if s.type is str and s.choices is not None:
        return bad_choice(s)
    return None


def refusable(cls: type) -> list[Setting]:
    return [s for s in settings_of(cls) if bad_text(s) is not None]


FIT_OPTIONS = [
    (name, s) for name in list_models() for s in refusable(get_model(name).config_class)
]


@st.composite
def bad_fit_option(draw) -> tuple[str, Setting, list[str]]:
    name, s = draw(st.sampled_from(FIT_OPTIONS))
    words = [draw(bad_text(s))]
    if s.many:  # a tuple option: good words around one bad one
        words = [*draw(st.lists(st.just("4"), max_size=2)), *words]
    return name, s, words


@GENERATED
@given(case=bad_fit_option())
def test_a_bad_value_of_any_fit_option_is_one_line_and_writes_nothing(
    case, tmp_path_factory
):
    name, s, words = case
    spec = get_model(name)
    out = tmp_path_factory.mktemp("fit") / "out"
    # the smoke sizes first, so a value wrongly taken would fit quickly and fail
    argv = ["fit", name, *spec.smoke_fit_args(), "--device", "cpu",
            "--out", out, f"{s.flag}={words[0]}", *words[1:]]  # fmt: skip
    assert_refused(*run(*argv))
    assert not out.exists()


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vae") / "run"
    status, err = run("fit", "vae", *get_model("vae").smoke_fit_args(),
                      "--no-criticize", "--device", "cpu", "--out", out)  # fmt: skip
    assert status == 0, err
    return out


def count_option(name: str) -> Setting:
    """A count option the command line takes outside the configs (from 1)."""
    return Setting(name=name, type=int, optional=True, many=False, default=None,
                   help="", choices=None, resumable=False, recorded=False,
                   flag=f"--{name}", metavar=None, parse=None, before=None)  # fmt: skip


RUN_OPTIONS = [
    *[("evaluate", s) for s in refusable(get_model("vae").evaluate_class)],
    ("evaluate", count_option("threads")),
    ("criticize", count_option("threads")),
]


@GENERATED
@given(data=st.data())
def test_a_bad_value_of_an_evaluate_or_criticize_option_leaves_the_run_as_it_was(
    data, vae_run
):
    command, s = data.draw(st.sampled_from(RUN_OPTIONS))
    value = data.draw(bad_text(s))
    files = {p.name: p.read_bytes() for p in vae_run.iterdir() if p.is_file()}
    assert_refused(*run(command, vae_run, f"{s.flag}={value}"))
    assert {p.name: p.read_bytes() for p in vae_run.iterdir() if p.is_file()} == files


@GENERATED
@given(data=st.data())
def test_a_bad_export_sample_count_is_refused(data, vae_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "data.nc"
    value = data.draw(bad_int(count_option("samples")))
    assert_refused(*run("export", vae_run, "--out", out, f"--samples={value}"))
    assert not out.exists()


# Python values of the wrong kind or out of range, for any scalar argument.
BAD_PYTHON = st.one_of(
    st.integers(max_value=0),
    st.integers(min_value=MAX_INT + 1),
    st.floats(max_value=0.0),
    st.just(float("nan")),
    st.just(float("inf")),
    st.booleans(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.none(),
)

#: each scalar argument's kind: int (with its range), float (above 0), or the
#: names it takes; and whether None is a value (learned, or all)
PPCA_ARGUMENTS = {
    "inference": (("map", "collapsed", "meanfield"), False),
    "num_datapoints": ((1, MAX_INT), False),
    "data_dim": ((1, MAX_INT), False),
    "latent_dim": ((1, MAX_INT), False),
    "noise_scale": (float, True),
    "mean": (("auto", "learned", "zero"), False),
    "steps": ((1, MAX_INT), False),
    "lr": (float, False),
    "seed": ((0, 2**32 - 1), False),
    "checkpoint_every": ((1, MAX_INT), True),
}
VAE_ARGUMENTS = {
    "binarize": (("dynamic", "threshold", "none"), False),
    "epochs": ((1, MAX_INT), False),
    "batch_size": ((1, MAX_INT), False),
    "lr": (float, False),
    "elbo": (("trace", "meanfield", "iwae"), True),  # None: the model's default
    "num_particles": ((1, MAX_INT), False),
    "seed": ((0, 2**32 - 1), False),
    "clip_grad": (float, True),
    "checkpoint_every": ((1, MAX_INT), False),
    "latent_dim": ((1, MAX_INT), True),
    "architecture": (("mlp", "conv"), False),
    "activation": (("softplus", "relu", "elu", "leaky_relu", "tanh", "gelu"), False),
    "prior": (("normal", "mixture"), False),
    "mixture_components": ((1, MAX_INT), False),
    "likelihood": (("bernoulli", "continuous_bernoulli", "normal"), True),
    "base_depth": ((1, MAX_INT), False),
    "train_images": ((1, MAX_INT), True),
    "test_images": ((1, MAX_INT), True),
}


def is_valid(kind, takes_none: bool, value) -> bool:
    """Whether ``value`` is, by the documentation, a good value of an argument of
    ``kind``: the generator draws a few; those would fit, and are left out."""
    if value is None:
        return takes_none
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, int | float) and 0 < value < math.inf
    if isinstance(kind, tuple) and isinstance(kind[0], int):
        return isinstance(value, int) and kind[0] <= value <= kind[1]
    return isinstance(value, str) and value in kind


@GENERATED
@given(name=st.sampled_from(sorted(PPCA_ARGUMENTS)), value=BAD_PYTHON)
def test_a_bad_argument_of_fit_ppca_raises_a_usage_error_naming_it(name, value):
    if is_valid(*PPCA_ARGUMENTS[name], value):
        return
    arguments = {"num_datapoints": 20, "steps": 3, name: value}
    with pytest.raises(UsageError) as error:
        fit_ppca(**arguments, progress=False, device="cpu")
    assert name in str(error.value)


@GENERATED
@given(name=st.sampled_from(sorted(VAE_ARGUMENTS)), value=BAD_PYTHON)
def test_a_bad_argument_of_fit_vae_raises_a_usage_error(name, value):
    if is_valid(*VAE_ARGUMENTS[name], value):
        return
    arguments = {"epochs": 1, "train_images": 64, "test_images": 32,
                 "hidden_dims": (8,), name: value}  # fmt: skip
    with pytest.raises(UsageError):
        fit_vae("digits", **arguments, progress=False, device="cpu")


@GENERATED
@given(value=st.one_of(BAD_PYTHON, st.lists(BAD_PYTHON, min_size=1, max_size=3)))
def test_bad_hidden_layers_of_fit_vae_raise_a_usage_error(value):
    good = (
        isinstance(value, list | tuple)
        and value
        and all(is_valid((1, MAX_INT), False, v) for v in value)
    )
    if good:
        return
    with pytest.raises(UsageError):
        fit_vae("digits", epochs=1, train_images=64, test_images=32,
                hidden_dims=value, progress=False, device="cpu")  # fmt: skip


# Arrays a PPCA fit must refuse: wrong shape, too few rows, no spread, non-finite
# or non-numeric entries, magnitudes float32 arithmetic cannot hold.
BAD_ARRAYS = st.one_of(
    st.integers(0, 3).map(lambda d: np.zeros((0, d))),
    st.integers(1, 5).map(lambda n: np.zeros((n, 0))),
    st.integers(1, 4).map(lambda d: np.ones((1, d))),
    st.tuples(st.integers(2, 20), st.integers(1, 4), st.floats(-1e6, 1e6)).map(
        lambda t: np.full((t[0], t[1]), t[2])
    ),
    st.tuples(st.integers(2, 20), st.integers(1, 4), st.sampled_from(
        [np.nan, np.inf, -np.inf])).map(
        lambda t: np.where(np.eye(t[0], t[1], dtype=bool), t[2], 1.0)),
    st.integers(1, 5).map(lambda n: np.arange(float(n))),
    st.integers(1, 3).map(lambda n: np.ones((n, 2, 2))),
    st.tuples(st.integers(2, 20), st.sampled_from([1e20, 1e30, -1e25])).map(
        lambda t: np.random.default_rng(t[0]).normal(size=(t[0], 3)) * t[1]
    ),
    st.just(np.array([["a", "b"], ["c", "d"]])),
    st.just(np.ones((4, 2), dtype=complex)),
    st.just(np.ones((4, 2), dtype=bool)),
)  # fmt: skip


@GENERATED
@given(data=BAD_ARRAYS, as_tensor=st.booleans())
def test_data_fit_ppca_cannot_use_is_refused(data, as_tensor):
    if as_tensor and data.dtype.kind in "fc":
        data = torch.as_tensor(data)
    with pytest.raises(UsageError):
        fit_ppca(data, steps=3, progress=False, device="cpu")


@GENERATED
@given(
    n=st.integers(2, 40),
    d=st.integers(2, 5),  # more dimensions than the one axis, to learn the noise
    scale=st.floats(1e-2, 1e6),
    shift=st.floats(-1e3, 1e3),
    seed=st.integers(0, 2**16),
    inference=st.sampled_from(["map", "collapsed", "meanfield"]),
)
def test_data_fit_ppca_takes_gives_finite_numbers_on_its_scale(
    n, d, scale, shift, seed, inference
):
    # Not a silently wrong result: whatever the data's scale and offset (within
    # float32's precision), the fit's loss, axes and noise are finite, and the
    # noise is no larger than the data's spread.
    x = np.random.default_rng(seed).normal(size=(n, d)) * scale + shift
    fit = fit_ppca(x, latent_dim=1, inference=inference, steps=30, progress=False,
                   device="cpu")  # fmt: skip
    summary = fit.summary()
    assert math.isfinite(summary["final_loss"])
    assert torch.isfinite(fit.w).all()
    noise = summary["noise_scale"]
    assert 0 < noise < math.inf
    assert noise <= 10 * max(float(x.std(axis=0).max()), 1e-3), (noise, x.std(0))
