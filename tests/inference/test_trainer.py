"""The shared training loop: checkpoints on schedule, Ctrl-C held to a step's end,
no save of a state that is not finite."""

from __future__ import annotations

import logging
import re
import signal

import pytest
import torch

from ppl_models.errors import NumericalError, ResourceError
from ppl_models.inference import make_objective, train_steps
from ppl_models.models.ppca import PPCA, make_elbo, make_guide
from ppl_models.seeding import rng_state, set_rng_state


def ppca_objective(seed: int = 0):
    torch.manual_seed(seed)
    model = PPCA(3, 1)
    guide = make_guide(model, "meanfield")
    x = torch.randn(3, 40)
    objective = make_objective(model, guide, make_elbo("meanfield"), x)
    optimizer = torch.optim.Adam(objective.parameters(), lr=0.05)
    return objective, optimizer, x


def interrupt_at(objective, calls: int, times: int = 1) -> None:
    """Send this process Ctrl-C (``times`` over) during the objective's
    ``calls``-th training call, before its backward pass and optimizer step."""
    seen = [0]

    def hook(module, args):
        if torch.is_grad_enabled():
            seen[0] += 1
            if seen[0] == calls:
                for _ in range(times):
                    signal.raise_signal(signal.SIGINT)

    objective.register_forward_pre_hook(hook)


def test_saves_every_checkpoint_every_steps_and_after_the_last():
    objective, optimizer, x = ppca_objective()
    saves = []
    losses = train_steps(
        objective, optimizer, lambda: (x,), 10, checkpoint_every=4,
        save=lambda step, so_far: saves.append((step, so_far.clone())),
        progress=False,
    )  # fmt: skip
    assert [step for step, _ in saves] == [4, 8, 10]
    for step, so_far in saves:
        assert torch.equal(so_far, losses[:step])


def test_a_resumed_loop_counts_its_steps_from_where_it_left_off():
    objective, optimizer, x = ppca_objective()
    saves = []
    losses = train_steps(
        objective, optimizer, lambda: (x,), 10, first_step=7, checkpoint_every=4,
        save=lambda step, so_far: saves.append((step, len(so_far))),
        progress=False,
    )  # fmt: skip
    assert losses.shape == (4,)
    assert saves == [(8, 2), (10, 4)]


def test_a_step_both_scheduled_and_last_is_saved_once():
    objective, optimizer, x = ppca_objective()
    saves = []
    train_steps(
        objective, optimizer, lambda: (x,), 8, checkpoint_every=4,
        save=lambda step, so_far: saves.append(step), progress=False,
    )  # fmt: skip
    assert saves == [4, 8]


def test_a_loop_with_no_steps_left_takes_none_and_saves_nothing():
    objective, optimizer, x = ppca_objective()
    saves = []
    losses = train_steps(
        objective, optimizer, lambda: (x,), 5, first_step=6,
        save=lambda step, so_far: saves.append(step), progress=False,
    )  # fmt: skip
    assert losses.shape == (0,)
    assert saves == []


def test_a_bad_step_after_a_resume_is_named_by_its_number_in_the_whole_run():
    objective, optimizer, x = ppca_objective()
    calls = [0]

    def batch():
        calls[0] += 1
        return (x * float("nan"),) if calls[0] == 3 else (x,)

    with pytest.raises(NumericalError, match="at step 13 of 20;"):
        train_steps(objective, optimizer, batch, 20, first_step=11, progress=False)


@pytest.mark.parametrize("steps, lines", [(5, 5), (25, 13), (100, 10)])
def test_without_a_bar_the_loop_logs_about_ten_lines(caplog, steps, lines):
    # Output that is not a terminal gets a line every tenth of the run (at least
    # every step) and one for the last step, where a terminal gets the bar.
    objective, optimizer, x = ppca_objective()
    with caplog.at_level(logging.INFO, logger="ppl_models"):
        train_steps(objective, optimizer, lambda: (x,), steps, progress=None)
    logged = [r.getMessage() for r in caplog.records if "loss" in r.getMessage()]
    assert len(logged) == lines
    assert logged[-1].startswith(f"svi: step {steps}/{steps}, loss ")


