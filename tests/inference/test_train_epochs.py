"""The shared loop over epochs of minibatches: each epoch's steps, numbered over the
whole run; what each epoch ends with; checkpoints every N epochs and after the
last; Ctrl-C saving the last epoch that is not on disk yet."""

from __future__ import annotations

import pytest
import torch

from ppl_models.errors import NumericalError
from ppl_models.inference.trainer import train_epochs
from tests.inference.test_trainer import interrupt_at, ppca_objective


def run(epochs, *, first_epoch=0, checkpoint_every=1, batches=None, **hooks):
    """Train the PPCA objective on 3 batches an epoch; record every hook's calls."""
    objective, optimizer, x = ppca_objective()
    calls = []

    def end_epoch(epoch, losses, seconds, grad_norms):
        calls.append(("end", epoch, losses.clone(), seconds))
        return f"state after epoch {epoch}"

    train_epochs(
        objective,
        optimizer,
        batches or (lambda: iter([(x,), (x,), (x,)])),
        epochs,
        3,
        end_epoch=end_epoch,
        first_epoch=first_epoch,
        save=lambda state: calls.append(("save", state)),
        after_epoch=lambda epoch: calls.append(("after", epoch)),
        checkpoint_every=checkpoint_every,
        progress=False,
        **hooks,
    )
    return calls


def test_each_epoch_ends_with_its_losses_then_a_scheduled_save_then_after_epoch():
    calls = run(5, checkpoint_every=2)
    assert [c[:2] for c in calls] == [
        ("end", 1), ("after", 1),
        ("end", 2), ("save", "state after epoch 2"), ("after", 2),
        ("end", 3), ("after", 3),
        ("end", 4), ("save", "state after epoch 4"), ("after", 4),
        ("end", 5), ("save", "state after epoch 5"), ("after", 5),
    ]  # fmt: skip
    ends = [c for c in calls if c[0] == "end"]
    for _, _, losses, seconds in ends:
        assert losses.shape == (3,) and torch.isfinite(losses).all()
        assert 0 < seconds < 60  # the epoch's own seconds, not a clock reading
    # The same objective trained on: the losses go on from epoch to epoch.
    assert not torch.equal(ends[0][2], ends[1][2])


@pytest.mark.parametrize("max_grad_norm", [None, 1e-3])
def test_each_epoch_ends_with_each_steps_gradient_norm_before_any_clipping(
    max_grad_norm,
):
    objective, optimizer, x = ppca_objective()
    seen = []  # the gradient's norm when the optimizer steps: after any clipping

    def before_step(optimizer, args, kwargs):
        grads = [p.grad for g in optimizer.param_groups for p in g["params"]]
        seen.append(torch.nn.utils.get_total_norm([g for g in grads if g is not None]))

    optimizer.register_step_pre_hook(before_step)
    recorded = []
    train_epochs(objective, optimizer, lambda: iter([(x,)] * 3), 2, 3,
                 end_epoch=lambda epoch, losses, seconds, grad_norms:
                 recorded.append(grad_norms.clone()),
                 max_grad_norm=max_grad_norm, progress=False)  # fmt: skip
    recorded, seen = torch.cat(recorded), torch.stack(seen)
    assert recorded.shape == (6,)
    if max_grad_norm is None:
        assert torch.allclose(recorded, seen)
    else:
        assert torch.allclose(seen, torch.full_like(seen, max_grad_norm), rtol=1e-3)
        assert (recorded > 100 * max_grad_norm).all()


def test_a_resumed_run_takes_only_the_epochs_left():
    calls = run(4, first_epoch=2)
    assert [c[:2] for c in calls if c[0] != "after"] == [
        ("end", 3), ("save", "state after epoch 3"),
        ("end", 4), ("save", "state after epoch 4"),
    ]  # fmt: skip


def test_a_bad_step_is_numbered_over_the_whole_run():
    objective, optimizer, x = ppca_objective()
    seen = [0]

    def batches():
        for _ in range(3):
            seen[0] += 1
            yield (x * float("nan"),) if seen[0] == 8 else (x,)

    with pytest.raises(NumericalError) as error:
        run(4, first_epoch=1, batches=batches)
    # Epoch 2's first step is step 4 of the run; the 8th batch is step 11.
    assert error.value.step == 11
    assert "at step 11 of 12;" in str(error.value)


