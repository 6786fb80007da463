"""The compiled objective: same draws, same loss, same gradients as the plain one."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO
from pyro.infer.autoguide import AutoNormal

from ppl_models.errors import UsageError
from ppl_models.inference import make_objective
from ppl_models.inference.compiled import (
    COMPILE_MODES,
    CompiledObjective,
    CompileError,
    check_compile_mode,
    trace_objective,
)
from ppl_models.inference.elbo import DeviceTrace_ELBO
from ppl_models.models.ppca import fit_ppca
from ppl_models.models.vae import VAE, VAEConfig, fit_vae, make_elbo
from tests.conftest import requires_cuda


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


def test_an_unknown_compile_mode_is_refused(device):
    vae = small_vae(device)
    objective = make_objective(
        vae.model, vae.guide, make_elbo("trace", vae.config), images(device)
    )
    with pytest.raises(UsageError, match="compile mode 'fastest'"):
        CompiledObjective(objective, "fastest")
    with pytest.raises(UsageError, match="compile"):
        fit_ppca(steps=5, compile="fastest", device=device)


# Fast tests: torch.compile is replaced by a recorder that runs the traced graph as
# it is, so they check which graphs are traced, when, and what the compiler is
# asked for, without paying for inductor.


class LocationModel(torch.nn.Module):
    """A two-site model whose prior scale is a buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("prior_scale", torch.tensor(10.0))

    def forward(self, x, scale=1.0):
        loc = pyro.sample("loc", dist.Normal(0.0, self.prior_scale))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(loc, scale), obs=x)


@pytest.fixture
def tiny(device):
    """A plain device ELBO objective on a two-site model, and data for it."""
    model = LocationModel().to(device)
    x = torch.linspace(-1.0, 1.0, 6, device=device)
    return make_objective(model, AutoNormal(model), DeviceTrace_ELBO(), x), x


@pytest.fixture
def compiler_calls(monkeypatch):
    """torch.compile's calls, as (graph, kwargs); the graph is returned uncompiled."""
    calls = []

    def record(graph, **kwargs):
        calls.append((graph, kwargs))
        return graph

    monkeypatch.setattr(torch, "compile", record)
    return calls


def test_a_fit_asked_to_compile_compiles_its_objective(compiler_calls):
    kwargs = dict(num_datapoints=50, steps=3, device="cpu", progress=False)
    fit_ppca(**kwargs)
    assert compiler_calls == []
    assert fit_ppca(compile="default", **kwargs).compile == "default"
    assert len(compiler_calls) == 1


def test_the_graph_is_compiled_once_for_static_shapes_with_the_modes_options(
    tiny, compiler_calls
):
    plain, x = tiny
    compiled = CompiledObjective(plain, "max-autotune")
    for _ in range(3):
        compiled(x)
    assert len(compiler_calls) == 1
    graph, kwargs = compiler_calls[0]
    assert isinstance(graph, torch.fx.GraphModule)
    # the mode's own options, and random draws from PyTorch's generator
    expected = dict(torch._inductor.list_mode_options("max-autotune"))
    expected["fallback_random"] = True
    assert kwargs == {"dynamic": False, "options": expected}


def test_graphs_are_traced_per_shape_and_constant_and_give_the_plain_loss(
    tiny, compiler_calls
):
    # Tracing draws no random numbers: every call, the first included, sees the
    # draws the plain objective would from the same seed. A Python number is baked
    # into the traced graph, so a new value needs a new graph.
    plain, x = tiny
    compiled = CompiledObjective(plain)
    calls = [(x,), (x.clone(),), (x[:3],), (x, 2.0), (x, 2.0), (x, 3.0)]
    graphs = [1, 1, 2, 3, 3, 4]
    # beyond four graphs (the default) the plain objective runs
    calls.append((x[:2],))
    graphs.append(4)
    for args, count in zip(calls, graphs, strict=True):
        torch.manual_seed(5)
        expected = plain(*args)
        torch.manual_seed(5)
        torch.testing.assert_close(compiled(*args), expected)
        assert compiled.num_graphs == count
    assert len(compiler_calls) == 4