@pytest.mark.parametrize("per, divisor", [(None, 1), (lambda x: x.shape[1], 40)])
def test_the_logged_loss_is_the_steps_loss_per_item(caplog, per, divisor):
    # The VAE shows its loss per image: ``per`` counts the items of a batch.
    objective, optimizer, x = ppca_objective()
    with caplog.at_level(logging.INFO, logger="ppl_models"):
        losses = train_steps(objective, optimizer, lambda: (x,), 5, per=per)
    last = [r.getMessage() for r in caplog.records if "loss" in r.getMessage()][-1]
    shown = float(last.split("loss ")[1].split(",")[0])
    assert shown == pytest.approx(float(losses[-1]) / divisor, rel=1e-5)


@pytest.mark.parametrize("progress", [False, True])
def test_a_bar_asked_for_or_refused_is_not_replaced_by_log_lines(
    caplog, capsys, progress
):
    # The caller's choice holds even where stderr is not a terminal.
    objective, optimizer, x = ppca_objective()
    with caplog.at_level(logging.INFO, logger="ppl_models"):
        train_steps(objective, optimizer, lambda: (x,), 5, progress=progress)
    assert not [r for r in caplog.records if "loss" in r.getMessage()]
    assert ("svi:" in capsys.readouterr().err) == progress  # the bar


def test_ctrl_c_is_held_until_the_step_has_finished_then_the_state_is_saved(
    ctrl_c_raises,
):
    objective, optimizer, x = ppca_objective()
    saves = []
    interrupt_at(objective, 3)
    torch.manual_seed(1)
    with pytest.raises(KeyboardInterrupt):
        train_steps(
            objective, optimizer, lambda: (x,), 10, checkpoint_every=100,
            save=lambda step, so_far: saves.append(step), progress=False,
        )  # fmt: skip
    assert saves == [3]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    # The state is that of three whole steps: the interrupted one was finished.
    twin, twin_optimizer, _ = ppca_objective()
    torch.manual_seed(1)
    train_steps(twin, twin_optimizer, lambda: (x,), 3, progress=False)
    interrupted = objective.state_dict()
    for name, value in twin.state_dict().items():
        assert torch.equal(value, interrupted[name]), name


def test_a_second_ctrl_c_interrupts_at_once_without_a_save(ctrl_c_raises):
    objective, optimizer, x = ppca_objective()
    saves = []
    interrupt_at(objective, 2, times=2)
    with pytest.raises(KeyboardInterrupt):
        train_steps(
            objective, optimizer, lambda: (x,), 10,
            save=lambda step, so_far: saves.append(step), progress=False,
        )  # fmt: skip
    assert saves == []


def test_a_state_that_is_not_finite_is_never_saved(monkeypatch):
    objective, optimizer, x = ppca_objective()
    original_step = optimizer.step
    calls = [0]

    def step_then_spoil(*args, **kwargs):
        original_step(*args, **kwargs)
        calls[0] += 1
        if calls[0] == 2:
            with torch.no_grad():
                next(objective.parameters())[0] = float("nan")

    monkeypatch.setattr(optimizer, "step", step_then_spoil)
    saves = []
    with pytest.raises(NumericalError, match="non-finite parameters: guide.locs"):
        train_steps(
            objective, optimizer, lambda: (x,), 10, checkpoint_every=2,
            save=lambda step, so_far: saves.append(step), progress=False,
        )  # fmt: skip
    assert saves == []


