"""Every registered model's ELBOs: the device-side loss equals Pyro's, never reads
the host, and traces into a graph that computes the same loss and gradients.

Like ``test_registered_models``, a new model is covered by registering it.
"""

from __future__ import annotations

import pyro
import pytest
import torch
from pyro.infer import RenyiELBO, Trace_ELBO, TraceMeanField_ELBO

from ppl_models.inference import make_objective
from ppl_models.inference.compiled import trace_objective
from ppl_models.inference.elbo import (
    DeviceIWAE_ELBO,
    DeviceTrace_ELBO,
    DeviceTraceMeanField_ELBO,
)
from tests.conftest import count_host_reads
from tests.models.test_registered_models import CASES, build_case


class RenyiObjective(torch.nn.Module):
    """Pyro's ``RenyiELBO`` (alpha 0) called like an ELBO module. It has no
    differentiable loss: ``loss_and_grads`` runs the backward pass itself, on the
    parameters it finds in Pyro's param store (a scratch store here), and returns a
    float, given back as a tensor whose own backward does nothing.
    """

    def __init__(self, elbo: RenyiELBO, model, guide) -> None:
        super().__init__()
        self.elbo, self.model, self.guide = elbo, model, guide

    def forward(self, *args):
        with pyro.get_param_store().scope():
            loss = self.elbo.loss_and_grads(self.model, self.guide, *args)
        return torch.tensor(loss, requires_grad=True)


def renyi_alpha_0(model, guide, **settings) -> RenyiObjective:
    return RenyiObjective(RenyiELBO(alpha=0.0, **settings), model, guide)


PYRO_ELBOS = {
    DeviceTrace_ELBO: lambda model, guide, **settings: Trace_ELBO(**settings)(
        model, guide
    ),
    DeviceTraceMeanField_ELBO: lambda model, guide, **settings: TraceMeanField_ELBO(
        **settings
    )(model, guide),
    DeviceIWAE_ELBO: renyi_alpha_0,
}


def pyro_counterpart(elbo, model, guide):
    """Pyro's own ELBO with the same settings as the zoo's ``elbo``, as a module
    whose call gives the loss of ``model`` and ``guide``.
    """
    return PYRO_ELBOS[type(elbo)](
        model,
        guide,
        num_particles=elbo.num_particles,
        vectorize_particles=elbo.vectorize_particles,
        max_plate_nesting=elbo.max_plate_nesting,
    )


def loss_and_grads(objective, args, seed=0):
    """The loss and the gradients by parameter name, from a fixed seed."""
    objective.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    with pyro.validation_enabled(False):
        loss = objective(*args)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in objective.named_parameters()}
    return loss.detach(), grads


def assert_close_grads(a, b, rtol=1e-5):
    assert a.keys() == b.keys()
    for name, grad in a.items():
        scale = grad.abs().max().clamp_min(1e-6)
        assert (grad - b[name]).abs().max() <= rtol * scale, name


@pytest.fixture(params=CASES, ids=["-".join(c) for c in CASES])
def case(request, device):
    return build_case(*request.param, device)


def test_the_device_elbo_gives_pyros_loss_and_gradient(case):
    elbo = case.elbo()
    assert type(elbo) in PYRO_ELBOS, "a registered model should use a device ELBO"
    ours = make_objective(case.model, case.guide, elbo, *case.fit_args)
    theirs = pyro_counterpart(elbo, case.model, case.guide)
    loss, grads = loss_and_grads(ours, case.fit_args)
    pyro_loss, pyro_grads = loss_and_grads(theirs, case.fit_args)
    assert loss.shape == ()
    assert loss.device == case.fit_args[0].device
    torch.testing.assert_close(loss.cpu(), torch.as_tensor(float(pyro_loss)))
    assert_close_grads(grads, pyro_grads)


def test_the_device_elbo_never_reads_the_host(case):
    ours = make_objective(case.model, case.guide, case.elbo(), *case.fit_args)
    theirs = pyro_counterpart(case.elbo(), case.model, case.guide)
    with pyro.validation_enabled(False):
        with count_host_reads() as pyro_reads:
            theirs(*case.fit_args)
        with count_host_reads() as reads:
            ours(*case.fit_args)
    assert pyro_reads, "the counter should see Pyro's own ELBO read the host"
    assert reads == []


def test_the_traced_graph_gives_the_same_loss_and_gradients(case):
    objective = make_objective(case.model, case.guide, case.elbo(), *case.fit_args)
    params = dict(objective.named_parameters())
    buffers = dict(objective.named_buffers())
    graph = trace_objective(objective, params, buffers, case.fit_args)
    loss, grads = loss_and_grads(objective, case.fit_args, seed=3)

    objective.zero_grad(set_to_none=True)
    torch.manual_seed(3)
    traced = graph(params, buffers, *case.fit_args)
    traced.backward()
    traced_grads = {n: p.grad.clone() for n, p in objective.named_parameters()}
    torch.testing.assert_close(traced.detach(), loss)
    assert_close_grads(traced_grads, grads)
