"""Torch's thread count for a command: one thread for a small model, more for a
large one up to the cores there are; the environment and ``--threads`` win; only
the command line changes it, and only while the command runs.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import torch

from ppl_models import get_model
from ppl_models.cli import main
from ppl_models.cli.main import build_parser
from ppl_models.models.ppca.config import PPCARunConfig
from ppl_models.models.vae.config import VAERunConfig
from ppl_models.threads import (
    THREAD_VARIABLES,
    WORK_PER_THREAD,
    command_threads,
    set_fit_threads,
    threads_for_work,
    user_chose,
    work_per_step,
)

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _threads_kept(monkeypatch) -> Iterator[None]:
    """Each test starts with no thread variable set (as a user's shell has none)
    and leaves torch's thread count as it found it.
    """
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def cores(monkeypatch):
    """Pretend the process may run on ``cores(n)`` cores."""

    def pretend(count: int, load: float = 0.0) -> None:
        monkeypatch.setattr("ppl_models.threads.available_cores", lambda: count)
        monkeypatch.setattr("os.getloadavg", lambda: (load, load, load))

    return pretend


def threads_during_fit(monkeypatch, model: str) -> list[int]:
    """Make ``model``'s fit record torch's thread count instead of fitting."""
    seen: list[int] = []

    def fake_fit_run(cls, config, run_dir, device, options):
        seen.append(torch.get_num_threads())
        return {}

    monkeypatch.setattr(get_model(model), "fit_run", classmethod(fake_fit_run))
    return seen


# The rule.


def test_a_small_step_gets_one_thread():
    assert threads_for_work(WORK_PER_THREAD / 2, cores=16) == 1
    assert threads_for_work(0, cores=16) == 1


def test_a_large_step_gets_a_thread_per_share_of_work():
    assert threads_for_work(3 * WORK_PER_THREAD, cores=16) == 3


def test_threads_are_capped_by_the_cores():
    assert threads_for_work(100 * WORK_PER_THREAD, cores=2) == 2
    assert threads_for_work(100 * WORK_PER_THREAD, cores=1) == 1


def test_the_zoos_small_fits_are_small_and_mnist_is_large():
    digits = VAERunConfig(dataset="digits", latent_dim=2)
    demo = VAERunConfig(dataset="digits", latent_dim=2, hidden_dims=(256,))
    for config in (digits, demo, PPCARunConfig()):
        assert threads_for_work(work_per_step(config), cores=16) == 1, config
    mnist = VAERunConfig(dataset="mnist")
    assert threads_for_work(work_per_step(mnist), cores=16) > 1
    conv = VAERunConfig(dataset="mnist", architecture="conv")
    assert threads_for_work(work_per_step(conv), cores=16) > 1


def test_a_config_without_known_sizes_has_no_estimate():
    assert work_per_step(object()) is None


def test_a_fit_sets_the_rules_count(cores):
    cores(4)
    torch.set_num_threads(3)
    assert set_fit_threads(PPCARunConfig(), CPU) == 1
    assert torch.get_num_threads() == 1
    assert set_fit_threads(VAERunConfig(dataset="mnist"), CPU) == 4
    assert torch.get_num_threads() == 4


def test_the_count_does_not_follow_the_machines_load(cores):
    # Torch's reductions split by thread count: a count that followed the load
    # would change a fit's numbers from one run of the same command to the next.
    cores(4, load=2.7)
    assert set_fit_threads(VAERunConfig(dataset="mnist"), CPU) == 4
    cores(4, load=0.0)
    assert set_fit_threads(VAERunConfig(dataset="mnist"), CPU) == 4


def test_a_gpu_fit_or_an_unknown_config_leaves_the_count(cores):
    cores(4)
    torch.set_num_threads(3)
    assert set_fit_threads(PPCARunConfig(), torch.device("cuda")) is None
    assert set_fit_threads(object(), CPU) is None
    assert torch.get_num_threads() == 3


# The user's choice wins.


@pytest.mark.parametrize("name", THREAD_VARIABLES)
def test_the_environment_is_respected(monkeypatch, name):
    monkeypatch.setenv(name, "3")
    torch.set_num_threads(3)
    assert user_chose()
    assert set_fit_threads(PPCARunConfig(), CPU) is None
    assert torch.get_num_threads() == 3


def test_an_empty_variable_is_no_choice(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "")
    assert not user_chose()


def test_the_commands_choice_holds_for_its_fits_and_is_undone():
    torch.set_num_threads(2)
    with command_threads(3):
        # A demo's fits come inside the command: the rule would pick one thread.
        assert set_fit_threads(PPCARunConfig(), CPU) is None
        assert torch.get_num_threads() == 3
    assert torch.get_num_threads() == 2


def test_fit_without_a_choice_uses_the_rule_and_gives_the_count_back(
    monkeypatch, tmp_path, cores
):
    cores(4)
    torch.set_num_threads(3)
    seen = threads_during_fit(monkeypatch, "ppca")
    assert main(["fit", "ppca", "--out", str(tmp_path / "run")]) == 0
    assert seen == [1]
    assert torch.get_num_threads() == 3


def test_fit_of_a_large_model_gets_more_threads(monkeypatch, tmp_path, cores):
    cores(4)
    torch.set_num_threads(1)
    seen = threads_during_fit(monkeypatch, "vae")
    assert main(["fit", "vae", "--out", str(tmp_path / "run")]) == 0
    assert seen == [4]


def test_fit_respects_omp_num_threads(monkeypatch, tmp_path, cores):
    cores(4)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    torch.set_num_threads(3)  # as torch read it when it started
    seen = threads_during_fit(monkeypatch, "ppca")
    assert main(["fit", "ppca", "--out", str(tmp_path / "run")]) == 0
    assert seen == [3]


def test_threads_option_sets_the_count_for_the_fit(monkeypatch, tmp_path):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the option wins over it too
    torch.set_num_threads(1)
    seen = threads_during_fit(monkeypatch, "ppca")
    status = main(["fit", "ppca", "--out", str(tmp_path / "run"), "--threads", "3"])
    assert status == 0 and seen == [3]
    assert torch.get_num_threads() == 1


def test_demo_threads_option_holds_for_the_demo(monkeypatch, tmp_path):
    torch.set_num_threads(1)
    seen: list[int] = []
    monkeypatch.setattr(
        sys.modules["ppl_models.cli.main"],
        "run_demo",
        lambda out, device: seen.append(torch.get_num_threads()),
    )
    assert main(["demo", "--out", str(tmp_path / "demo"), "--threads", "2"]) == 0
    assert seen == [2] and torch.get_num_threads() == 1


@pytest.mark.parametrize("command", [["criticize", "DIR"], ["evaluate", "DIR"]])
def test_criticize_and_evaluate_take_threads(command):
    args, _ = build_parser().parse_known_args([*command, "--threads", "2"])
    assert args.threads == 2


def test_evaluate_help_lists_threads(capsys):
    assert main(["evaluate", "--help"]) == 0
    assert "--threads N" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", ""])
@pytest.mark.parametrize(
    "command",
    [["fit", "ppca", "--out", "DIR"], ["criticize", "DIR"], ["evaluate", "DIR"]]
    + [["demo", "--out", "DIR"]],
)
def test_a_bad_thread_count_is_refused_in_one_line(capsys, tmp_path, command, value):
    torch.set_num_threads(1)
    argv = [str(tmp_path / "d") if arg == "DIR" else arg for arg in command]
    assert main([*argv, "--threads", value]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert "--threads" in err and "positive integer" in err
    assert torch.get_num_threads() == 1
    assert not (tmp_path / "d").exists()


# Importing is not choosing.


def test_importing_the_zoo_leaves_torchs_thread_count():
    code = (
        "import torch; torch.set_num_threads(3); "
        "import ppl_models, ppl_models.threads; "
        "from ppl_models.cli.main import build_parser; build_parser(); "
        "print(torch.get_num_threads())"
    )
    # The fixture took the thread variables out of the environment it inherits.
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "3"


def test_processes_started_together_share_the_cores(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    from ppl_models.threads import available_cores

    assert available_cores() == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # as torchrun sets it
    assert available_cores() == 4
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
    assert available_cores() == 1
