"""The progress bar: its label and length, the loss it shows, and that a hidden bar
or a bar between refreshes never reads the loss from the device."""

from __future__ import annotations

import io
import sys
import time

import torch

from ppl_models.inference import progress as progress_module
from ppl_models.inference.progress import LossProgress
from tests.conftest import count_host_reads


class Clock:
    """A stand-in for time.monotonic that the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_enabled_shows_the_bar_and_disabled_hides_it_whatever_the_terminal():
    # Under pytest stderr is not a terminal, so None (the default) lets tqdm hide it.
    for enabled, hidden in ((True, False), (False, True), (None, True)):
        with LossProgress(3, "fit", enabled=enabled) as bar:
            assert bar.bar.disable is hidden


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_by_default_the_bar_shows_on_a_terminal(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with LossProgress(3, "fit"):
        pass
    assert "fit:" in terminal.getvalue()


def test_the_bar_counts_steps_towards_its_total_under_its_label(capsys):
    with LossProgress(4, "epoch 1/2", enabled=True) as bar:
        bar.update(torch.tensor(1.0))
        bar.update(torch.tensor(1.0), steps=2)
        assert (bar.bar.n, bar.bar.total) == (3, 4)
    err = capsys.readouterr().err
    assert "epoch 1/2:" in err and "0/4" in err
    # leave=False: closing wipes the bar, so finished bars do not pile up in a log.
    assert "epoch" not in err.split("\r")[-1]


def test_the_loss_shown_is_divided_by_per_and_refreshed_at_most_twice_a_second(
    monkeypatch,
):
    clock = Clock(100.0)
    monkeypatch.setattr(progress_module.time, "monotonic", clock)
    bar = LossProgress(10, "fit", enabled=True)
    bar.update(torch.tensor(10.0), per=4)
    assert bar.bar.postfix == "loss=2.5"
    clock.now = 100.4  # too soon: the loss is not read
    with count_host_reads() as reads:
        bar.update(torch.tensor(8.0))
    assert reads == [] and bar.bar.postfix == "loss=2.5"
    clock.now = 100.5  # half a second after the last refresh
    bar.update(torch.tensor(1 / 3))
    assert bar.bar.postfix == "loss=0.3333"
    clock.now = 100.9
    bar.update(torch.tensor(7.0))
    assert bar.bar.postfix == "loss=0.3333"
    bar.close()


def test_a_hidden_bar_never_reads_the_loss(monkeypatch):
    clock = Clock(100.0)
    monkeypatch.setattr(progress_module.time, "monotonic", clock)
    with LossProgress(3, "fit", enabled=False) as bar, count_host_reads() as reads:
        for _ in range(3):
            bar.update(torch.tensor(1.0))
            clock.now += 1.0
    assert reads == []


def test_without_a_terminal_the_loss_is_logged_every_n_steps_and_only_then_read(
    caplog,
):
    losses = [torch.tensor(float(k)) for k in range(1, 8)]
    with caplog.at_level("INFO", logger="ppl_models"):
        start = time.perf_counter()
        with count_host_reads() as reads, LossProgress(7, "fit", log_every=3) as bar:
            for loss in losses:
                bar.update(loss, per=2)
        wall = time.perf_counter() - start
        # Each line ends with the seconds since the bar started.
        for record in caplog.records:
            assert (
                0
                <= float(record.getMessage().split(", ")[2].removesuffix(" s"))
                <= wall + 0.05
            )
        logged = [record.getMessage().split(", ")[:2] for record in caplog.records]
        assert logged == [
            ["fit: step 3/7", "loss 1.5"],
            ["fit: step 6/7", "loss 3"],
            ["fit: step 7/7", "loss 3.5"],  # the last step, wherever it falls
        ]
        assert len(reads) == 3
        caplog.clear()
        # A bar switched off on purpose (progress=False) logs nothing either.
        with LossProgress(7, "quiet", enabled=False, log_every=1) as bar:
            bar.update(losses[0])
        assert caplog.records == []
    # With the logger at its default level nothing is logged and nothing is read.
    with count_host_reads() as reads, LossProgress(7, "fit", log_every=1) as bar:
        for loss in losses:
            bar.update(loss)
    assert reads == []
