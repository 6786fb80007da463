"""An ELBO objective traced once into a graph of tensor operations, then compiled.

Running a Pyro model and guide costs Python work on every step: effect handlers,
traces, distribution objects. For a model whose structure does not change from step
to step (no data-dependent control flow), that work always produces the same tensor
operations. :class:`CompiledObjective` records them once per input shape with
:func:`~torch.fx.experimental.proxy_tensor.make_fx`, parameters as inputs, and hands
the resulting graph, free of Pyro, to :func:`torch.compile`. The backward pass comes
from the compiled graph as usual, so the result is called and differentiated like the
objective it wraps, and the same optimizer steps it.

Random draws inside the graph use PyTorch's generator exactly as the plain objective
does (inductor's ``fallback_random``), so both paths see the same draws from the same
seed and give the same loss to float precision.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyro
import torch
from torch.func import functional_call
from torch.fx.experimental.proxy_tensor import make_fx

from ppl_models.errors import TrainingError, UsageError
from ppl_models.inference.memory import is_out_of_memory

#: torch.compile's modes; "reduce-overhead" adds CUDA graphs on a GPU.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


class CompileError(TrainingError):
    """The objective could not be traced or compiled."""


def check_compile_mode(mode: str | None) -> str | None:
    """``mode`` if it is ``None`` (no compiling) or one of ``COMPILE_MODES``.

    :raises UsageError: naming the unknown mode and the known ones.
    """
    if mode is not None and mode not in COMPILE_MODES:
        raise UsageError(
            f"unknown compile mode {mode!r}: expected one of {', '.join(COMPILE_MODES)}"
        )
    return mode


class CompiledObjective(torch.nn.Module):
    """``objective`` (an ELBO module: ``objective(*args)`` -> 0-dim loss) compiled.

    One graph is traced and compiled per distinct shape, dtype and device of the
    arguments; up to ``max_graphs`` of them, beyond which calls run the plain
    objective. Parameters and buffers are read afresh on every call, so the
    objective can be moved or loaded between calls.

    :param objective: must compute its loss without reading tensors on the host
        (see :mod:`ppl_models.inference.elbo`).
    :param mode: a :func:`torch.compile` mode, one of ``COMPILE_MODES``.
    """

    def __init__(
        self, objective: torch.nn.Module, mode: str = "default", max_graphs: int = 4
    ) -> None:
        super().__init__()
        if mode is None:
            raise UsageError("a compiled objective needs a compile mode, not None")
        self.objective = objective
        self.mode = check_compile_mode(mode)
        self.max_graphs = max_graphs
        self._graphs: dict[tuple, Callable[..., torch.Tensor]] = {}

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        """The objective's loss on ``args``, 0-dim, differentiable."""
        params = dict(self.objective.named_parameters())
        buffers = dict(self.objective.named_buffers())
        key = _signature(args) + (tuple(params), tuple(buffers))
        if self.mode != "default" and args and args[0].is_cuda:
            # A new step begins: CUDA graphs may reuse the last step's outputs.
            torch.compiler.cudagraph_mark_step_begin()
        graph = self._graphs.get(key)
        if graph is None:
            if len(self._graphs) >= self.max_graphs:
                return self.objective(*args)
            graph = self._graphs[key] = self._compile(params, buffers, args)
            try:
                return graph(params, buffers, *args)  # compiles on this first call
            except Exception as error:  # inductor raises many kinds
                del self._graphs[key]
                if is_out_of_memory(error):  # CUDA's or the CPU allocator's
                    raise  # the training loop reports it, with advice
                raise CompileError(
                    f"torch.compile failed on the traced ELBO ({error}); train "
                    "without --compile"
                ) from error
        return graph(params, buffers, *args)

    @property
    def num_graphs(self) -> int:
        """How many graphs have been traced so far."""
        return len(self._graphs)

    def _compile(
        self,
        params: dict[str, torch.Tensor],
        buffers: dict[str, torch.Tensor],
        args: tuple[torch.Tensor, ...],
    ) -> Callable[..., torch.Tensor]:
        graph = trace_objective(self.objective, params, buffers, args)
        return torch.compile(graph, dynamic=False, options=_inductor_options(self.mode))


def trace_objective(
    objective: torch.nn.Module,
    params: dict[str, torch.Tensor],
    buffers: dict[str, torch.Tensor],
    args: tuple[torch.Tensor, ...],
) -> torch.fx.GraphModule:
    """The tensor operations of ``objective(*args)`` as a graph whose inputs are
    ``(params, buffers, *args)``: parameters and buffers by name, arguments as given.

    :raises CompileError: where the objective reads a tensor on the host, which a
        fixed graph cannot do (Pyro's own ELBOs, or a model whose structure depends on
        the data).
    """

    def loss(
        params: dict[str, torch.Tensor],
        buffers: dict[str, torch.Tensor],
        *args: torch.Tensor,
    ) -> torch.Tensor:
        return functional_call(objective, (params, buffers), args)

    detached = {name: value.detach() for name, value in params.items()}
    # Pyro's argument checks read values on the host; inputs were checked already.
    with torch.no_grad(), pyro.validation_enabled(False):
        try:
            return make_fx(loss, tracing_mode="fake")(detached, buffers, *args)
        except RuntimeError as error:
            raise CompileError(
                f"the ELBO could not be traced into a graph ({error}); a compiled "
                "objective needs a model and guide of fixed structure and an ELBO "
                "that keeps its loss on the device"
            ) from error


def _signature(args: tuple[Any, ...]) -> tuple:
    return tuple(
        (tuple(a.shape), a.dtype, a.device) if torch.is_tensor(a) else a for a in args
    )


def _inductor_options(mode: str) -> dict[str, Any]:
    # torch.compile takes a mode or options, not both: spell the mode out as options.
    options = dict(torch._inductor.list_mode_options(mode))
    # Draw random numbers with PyTorch's own generator, as the plain path does, so
    # compiled and plain runs see the same draws from the same seed.
    options["fallback_random"] = True
    return options