def test_where_ctrl_c_is_ignored_nothing_is_held_or_changed():
    objective, optimizer, x = ppca_objective()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        interrupt_at(objective, 2)
        train_steps(objective, optimizer, lambda: (x,), 4, progress=False)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_the_random_state_carries_the_cuda_generators_where_cuda_is_present(
    monkeypatch,
):
    cuda_state = [torch.tensor([7, 8], dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: cuda_state)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    state = rng_state()
    assert state["cuda"] is cuda_state
    assert torch.equal(state["torch"], torch.get_rng_state())
    set_rng_state(state)
    assert len(restored) == 1 and torch.equal(restored[0][0], cuda_state[0])
    # A state saved without CUDA restores the CPU generator and leaves CUDA's alone.
    set_rng_state({"torch": state["torch"]})
    assert len(restored) == 1


def test_without_cuda_the_random_state_is_the_cpu_generators_alone(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    state = rng_state()
    assert set(state) == {"torch"}
    torch.manual_seed(3)
    expected = torch.rand(2)
    torch.manual_seed(3)
    saved = rng_state()
    torch.rand(5)
    set_rng_state({"torch": saved["torch"]})
    assert torch.equal(torch.rand(2), expected)


def test_running_out_of_memory_names_the_step_it_happened_at(monkeypatch):
    objective, optimizer, x = ppca_objective()
    original = objective.forward
    calls = []

    def out_of_memory_at_step_3(*args):
        calls.append(1)
        if len(calls) == 3:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return original(*args)

    monkeypatch.setattr(objective, "forward", out_of_memory_at_step_3)
    with pytest.raises(ResourceError) as error:
        train_steps(objective, optimizer, lambda: (x,), 10, progress=False)
    assert str(error.value) == (
        "the device ran out of memory at step 3 of 10: try less data per step"
    )


class SumOfSquares(torch.nn.Module):
    """A loss of seven small parameters, (2,) each, times the batch's scale plus its
    offset (an infinite offset leaves the gradients finite)."""

    def __init__(self) -> None:
        super().__init__()
        self.p = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.ones(2)) for _ in range(7)]
        )

    def forward(self, scale: float, offset: float = 0.0) -> torch.Tensor:
        return scale * sum((p**2).sum() for p in self.p) + offset


def test_gradients_are_clipped_to_max_grad_norm():
    for clip, moved in ((None, 2 * 14**0.5), (0.01, 0.01)):
        objective = SumOfSquares()
        before = torch.cat([p.detach().clone() for p in objective.p])
        optimizer = torch.optim.SGD(objective.parameters(), lr=1.0)
        train_steps(
            objective, optimizer, lambda: (1.0,), 1, max_grad_norm=clip,
            progress=False,
        )  # fmt: skip
        after = torch.cat([p.detach() for p in objective.p])
        assert float((after - before).norm()) == pytest.approx(moved, rel=1e-5)


@pytest.mark.parametrize(
    "spoiled, named",
    [(5, "p.0, p.1, p.2, p.3, p.4"), (6, "p.0, p.1, p.2, p.3, p.4 ...")],
)
def test_a_state_spoiled_after_a_step_names_five_parameters_and_says_if_more(
    monkeypatch, spoiled, named
):
    objective = SumOfSquares()
    optimizer = torch.optim.SGD(objective.parameters(), lr=0.01)
    original_step = optimizer.step

    def step_then_spoil(*args, **kwargs):
        original_step(*args, **kwargs)
        with torch.no_grad():
            for p in objective.p[:spoiled]:
                p[0] = float("nan")

    monkeypatch.setattr(optimizer, "step", step_then_spoil)
    message = (
        "the loss or its gradient became NaN or infinite after a step; non-finite "
        f"parameters: {named}; try a lower learning rate, or data on a smaller scale"
    )
    with pytest.raises(NumericalError, match="^" + re.escape(message) + "$"):
        train_steps(
            objective, optimizer, lambda: (1.0,), 4, checkpoint_every=1,
            save=lambda step, so_far: None, progress=False,
        )  # fmt: skip


def test_a_loss_that_is_not_finite_with_finite_parameters_says_none_are_spoiled():
    objective = SumOfSquares()
    optimizer = torch.optim.SGD(objective.parameters(), lr=0.01)
    message = (
        "the loss or its gradient became NaN or infinite at step 1 of 3; non-finite "
        "parameters: none; try a lower learning rate, or data on a smaller scale"
    )
    with pytest.raises(NumericalError, match="^" + re.escape(message) + "$"):
        train_steps(
            objective, optimizer, lambda: (1.0, float("inf")), 3, progress=False
        )


def test_by_default_the_nan_watch_is_read_every_100_steps():
    objective, optimizer, x = ppca_objective()
    calls = [0]

    def batch():
        calls[0] += 1
        return (x * float("nan"),) if calls[0] == 50 else (x,)

    with pytest.raises(NumericalError, match="at step 50 of 200"):
        train_steps(objective, optimizer, batch, 200, progress=False)
    assert calls[0] == 100  # stopped where the watch was next read
