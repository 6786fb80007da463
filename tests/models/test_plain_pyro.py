"""The bundled models are Pyro programs a Pyro user can pick up.

Importing the zoo and running its fits leaves a user's Pyro as it was (settings,
param store, ``PyroModule``\\ s, random state), and every registered model's model
and guide train under Pyro's own ``SVI`` with a ``pyro.optim`` optimizer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO

from tests.models.test_registered_models import CASES, build_case

ROOT = Path(__file__).resolve().parents[2]

# A user's own program: Bayesian linear regression with a PyroModule built before
# the zoo is imported, fitted by SVI with the global param store and pyro.optim.
USER_SCRIPT = textwrap.dedent(
    """
    import json, random, sys, tempfile
    import numpy as np, pyro, pyro.distributions as dist, torch
    from pyro.infer import SVI, Trace_ELBO
    from pyro.infer.autoguide import AutoNormal
    from pyro.nn import PyroModule, PyroSample

    class Regression(PyroModule):
        def __init__(self):
            super().__init__()
            self.linear = PyroModule[torch.nn.Linear](3, 1)
            prior = dist.Normal(0.0, 1.0).expand([1, 3]).to_event(2)
            self.linear.weight = PyroSample(prior)

        def forward(self, x, y=None):
            mean = self.linear(x).squeeze(-1)
            with pyro.plate("data", x.shape[0]):
                return pyro.sample("y", dist.Normal(mean, 0.5), obs=y)

    pyro.set_rng_seed(0)
    x = torch.randn(100, 3)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3 + 0.5 * torch.randn(100)
    model = Regression()
    guide = AutoNormal(model)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    losses = [svi.step(x, y) for _ in range(20)]
    settings = {k: repr(v) for k, v in pyro.settings.get().items()}

    if sys.argv[1] == "with-zoo":
        import ppl_models
        from ppl_models.cli.main import main
        for name in ppl_models.list_models():
            out = tempfile.mkdtemp()
            spec = ppl_models.get_model(name)
            assert main(["fit", name, *spec.smoke_fit_args(), "--out", out,
                         "--device", "cpu", "--overwrite"]) == 0
            assert main(["criticize", out, "--device", "cpu"]) == 0
            ppl_models.load_fit(out, device="cpu")
        assert {k: repr(v) for k, v in pyro.settings.get().items()} == settings

    losses += [svi.step(x, y) for _ in range(20)]
    print(json.dumps({
        "losses": losses,
        "params": {k: v.tolist() for k, v in pyro.get_param_store().items()},
        "draws": [torch.rand(2).tolist(), random.random(), np.random.rand()],
    }))
    """
)


def start_user_script(script: Path, mode: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(script), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def user_script_result(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_importing_the_zoo_and_running_its_fits_leaves_a_users_pyro_alone(
    tmp_path,
):
    # Two processes side by side, one thread each: the same program with and
    # without the zoo.
    script = tmp_path / "user.py"
    script.write_text(USER_SCRIPT)
    runs = {
        mode: start_user_script(script, mode) for mode in ("without-zoo", "with-zoo")
    }
    without, with_zoo = (user_script_result(runs[mode]) for mode in runs)
    # The same param store names, the same training to the last bit, the same
    # draws afterwards: settings, param store and random state all as they were.
    assert with_zoo["params"].keys() == without["params"].keys()
    assert "AutoNormal.locs.linear.weight" in with_zoo["params"]
    assert with_zoo == without


@pytest.fixture
def global_param_store():
    """Pyro's default (global param store) mode, with an empty store, as a user's
    fresh script has it; the store is emptied again afterwards.
    """
    assert pyro.settings.get("module_local_params") is False
    pyro.clear_param_store()
    yield pyro.get_param_store()
    pyro.clear_param_store()


def _parameters(*programs) -> dict[str, torch.Tensor]:
    found = {}
    for index, program in enumerate(programs):
        if isinstance(program, torch.nn.Module):
            for name, value in program.named_parameters():
                found[f"{index}.{name}"] = value.detach().clone()
    return found


@pytest.mark.parametrize("model_name,case_name", CASES)
def test_plain_pyro_svi_trains_every_registered_model(
    model_name, case_name, global_param_store
):
    case = build_case(model_name, case_name, torch.device("cpu"))
    pyro.set_rng_seed(0)
    svi = SVI(case.model, case.guide, pyro.optim.Adam({"lr": 0.02}), Trace_ELBO())
    first = svi.step(*case.fit_args)  # creates an autoguide's parameters
    before = _parameters(case.model, case.guide)
    assert before, "the model and guide have no parameters to train"
    losses = [first] + [svi.step(*case.fit_args) for _ in range(59)]
    after = _parameters(case.model, case.guide)
    unchanged = [name for name in before if torch.equal(before[name], after[name])]
    assert not unchanged, f"SVI left these parameters untouched: {unchanged}"
    assert sum(losses[-10:]) < sum(losses[:10]), losses
    assert pyro.settings.get("module_local_params") is False


@pytest.mark.parametrize("model_name,case_name", CASES)
def test_a_users_poutine_sees_every_parameter_as_a_param_site(
    model_name, case_name, global_param_store
):
    case = build_case(model_name, case_name, torch.device("cpu"))
    pyro.set_rng_seed(0)
    SVI(case.model, case.guide, pyro.optim.Adam({"lr": 0.02}), Trace_ELBO()).step(
        *case.fit_args
    )
    with poutine.trace(param_only=True) as params:
        Trace_ELBO().differentiable_loss(case.model, case.guide, *case.fit_args)
    seen = {id(site["value"].unconstrained()) for site in params.trace.nodes.values()}
    owned = {
        id(p)
        for program in (case.model, case.guide)
        if isinstance(program, torch.nn.Module)
        for p in program.parameters()
    }
    assert owned <= seen


@pytest.mark.parametrize("model_name,case_name", CASES)
def test_conditioning_a_model_on_guide_draws_fixes_its_latents(
    model_name, case_name, global_param_store
):
    case = build_case(model_name, case_name, torch.device("cpu"))
    guide_trace = poutine.trace(case.guide).get_trace(*case.fit_args)
    latents = {s: guide_trace.nodes[s]["value"] for s in case.latent_sites}
    conditioned = poutine.condition(case.model, data=latents)
    model_trace = poutine.trace(conditioned).get_trace(*case.fit_args)
    for site, value in latents.items():
        assert model_trace.nodes[site]["is_observed"], site
        assert torch.equal(model_trace.nodes[site]["value"], value), site
    log_joint = model_trace.log_prob_sum()
    assert torch.isfinite(log_joint)
    # Conditioning is all it takes: replaying the same draws gives the same joint.
    replayed = poutine.trace(poutine.replay(case.model, trace=guide_trace))
    assert torch.allclose(replayed.get_trace(*case.fit_args).log_prob_sum(), log_joint)


def test_the_vae_registers_its_networks_under_the_documented_names(
    global_param_store,
):
    from ppl_models.models.vae import VAE, VAEConfig

    vae = VAE(VAEConfig(image_shape=(8, 8), latent_dim=2, hidden_dims=(16,)))
    images = torch.rand(5, 64).round()
    SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 0.01}), Trace_ELBO()).step(images)
    names = set(global_param_store.keys())
    assert {name.split("$$$")[0] for name in names} == {"vae_model", "vae_guide"}
    assert any(name.startswith("vae_guide$$$encoder.") for name in names)
    assert any(name.startswith("vae_model$$$decoder.") for name in names)
    assert len(names) == len(list(vae.parameters()))