def test_buffers_and_parameters_are_read_afresh_on_every_call(tiny, compiler_calls):
    # Loading a checkpoint between calls changes them in place or replaces them.
    plain, x = tiny
    compiled = CompiledObjective(plain)
    compiled(x)
    with torch.no_grad():
        plain.model.prior_scale.fill_(0.5)
        plain.guide.locs.loc_unconstrained.fill_(2.0)
    torch.manual_seed(5)
    expected = plain(x)
    torch.manual_seed(5)
    torch.testing.assert_close(compiled(x), expected)
    assert compiled.num_graphs == 1


class DataModel(torch.nn.Module):
    """A model that holds its data as a buffer, so it is called with no arguments."""

    def __init__(self, data: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("data", data)

    def forward(self):
        loc = pyro.sample("loc", dist.Normal(0.0, 10.0))
        with pyro.plate("data", self.data.shape[0]):
            pyro.sample("x", dist.Normal(loc, 1.0), obs=self.data)


def test_an_objective_with_no_arguments_compiles_too(device, compiler_calls):
    model = DataModel(torch.tensor([0.5, 1.5], device=device))
    plain = make_objective(model, AutoNormal(model), DeviceTrace_ELBO())
    torch.manual_seed(5)
    expected = plain()
    torch.manual_seed(5)
    torch.testing.assert_close(CompiledObjective(plain, "max-autotune")(), expected)


def test_a_compiled_objective_needs_a_mode_and_a_known_one(tiny):
    plain, _ = tiny
    with pytest.raises(UsageError) as raised:
        CompiledObjective(plain, None)
    assert str(raised.value) == "a compiled objective needs a compile mode, not None"
    assert check_compile_mode(None) is None
    for mode in COMPILE_MODES:
        assert check_compile_mode(mode) == mode
    with pytest.raises(UsageError) as raised:
        check_compile_mode("fast")
    assert str(raised.value) == (
        "unknown compile mode 'fast': expected one of default, reduce-overhead, "
        "max-autotune"
    )


def test_a_compiler_failure_names_the_error_and_the_way_out(tiny, monkeypatch):
    plain, x = tiny

    def no_compiler(graph, **kwargs):
        def fail(*args):
            raise RuntimeError("no C++ compiler")

        return fail

    monkeypatch.setattr(torch, "compile", no_compiler)
    with pytest.raises(CompileError) as raised:
        CompiledObjective(plain)(x)
    assert str(raised.value) == (
        "torch.compile failed on the traced ELBO (no C++ compiler); "
        "train without --compile"
    )


def test_an_elbo_that_reads_the_host_is_refused_with_the_reason(device):
    x = torch.zeros(3, device=device)
    model = LocationModel().to(device)
    objective = make_objective(model, AutoNormal(model), Trace_ELBO(), x)
    with pytest.raises(CompileError) as raised:
        CompiledObjective(objective)(x)
    message = str(raised.value)
    assert message.startswith("the ELBO could not be traced into a graph (")
    assert message.endswith(
        "); a compiled objective needs a model and guide of fixed structure and an "
        "ELBO that keeps its loss on the device"
    )


@requires_cuda
def test_reduce_overhead_keeps_every_steps_loss_readable_on_cuda():
    # CUDA graphs reuse their output memory on the next replay unless each call
    # marks a new step; a loss kept from an earlier step must still read as itself.
    device = torch.device("cuda")
    vae = small_vae(device)
    x = images(device)
    plain = make_objective(vae.model, vae.guide, make_elbo("trace", vae.config), x)
    compiled = CompiledObjective(plain, "reduce-overhead")
    optimizer = torch.optim.Adam(compiled.parameters(), lr=1e-3)
    kept = []
    for _ in range(4):
        optimizer.zero_grad(set_to_none=True)
        loss = compiled(x)
        loss.backward()
        optimizer.step()
        kept.append((loss.detach(), float(loss)))
    for loss, value in kept:
        assert float(loss) == value
