"""SVI steps with plain PyTorch optimizers: losses, clipping, the NaN watch, untouched
parameters, and the objective that make_objective builds."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer.autoguide import AutoNormal
from pyro.infer.util import is_validation_enabled
from pyro.nn import PyroModule, PyroParam

from ppl_models.inference import make_objective, run_svi, svi_step
from ppl_models.inference.compiled import CompiledObjective
from ppl_models.inference.elbo import DeviceTrace_ELBO
from ppl_models.inference.guard import NonFiniteWatch
from ppl_models.inference.params import ensure_local_state
from ppl_models.inference.svi import check_objective


class Quadratic(torch.nn.Module):
    """``sum((p - target)^2) + offset``: gradient 2 (p - target) for any offset."""

    def __init__(self, size: int, device) -> None:
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(size, device=device))

    def forward(self, target, offset=0.0):
        return ((self.p - target) ** 2).sum() + offset


def test_a_step_returns_the_loss_before_it_and_moves_down_the_gradient(device):
    objective = Quadratic(2, device)
    optimizer = torch.optim.SGD(objective.parameters(), lr=0.25)
    target = torch.tensor([3.0, 4.0], device=device)
    loss = svi_step(objective, optimizer, target)
    assert loss.shape == () and not loss.requires_grad
    assert loss.item() == 25.0
    # p <- p - 0.25 * 2 (p - target) = target / 2
    torch.testing.assert_close(objective.p.detach(), target / 2)


def test_max_grad_norm_clips_the_step(device):
    objective = Quadratic(2, device)
    optimizer = torch.optim.SGD(objective.parameters(), lr=1.0)
    target = torch.tensor([3.0, 4.0], device=device)
    # gradient (-6, -8) has norm 10; clipped to norm 1 it is (-0.6, -0.8)
    svi_step(objective, optimizer, target, max_grad_norm=1.0)
    torch.testing.assert_close(objective.p.detach(), target / 5)


@pytest.mark.parametrize("max_grad_norm", [None, 1e6])
def test_the_watch_sees_a_nonfinite_loss_and_a_nonfinite_gradient(
    device, max_grad_norm
):
    target = torch.zeros(2, device=device)
    inf = torch.tensor(float("inf"), device=device)

    # The loss goes infinite on step 2 while its gradient stays finite.
    objective = Quadratic(2, device)
    optimizer = torch.optim.SGD(objective.parameters(), lr=0.1)
    watch = NonFiniteWatch(device, check_every=100)
    for offset in (0.0, inf, 0.0):
        svi_step(
            objective,
            optimizer,
            target,
            offset,
            max_grad_norm=max_grad_norm,
            watch=watch,
        )
    assert watch.first_bad_step(force=True) == 2

    # The gradient goes infinite on step 2 (d/dp |p| sqrt at 0) while the loss is 0.
    objective = Quadratic(2, device)
    optimizer = torch.optim.SGD(objective.parameters(), lr=0.0)
    watch = NonFiniteWatch(device, check_every=100)
    svi_step(objective, optimizer, target + 1, watch=watch, max_grad_norm=max_grad_norm)
    objective.forward = lambda t: (objective.p - t).abs().sqrt().sum()
    svi_step(objective, optimizer, target, watch=watch, max_grad_norm=max_grad_norm)
    assert watch.first_bad_step(force=True) == 2


def test_a_watch_over_finite_steps_reports_nothing(device):
    objective = Quadratic(2, device)
    optimizer = torch.optim.SGD(objective.parameters(), lr=0.1)
    watch = NonFiniteWatch(device, check_every=1)
    svi_step(objective, optimizer, torch.ones(2, device=device), watch=watch)
    assert watch.first_bad_step() is None


class TwoBranches(torch.nn.Module):
    def __init__(self, device) -> None:
        super().__init__()
        self.a = torch.nn.Parameter(torch.ones(1, device=device))
        self.b = torch.nn.Parameter(torch.ones(1, device=device))

    def forward(self, use_a: bool):
        return (self.a if use_a else self.b).square().sum()


def test_a_parameter_the_loss_does_not_touch_is_left_where_it_is(device):
    # Gradients are reset to None, not zero: Adam skips a parameter with no gradient
    # instead of moving it on stale momentum.
    objective = TwoBranches(device)
    optimizer = torch.optim.Adam(objective.parameters(), lr=0.1)
    svi_step(objective, optimizer, True)
    a_after_its_step = objective.a.detach().clone()
    svi_step(objective, optimizer, False)
    assert torch.equal(objective.a.detach(), a_after_its_step)


def test_run_svi_returns_the_loss_before_each_step(device):
    objective = Quadratic(1, device)
    optimizer = torch.optim.SGD(objective.parameters(), lr=0.25)
    target = torch.tensor([3.0], device=device)
    losses = run_svi(objective, optimizer, 3, target, progress=False)
    # p: 0 -> 1.5 -> 2.25 -> 2.625, each step halving the distance to 3
    assert losses.device == target.device
    assert losses.tolist() == [9.0, 2.25, 0.5625]


def test_run_svi_shows_its_label_and_step_count(device, capsys):
    objective = Quadratic(1, device)
    optimizer = torch.optim.SGD(objective.parameters(), lr=0.25)
    target = torch.ones(1, device=device)
    run_svi(objective, optimizer, 3, target, progress=True)
    run_svi(objective, optimizer, 2, target, desc="map", progress=True)
    err = capsys.readouterr().err
    assert "svi: " in err and "/3" in err
    assert "map: " in err and "/2" in err


def test_run_svi_validates_no_arguments_per_step(device):
    # Pyro's argument checks read the device on every call; inputs were checked once.
    seen = []
    objective = Quadratic(1, device)
    forward = objective.forward
    objective.forward = lambda t: seen.append(is_validation_enabled()) or forward(t)
    optimizer = torch.optim.SGD(objective.parameters(), lr=0.1)
    with pyro.validation_enabled(True):
        run_svi(objective, optimizer, 2, torch.ones(1, device=device), progress=False)
    assert seen == [False, False]


def location_model(x):
    loc = pyro.sample("loc", dist.Normal(0.0, 10.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", dist.Normal(loc, 1.0), obs=x)


def test_make_objective_initializes_the_guide_so_an_optimizer_can_be_built(device):
    guide = AutoNormal(location_model)
    x = torch.randn(5, device=device)
    objective = make_objective(location_model, guide, DeviceTrace_ELBO(), x)
    names = sorted(name for name, _ in objective.named_parameters())
    assert names == ["guide.locs.loc_unconstrained", "guide.scales.loc_unconstrained"]
    assert not isinstance(objective, CompiledObjective)
    assert objective(x).shape == ()


def test_make_objective_compiles_with_the_mode_asked_for(device):
    guide = AutoNormal(location_model)
    x = torch.randn(5, device=device)
    plain = make_objective(location_model, guide, DeviceTrace_ELBO(), x)
    compiled = make_objective(
        location_model, guide, DeviceTrace_ELBO(), x, compile="max-autotune"
    )
    assert isinstance(compiled, CompiledObjective)
    assert compiled.mode == "max-autotune"
    assert compiled.num_graphs == 0  # nothing is traced before the first call
    # the same guide's parameters, so one optimizer fits either objective
    assert list(compiled.parameters()) == list(plain.parameters())


def test_a_fit_meets_pyros_checks_before_its_first_step_and_keeps_its_draws():
    # Validation is off while stepping (its checks read the host), so a model that
    # breaks Pyro's rules is caught by the one validated evaluation up front.
    def model(x):
        scale = pyro.param("scale", torch.tensor(1.0))
        with pyro.plate("data", 3):
            pyro.sample("x", dist.Normal(0.0, -scale), obs=x)  # a negative scale

    def guide(x):
        pass

    x = torch.zeros(3)
    with pyro.validation_enabled(False), pytest.raises(ValueError, match="scale"):
        make_objective(model, guide, DeviceTrace_ELBO(), x)

    def noisy_model(x):
        loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
        with pyro.plate("data", 3):
            pyro.sample("x", dist.Normal(loc, 1.0), obs=x)

    def noisy_guide(x):
        pyro.sample("loc", dist.Normal(0.0, 1.0))

    objective = DeviceTrace_ELBO()(noisy_model, noisy_guide)
    torch.manual_seed(0)
    expected_next = torch.rand(2)
    torch.manual_seed(0)
    check_objective(objective, x)
    assert torch.equal(torch.rand(2), expected_next)


class UserModel(PyroModule):
    """A model a user wrote and built outside the zoo: ``y ~ Normal(loc, 1)``."""

    def __init__(self) -> None:
        super().__init__()
        self.loc = PyroParam(torch.tensor(0.5))

    def forward(self, y):
        with pyro.plate("data", y.shape[0]):
            pyro.sample("y", dist.Normal(self.loc, 1.0), obs=y)


def no_guide(y):
    """Nothing latent to guess."""


def test_a_users_pyro_module_is_fitted_with_its_own_parameters():
    y = torch.tensor([1.0, 2.0, 3.0])
    model = UserModel()  # built outside module-local mode
    objective = make_objective(model, no_guide, DeviceTrace_ELBO(), y)
    loss = objective(y)
    assert loss.item() == pytest.approx(-dist.Normal(0.5, 1.0).log_prob(y).sum())
    loss.backward()
    assert model.loc.grad.item() == pytest.approx(-(y - 0.5).sum().item())
    assert "loc" not in pyro.get_param_store()
    # Keyword arguments reach the model as positional ones do.
    assert objective(y=y).item() == loss.item()


def test_local_state_is_given_to_the_modules_that_lack_it_and_kept_by_the_others():
    y = torch.tensor([1.0, 2.0, 3.0])
    fitted = UserModel()
    objective = make_objective(fitted, no_guide, DeviceTrace_ELBO(), y)
    objective(y).backward()
    kept = fitted._pyro_context.param_state
    fresh = UserModel()
    # Whatever else comes first (a guide that is a function), every module is seen to.
    ensure_local_state(no_guide, fitted, fresh)
    assert fitted._pyro_context.param_state is kept
    assert fresh._pyro_context.param_state == {"params": {}, "constraints": {}}
