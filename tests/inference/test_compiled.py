"""The compiled objective: same draws, same loss, same gradients as the plain one."""

from __future__ import annotations

import pytest
import torch
from pyro.infer import Trace_ELBO

from ppl_models.errors import UsageError
from ppl_models.inference import make_objective
from ppl_models.inference.compiled import (
    CompiledObjective,
    CompileError,
    trace_objective,
)
from ppl_models.models.ppca import fit_ppca
from ppl_models.models.vae import VAE, VAEConfig, fit_vae, make_elbo


def small_vae(device, **config):
    torch.manual_seed(0)
    config = VAEConfig(image_shape=(8, 8), latent_dim=3, hidden_dims=(16,), **config)
    return VAE(config).to(device)


def images(device, n=32):
    return torch.rand(n, 64, device=device).round()


def test_compiled_vae_objective_matches_the_plain_one(device):
    vae = small_vae(device)
    x = images(device)
    plain = make_objective(vae.model, vae.guide, make_elbo("trace", vae.config), x)
    compiled = CompiledObjective(plain)
    for batch in (x, x[:7]):  # a full batch and a ragged last one: two graphs
        results = []
        for objective in (plain, compiled):
            objective.zero_grad(set_to_none=True)
            torch.manual_seed(1)
            loss = objective(batch)
            loss.backward()
            grads = [p.grad.clone() for p in plain.parameters()]
            results.append((loss.detach(), grads))
        (loss, grads), (compiled_loss, compiled_grads) = results
        torch.testing.assert_close(compiled_loss, loss)
        for a, b in zip(compiled_grads, grads, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert compiled.num_graphs == 2
    assert list(compiled.parameters()) == list(plain.parameters())


def test_compiled_ppca_fit_matches_the_plain_fit(device):
    kwargs = dict(num_datapoints=300, steps=60, device=device, progress=False)
    plain = fit_ppca(inference="meanfield", **kwargs)
    compiled = fit_ppca(inference="meanfield", compile="default", **kwargs)
    torch.testing.assert_close(compiled.losses, plain.losses, rtol=1e-4, atol=1e-2)
    torch.testing.assert_close(compiled.w, plain.w, rtol=1e-4, atol=1e-5)


def test_a_compiled_vae_run_matches_the_plain_run(device):
    kwargs = dict(
        epochs=2,
        batch_size=100,
        latent_dim=3,
        hidden_dims=(32,),
        train_images=400,
        test_images=100,
        device=device,
        progress=False,
    )
    plain = fit_vae("digits", **kwargs)
    compiled = fit_vae("digits", compile="default", **kwargs)
    for key in ("train_elbo", "test_elbo"):
        assert getattr(compiled.history, key) == pytest.approx(
            getattr(plain.history, key), rel=1e-4
        )


def test_beyond_max_graphs_the_plain_objective_runs(device, monkeypatch):
    vae = small_vae(device)
    x = images(device)
    plain = make_objective(vae.model, vae.guide, make_elbo("trace", vae.config), x)
    compiled = CompiledObjective(plain, max_graphs=1)
    # Trace without inductor: this test is about which path runs, not the compiler.
    monkeypatch.setattr(
        CompiledObjective,
        "_compile",
        lambda self, params, buffers, args: trace_objective(
            self.objective, params, buffers, args
        ),
    )
    compiled(x)
    assert compiled.num_graphs == 1
    torch.manual_seed(2)
    expected = plain(x[:5])
    torch.manual_seed(2)
    assert torch.equal(compiled(x[:5]), expected)
    assert compiled.num_graphs == 1


@pytest.mark.parametrize(
    "fault,expected",
    [(RuntimeError("no C++ compiler"), CompileError), (torch.OutOfMemoryError(), None)],
)
def test_a_failing_compile_says_so_but_out_of_memory_passes_through(
    device, monkeypatch, fault, expected
):
    vae = small_vae(device)
    x = images(device)
    plain = make_objective(vae.model, vae.guide, make_elbo("trace", vae.config), x)
    compiled = CompiledObjective(plain)

    def failing_graph(*args):
        raise fault

    monkeypatch.setattr(CompiledObjective, "_compile", lambda *a: failing_graph)
    with pytest.raises(expected or type(fault)) as raised:
        compiled(x)
    if expected is CompileError:
        assert "without --compile" in str(raised.value)
    assert compiled.num_graphs == 0


def test_an_elbo_that_reads_the_host_cannot_be_compiled(device):
    vae = small_vae(device)
    x = images(device)
    objective = make_objective(vae.model, vae.guide, Trace_ELBO(), x)
    with pytest.raises(CompileError, match="could not be traced"):
        CompiledObjective(objective)(x)


def test_an_unknown_compile_mode_is_refused(device):
    vae = small_vae(device)
    objective = make_objective(
        vae.model, vae.guide, make_elbo("trace", vae.config), images(device)
    )
    with pytest.raises(UsageError, match="compile mode 'fastest'"):
        CompiledObjective(objective, "fastest")
    with pytest.raises(UsageError, match="compile"):
        fit_ppca(steps=5, compile="fastest", device=device)
