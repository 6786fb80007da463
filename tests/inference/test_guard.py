"""The NaN watch: the exact first bad step, read on the host only every
``check_every`` steps; and the sites and parameters named when training stops."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch

from ppl_models.inference.guard import (
    NonFiniteWatch,
    nonfinite_parameters,
    nonfinite_sites,
)
from tests.models.test_registered_models import default_device

NAN = float("nan")
INF = float("inf")


def observe_all(watch, device, losses, grad_norms=None):
    grad_norms = grad_norms or [None] * len(losses)
    for loss, norm in zip(losses, grad_norms, strict=True):
        norm = None if norm is None else torch.tensor(norm, device=device)
        watch.observe(torch.tensor(loss, device=device), norm)


def test_all_finite_steps_report_nothing(device):
    watch = NonFiniteWatch(device, check_every=1)
    observe_all(watch, device, [1.0, -2.0, 0.0], [0.5, 0.0, 3.0])
    assert watch.first_bad_step(force=True) is None


def test_the_first_bad_step_is_reported_not_a_later_one(device):
    watch = NonFiniteWatch(device, check_every=10)
    observe_all(watch, device, [1.0, 2.0, NAN, INF, 3.0])
    assert watch.first_bad_step(force=True) == 3


def test_steps_count_on_from_first_step_when_training_resumes(device):
    # Resuming after 12 steps: the next step is step 13.
    watch = NonFiniteWatch(device, check_every=10, first_step=13)
    observe_all(watch, device, [1.0, -INF])
    assert watch.first_bad_step(force=True) == 14


def test_a_bad_gradient_norm_with_a_finite_loss_is_caught(device):
    watch = NonFiniteWatch(device, check_every=10)
    observe_all(watch, device, [1.0, 1.0, 1.0], [2.0, 2.0, INF])
    assert watch.first_bad_step(force=True) == 3


def test_the_host_reads_only_every_check_every_steps(device):
    watch = NonFiniteWatch(device, check_every=3)
    observe_all(watch, device, [NAN, 1.0])
    assert watch.first_bad_step() is None  # 2 steps: not read yet
    observe_all(watch, device, [1.0])
    assert watch.first_bad_step() == 1  # 3 steps: read, and the count starts over
    observe_all(watch, device, [1.0, 1.0])
    assert watch.first_bad_step() is None
    observe_all(watch, device, [1.0])
    assert watch.first_bad_step() == 1


def test_by_default_the_watch_reads_every_hundred_steps_counting_from_one(device):
    watch = NonFiniteWatch(device)
    observe_all(watch, device, [NAN] + [1.0] * 98)
    assert watch.first_bad_step() is None
    observe_all(watch, device, [1.0])
    assert watch.first_bad_step() == 1


def nan_guide(x):
    # validation off: a NaN location is allowed through, as a NaN step would do
    pyro.sample("z", dist.Normal(torch.tensor(NAN), 1.0))


def location_model(x):
    z = pyro.sample("z", dist.Normal(0.0, 1.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", dist.Normal(z, 1.0), obs=x)


def test_nonfinite_sites_names_guide_then_model_sites_with_the_guide_draws_replayed():
    x = torch.zeros(4)
    with pyro.validation_enabled(False):
        sites = nonfinite_sites(location_model, nan_guide, x)
    # The model's z is finite under its own prior: listed only because the guide's
    # NaN draw was replayed into it, and x follows.
    assert sites == ["z (guide)", "z (model)", "x (model)"]


def test_nonfinite_sites_names_only_the_observed_site_that_cannot_hold_the_data():
    def guide(x):
        pyro.sample("z", dist.Normal(0.0, 1.0))

    x = torch.tensor([0.0, INF])
    with pyro.validation_enabled(False):
        assert nonfinite_sites(location_model, guide, x) == ["x (model)"]
        assert nonfinite_sites(location_model, guide, torch.zeros(2)) == []


def test_nonfinite_parameters_names_the_parameters_holding_nan_or_inf():
    module = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    with torch.no_grad():
        module[0].bias[1] = NAN
        module[1].weight[0, 0] = -INF
    assert nonfinite_parameters(module) == ["0.bias", "1.weight"]


def test_the_counters_live_on_the_device_given_not_the_default_one(device):
    # The suite's device trap: a tensor made without a device lands on "meta",
    # where reading the first bad step would fail.
    with default_device("meta"):
        watch = NonFiniteWatch(device, check_every=2)
        observe_all(watch, device, [1.0, NAN])
        assert watch.first_bad_step() == 2