def test_ctrl_c_saves_the_last_epoch_not_yet_on_disk_and_stops(ctrl_c_raises):
    objective, optimizer, x = ppca_objective()
    interrupt_at(objective, 8)  # in epoch 3, with epoch 2 not saved yet
    calls = []
    with pytest.raises(KeyboardInterrupt):
        train_epochs(
            objective, optimizer, lambda: iter([(x,)] * 3), 6, 3,
            end_epoch=lambda epoch, *_: f"state after epoch {epoch}",
            save=calls.append, checkpoint_every=4, progress=False,
        )  # fmt: skip
    assert calls == ["state after epoch 2"]


def test_ctrl_c_after_a_saved_epoch_saves_nothing_again(ctrl_c_raises):
    objective, optimizer, x = ppca_objective()
    interrupt_at(objective, 5)  # in epoch 2, epoch 1 on disk already
    calls = []
    with pytest.raises(KeyboardInterrupt):
        train_epochs(
            objective, optimizer, lambda: iter([(x,)] * 3), 6, 3,
            end_epoch=lambda epoch, *_: f"state after epoch {epoch}",
            save=calls.append, checkpoint_every=1, progress=False,
        )  # fmt: skip
    assert calls == ["state after epoch 1"]


def test_each_epochs_bar_is_named_for_it_and_shows_the_loss_per_item(
    monkeypatch, caplog, capsys
):
    # The bar (asked for) names the epoch and shows the loss per item; the epoch's
    # steps log no lines of their own: the model logs one line per epoch.
    from ppl_models.inference import progress as progress_module

    pers = []
    update = progress_module.LossProgress.update

    def spy(self, loss, steps=1, per=1):
        pers.append(per)
        return update(self, loss, steps, per)

    monkeypatch.setattr(progress_module.LossProgress, "update", spy)
    objective, optimizer, x = ppca_objective()
    with caplog.at_level("INFO", logger="ppl_models"):
        train_epochs(
            objective, optimizer, lambda: iter([(x,), (x,)]), 2, 2,
            end_epoch=lambda epoch, *_: None,
            progress=True, per=lambda x: x.shape[1],
        )  # fmt: skip
    assert "epoch 2/2" in capsys.readouterr().err
    assert pers == [40] * 4
    # Where stderr is no terminal, the steps log nothing either.
    with caplog.at_level("INFO", logger="ppl_models"):
        train_epochs(
            objective, optimizer, lambda: iter([(x,), (x,)]), 2, 2,
            end_epoch=lambda epoch, *_: None, progress=None,
        )  # fmt: skip
    assert not [r for r in caplog.records if "loss" in r.getMessage()]


def test_by_default_every_epoch_is_saved_and_the_watch_is_read_every_100_steps():
    objective, optimizer, x = ppca_objective()
    saves, calls = [], [0]

    def batches():
        def batch():
            calls[0] += 1
            return (x * float("nan"),) if calls[0] == 50 else (x,)

        return iter(batch, None)

    def end_epoch(epoch, losses, seconds, grad_norms):
        return epoch

    train_epochs(objective, optimizer, lambda: iter([(x,)]), 3, 1,
                 end_epoch=end_epoch, save=saves.append, progress=False)  # fmt: skip
    assert saves == [1, 2, 3]
    # A NaN at step 50 of 200 stops the run when the watch is next read: at 100.
    with pytest.raises(NumericalError, match="at step 50 of 200"):
        train_epochs(objective, optimizer, batches, 1, 200,
                     end_epoch=end_epoch, progress=False)  # fmt: skip
    assert calls[0] == 100
    # Asked to read it every 25 steps, the loop stops at step 50 itself.
    calls[0] = 0
    objective, optimizer, x = ppca_objective()
    with pytest.raises(NumericalError, match="at step 50 of 200"):
        train_epochs(objective, optimizer, batches, 1, 200, check_every=25,
                     end_epoch=end_epoch, progress=False)  # fmt: skip
    assert calls[0] == 50
