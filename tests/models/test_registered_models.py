"""Every registered model, with every guide and ELBO it offers, passes the same tests.

A new model is covered here by registering it: no new test code. The device trap
runs everything with ``torch.set_default_device("meta")`` in force: a tensor that a
model or guide creates without naming its device lands on the meta device and the
first operation mixing it with real data fails, the CPU stand-in for a GPU check.
"""

from __future__ import annotations

import pkgutil
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from pyro import poutine
from pyro.infer import Predictive

from ppl_models import get_model, list_models
from ppl_models.criticism import replay_guide
from ppl_models.inference import make_objective, svi_step
from tests.conftest import requires_cuda

CASES = [
    (name, case.name)
    for name in list_models()
    for case in get_model(name).smoke_cases(torch.device("cpu"))
]


def build_case(model_name: str, case_name: str, device: torch.device):
    cases = {c.name: c for c in get_model(model_name).smoke_cases(device)}
    return cases[case_name]


@contextmanager
def default_device(device: str):
    previous = torch.get_default_device()
    torch.set_default_device(device)
    try:
        yield
    finally:
        # None, not "cpu", for the default: setting any device leaves a
        # TorchFunctionMode on every later torch call of the session.
        torch.set_default_device(None if previous.type == "cpu" else previous)


def exercise(case, device: torch.device) -> None:
    """Traces, SVI steps, Predictive and replay; checks devices and shapes."""
    guide_trace = poutine.trace(case.guide).get_trace(*case.fit_args)
    model_trace = poutine.trace(
        poutine.replay(case.model, trace=guide_trace)
    ).get_trace(*case.fit_args)
    for site in case.latent_sites:
        assert (
            model_trace.nodes[site]["value"].shape
            == guide_trace.nodes[site]["value"].shape
        )
    for node in model_trace.nodes.values():
        if node["type"] == "sample":
            assert node["value"].device.type == device.type, node["name"]
    assert torch.isfinite(model_trace.log_prob_sum())

    objective = make_objective(case.model, case.guide, case.elbo(), *case.fit_args)
    optimizer = torch.optim.Adam(objective.parameters(), lr=1e-3)
    losses = torch.stack(
        [svi_step(objective, optimizer, *case.fit_args) for _ in range(3)]
    )
    assert losses.device.type == device.type
    assert torch.isfinite(losses).all()

    guide_args = case.guide_predict_args or case.predict_args
    posterior = Predictive(case.guide, num_samples=2)(*guide_args)
    samples = Predictive(case.model, posterior_samples=posterior)(*case.predict_args)
    observed = model_trace.nodes[case.observed_site]["value"]  # the data fitted
    assert samples[case.observed_site].shape[-observed.dim() :] == observed.shape
    assert samples[case.observed_site].device.type == device.type

    replayed = replay_guide(case.model, case.guide, case.predict_args, case.fit_args)
    assert replayed.nodes[case.observed_site]["value"].shape == observed.shape


@pytest.mark.parametrize("model_name,case_name", CASES)
def test_model_runs_on_cpu_with_the_device_trap(model_name, case_name):
    case = build_case(model_name, case_name, torch.device("cpu"))
    with default_device("meta"):
        exercise(case, torch.device("cpu"))


@requires_cuda
@pytest.mark.parametrize("model_name,case_name", CASES)
def test_model_runs_on_cuda(model_name, case_name):
    device = torch.device("cuda")
    case = build_case(model_name, case_name, device)
    with default_device("meta"):
        exercise(case, device)


def test_the_device_trap_catches_a_tensor_made_without_a_device():
    import pyro
    import pyro.distributions as dist

    def careless_model(x):
        with pyro.plate("data", x.shape[0], device=x.device):
            # The classic mistake: a constant made on the default device.
            loc = torch.zeros(x.shape[1])
            pyro.sample("x", dist.Normal(loc, 1.0).to_event(1), obs=x)

    x = torch.randn(4, 3)
    with (
        default_device("meta"),
        pytest.raises((RuntimeError, ValueError, NotImplementedError)),
    ):
        poutine.trace(careless_model).get_trace(x).log_prob_sum()


def test_every_model_package_is_registered():
    # A model subpackage that forgot its @register_model would silently drop out of
    # every registry-parametrized test; compare against the packages on disk.
    import ppl_models.models

    packages = {
        info.name
        for info in pkgutil.iter_modules(ppl_models.models.__path__)
        if info.ispkg
    }
    assert packages, "no model packages found"
    bundled = {
        name
        for name in list_models()
        if get_model(name).__module__.startswith("ppl_models.models.")
    }
    assert bundled == packages
    # The rest are the test suite's own, such as the README's worked example.
    others = set(list_models()) - bundled
    assert all(get_model(n).__module__.startswith("tests.") for n in others)


@pytest.mark.parametrize("model_name", list_models())
def test_every_inference_method_has_smoke_cases(model_name):
    # The parametrizations above are built from smoke_cases; a model yielding none
    # (or none for one of its methods) would drop out of them without a failure.
    spec = get_model(model_name)
    assert spec.description
    assert spec.inference_methods
    cases = list(spec.smoke_cases(torch.device("cpu")))
    assert cases, f"{model_name} yields no smoke cases"
    assert {case.inference for case in cases} == set(spec.inference_methods)
    assert len({case.name for case in cases}) == len(cases), "duplicate case names"
    for case in cases:
        # exercise() compares these sites' shapes in model and guide; with none
        # named, that check would pass vacuously.
        assert case.latent_sites, f"{case.name} names no latent sites"
    assert sum(1 for name, _ in CASES if name == model_name) == len(cases)


def test_the_shared_code_knows_no_model_by_name():
    # Adding a model is its package and its @register_model: no module outside the
    # model packages imports one, or names one in its code (docstrings aside), so
    # none needs an edit for a new model. A model may build on another's package
    # (the categorical VAE on the VAE's stack).
    import ast

    import ppl_models

    root = Path(ppl_models.__file__).parent
    names = {info.name for info in pkgutil.iter_modules([str(root / "models")])}
    assert {"vae", "ppca"} <= names
    found = []
    for path in root.rglob("*.py"):
        if path.is_relative_to(root / "models"):
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom | ast.Import):
                modules = (
                    [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else [alias.name for alias in node.names]
                )
                found += [
                    f"{path.name} imports {m}"
                    for m in modules
                    if m.startswith("ppl_models.models.")
                ]
            elif (
                isinstance(node, ast.Constant)
                and node.value in names
                and id(node) not in docstrings
            ):
                found += [f"{path.name}:{node.lineno} names {node.value!r}"]
    assert not found
