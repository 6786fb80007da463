"""Training a VAE epoch by epoch: the settings' checks, the numbers each epoch
records, which checkpoints are written and what they hold, the progress bar, the
evaluation's own random stream, resuming, and the message that stops a run on NaN;
on the 8x8 digits with a small VAE."""

from __future__ import annotations

import logging
import shutil
import warnings
from dataclasses import asdict, replace
from types import SimpleNamespace

import pytest
import torch

from ppl_models.data import load_images
from ppl_models.errors import NumericalError, UsageError
from ppl_models.inference import trainer as shared
from ppl_models.io.checkpoint import load_checkpoint
from ppl_models.models.vae import VAE, TrainSettings, VAEConfig, state, train, train_vae
from ppl_models.models.vae.config import VAERunConfig
from ppl_models.models.vae.fit import VAEFit
from ppl_models.models.vae.history import History
from ppl_models.models.vae.state import checkpoint_payload
from tests.conftest import TEST_DEVICE, assert_same_parameters, interrupt_at

NUM_TRAIN = 300  # the first 300 training digits (three steps an epoch), 100 test
BATCH_SIZES = [128, 128, 44]
STEPS_PER_EPOCH = len(BATCH_SIZES)
SETTINGS = dict(epochs=3, batch_size=128, lr=2e-3, seed=3, checkpoint_every=2)


@pytest.fixture(scope="module")
def digits(device):
    data = load_images("digits", binarize="threshold", device=device)
    return replace(
        data,
        train=data.train[:NUM_TRAIN],
        train_labels=data.train_labels[:NUM_TRAIN],
        test=data.test[:100],
        test_labels=data.test_labels[:100],
    )


def small_vae(device: torch.device | str = TEST_DEVICE) -> VAE:
    torch.manual_seed(0)
    config = VAEConfig(image_shape=(8, 8), latent_dim=2, hidden_dims=(16,))
    return VAE(config).to(device)


class RecordingBar:
    """Stands in for the progress bar and keeps what it was asked to show."""

    bars: list[dict] = []

    def __init__(self, total, desc, *, enabled=None, log_every=None):
        self.shown: list[float] = []
        self.bars.append(
            dict(total=total, desc=desc, enabled=enabled, shown=self.shown)
        )

    def update(self, loss, steps=1, per=1):
        self.shown.append(float(loss) / per)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    """Three epochs, a checkpoint every second one, recording every step's loss, the
    progress bars and, after each epoch, which epoch the checkpoint on disk holds."""
    path = tmp_path_factory.mktemp("run") / "checkpoint.pt"
    losses, on_disk = [], []
    real_step = shared.svi_step

    def step(*args, **kwargs):
        loss = real_step(*args, **kwargs)
        losses.append(float(loss))
        return loss

    def after_epoch(history):
        on_disk.append(
            load_checkpoint(path, "vae")["epoch"] if path.is_file() else None
        )
        if history.epochs_done == 2:
            shutil.copy(path, path.with_name("epoch2.pt"))

    class Bar(RecordingBar):
        bars = []

    class Lines(logging.Handler):
        lines = []

        def emit(self, record):
            self.lines.append(record.getMessage())

    vae = small_vae(digits.device)
    lines = Lines(logging.INFO)
    logger = logging.getLogger("ppl_models")
    level = logger.level
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(shared, "svi_step", step)
            patch.setattr(shared, "LossProgress", Bar)
            history = train_vae(
                vae,
                digits,
                TrainSettings(**SETTINGS),
                progress=True,
                checkpoint_path=path,
                on_epoch_end=after_epoch,
            ).history
    finally:
        logger.removeHandler(lines)
        logger.setLevel(level)
    return SimpleNamespace(vae=vae, history=history, path=path, losses=losses,
                           bars=Bar.bars, on_disk=on_disk, log=Lines.lines,
                           epoch2=path.with_name("epoch2.pt"))  # fmt: skip


def test_each_epoch_logs_one_line_with_its_elbos_and_seconds(trained):
    history = trained.history
    assert trained.log == [
        f"epoch {epoch + 1}/3: train ELBO {history.train_elbo[epoch]:.2f}, test ELBO "
        f"{history.test_elbo[epoch]:.2f} nats per image, "
        f"{history.train_seconds[epoch]:.1f} s"
        for epoch in range(3)
    ]


# The whole message: a user reads it to learn which setting is wrong.
@pytest.mark.parametrize("setting,value,message", [
    ("epochs", 0, "epochs must be a positive integer, got 0"),
    ("batch_size", -1, "batch_size must be a positive integer, got -1"),
    ("num_particles", 0, "num_particles must be a positive integer, got 0"),
    ("lr", 0.0, "lr must be a positive finite number, got 0.0"),
    ("clip_grad", -1.0, "clip_grad must be a positive finite number, got -1.0"),
    ("checkpoint_every", 0, "checkpoint_every must be a positive integer, got 0"),
    ("check_every", 0, "check_every must be a positive integer, got 0"),
    ("compile", "fast", "unknown compile mode 'fast': expected one of default, "
                        "reduce-overhead, max-autotune"),
])  # fmt: skip
def test_a_bad_setting_is_refused_with_its_name(setting, value, message):
    with pytest.raises(UsageError) as error:
        TrainSettings(**{setting: value})
    assert str(error.value) == message


def test_no_clipping_is_the_default_and_a_positive_clip_is_kept():
    assert TrainSettings().clip_grad is None
    assert TrainSettings(clip_grad=2.5).clip_grad == 2.5


class Stop(Exception):
    """Ends a run once the objective has been built."""


def test_the_settings_choose_the_objective(digits, monkeypatch):
    seen = {}

    def record(model, guide, elbo, *args, compile=None):
        seen.update(model=model, guide=guide, compile=compile,
                    elbo=type(elbo).__name__, particles=elbo.num_particles)  # fmt: skip
        raise Stop

    monkeypatch.setattr(train, "make_objective", record)
    vae = small_vae(digits.device)
    settings = TrainSettings(elbo="meanfield", num_particles=3, compile="max-autotune")
    with pytest.raises(Stop):
        train_vae(vae, digits, settings, progress=False)
    assert seen == dict(model=vae.model, guide=vae.guide, compile="max-autotune",
                        elbo="DeviceTraceMeanField_ELBO", particles=3)  # fmt: skip


def test_checkpoints_are_written_every_n_epochs_and_at_the_last(trained):
    # checkpoint_every=2 over 3 epochs: none after the first, then the second, then
    # the last, which is always saved.
    assert trained.on_disk == [None, 2, 3]


def test_the_checkpoint_holds_the_run_as_it_ended(trained):
    record = load_checkpoint(trained.path, "vae", trained.vae.device)
    assert record["epoch"] == 3
    assert record["config"] == trained.vae.config.to_dict()
    assert record["history"] == asdict(trained.history)
    assert_same_parameters(record["vae_state"], trained.vae.state_dict())
    # Adam ran at the asked learning rate, for every step of the three epochs.
    (group,) = record["optimizer_state"]["param_groups"]
    assert group["lr"] == SETTINGS["lr"]
    steps = {int(s["step"]) for s in record["optimizer_state"]["state"].values()}
    assert steps == {3 * STEPS_PER_EPOCH}


def test_each_epochs_train_elbo_is_minus_its_mean_loss_per_image(trained):
    # Each step's loss is its batch's negative ELBO summed over the images.
    assert len(trained.losses) == 3 * STEPS_PER_EPOCH
    for epoch, elbo in enumerate(trained.history.train_elbo):
        losses = trained.losses[epoch * STEPS_PER_EPOCH : (epoch + 1) * STEPS_PER_EPOCH]
        assert elbo == pytest.approx(-sum(losses) / NUM_TRAIN, rel=1e-5)
    assert trained.history.train_images == 3 * NUM_TRAIN
    assert len(trained.history.train_seconds) == 3


def test_each_epochs_test_elbo_is_the_seeded_one_sample_elbo(trained, digits):
    # The number recorded while training is the one `evaluate` gives for the same
    # model and seed with one sample per image.
    history = trained.history
    fit = VAEFit(
        trained.vae, digits, TrainSettings(**SETTINGS), history, VAERunConfig()
    )
    bounds = fit.evaluate(iwae_samples=1, seed=SETTINGS["seed"])
    assert history.test_elbo[2] == pytest.approx(bounds["elbo"], rel=1e-6)
    second = small_vae(digits.device)
    second.load_state_dict(load_checkpoint(trained.epoch2, "vae")["vae_state"])
    fit = VAEFit(second, digits, TrainSettings(**SETTINGS), history, VAERunConfig())
    bounds = fit.evaluate(iwae_samples=1, seed=SETTINGS["seed"])
    assert history.test_elbo[1] == pytest.approx(bounds["elbo"], rel=1e-6)


def test_evaluate_leaves_the_callers_random_state_as_it_was(trained, digits):
    fit = VAEFit(
        trained.vae, digits, TrainSettings(**SETTINGS), trained.history, VAERunConfig()
    )
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = fit.evaluate(iwae_samples=2, num_images=50, seed=1)
    assert torch.equal(torch.rand(3), expected_next)
    assert fit.evaluate(iwae_samples=2, num_images=50, seed=1) == first


def test_the_progress_bar_counts_the_steps_and_shows_the_loss_per_image(trained):
    bars = trained.bars
    assert [(b["total"], b["desc"], b["enabled"]) for b in bars] == [
        (STEPS_PER_EPOCH, f"epoch {e}/3", True) for e in (1, 2, 3)
    ]
    shown = [value for bar in bars for value in bar["shown"]]
    per_image = [
        loss / n for loss, n in zip(trained.losses, BATCH_SIZES * 3, strict=True)
    ]
    assert shown == pytest.approx(per_image, rel=1e-6)


def nan_from_call(module: torch.nn.Module, start: int) -> None:
    """Make ``module`` output NaN from its ``start``-th training call on (a hook, so
    the state dict keeps its keys and a checkpoint still loads)."""
    calls = [0]

    def hook(module, args, output):
        if torch.is_grad_enabled():
            calls[0] += 1
            if calls[0] >= start:
                return output * float("nan")
        return output

    module.register_forward_hook(hook)


def test_a_nan_after_resuming_is_reported_at_its_step_in_the_whole_run(
    trained, digits, tmp_path
):
    # Steps count on from the checkpoint's epoch: the second step after resuming at
    # the end of epoch 2 is step 2 * 3 + 2 of the run. With check_every=2 the watch
    # is read within the epoch, right after that step.
    path = tmp_path / "checkpoint.pt"
    shutil.copy(trained.epoch2, path)
    record = load_checkpoint(path, "vae", trained.vae.device)
    vae = small_vae(trained.vae.device)
    nan_from_call(vae.model.decoder, 2)
    settings = TrainSettings(**{**SETTINGS, "epochs": 4, "check_every": 2})
    with pytest.raises(NumericalError) as error:
        train_vae(vae, digits, settings, resume_from=record,
                  checkpoint_path=path, progress=False)  # fmt: skip
    message = str(error.value)
    assert f"at step {2 * STEPS_PER_EPOCH + 2} (epoch 3);" in message
    assert "x (model)" in message
    assert message.endswith(f"; the last checkpoint, {path}, is intact")
    assert load_checkpoint(path, "vae")["epoch"] == 2


def test_ctrl_c_after_a_saved_epoch_keeps_that_checkpoint(digits, tmp_path):
    # Interrupted in epoch 2, after epoch 1 was saved: that checkpoint stays as it
    # was, loadable, and nothing else is written over it.
    path = tmp_path / "checkpoint.pt"
    vae = small_vae(digits.device)
    interrupt_at(vae.model.decoder, STEPS_PER_EPOCH + 2)  # inside epoch 2
    settings = TrainSettings(epochs=2, batch_size=128, checkpoint_every=1)
    with pytest.raises(KeyboardInterrupt):
        train_vae(vae, digits, settings, checkpoint_path=path, progress=False)
    record = load_checkpoint(path, "vae")
    assert record["epoch"] == 1 and len(record["history"]["train_elbo"]) == 1


def test_ctrl_c_in_the_first_epoch_leaves_no_checkpoint(digits, tmp_path):
    path = tmp_path / "checkpoint.pt"
    vae = small_vae(digits.device)
    interrupt_at(vae.model.decoder, 2)
    with pytest.raises(KeyboardInterrupt):
        train_vae(vae, digits, TrainSettings(epochs=2), checkpoint_path=path,
                  progress=False)  # fmt: skip
    assert not path.exists()


def test_ctrl_c_without_a_checkpoint_path_just_stops(digits):
    def interrupt(history):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_vae(small_vae(digits.device), digits, TrainSettings(epochs=2),
                  progress=False, on_epoch_end=interrupt)  # fmt: skip


def test_warnings_raised_during_training_still_reach_the_user(digits):
    # Only Pyro's per-step NaN warnings are silenced while training, not others.
    def warn(history):
        warnings.warn("disk almost full", UserWarning, stacklevel=1)

    with pytest.warns(UserWarning, match="disk almost full"):
        train_vae(small_vae(digits.device), digits, TrainSettings(epochs=1),
                  progress=False, on_epoch_end=warn)  # fmt: skip


def stop_message(vae, checkpoint_path=None) -> str:
    """The message of a NaN at step 2, in epoch 1, found on a batch of zeros."""
    x = torch.zeros(4, 64).to(vae.device)
    return str(train._nonfinite_error(vae, [x], 2, 1, checkpoint_path))


def test_the_error_carries_its_step_and_says_when_no_step_was_flagged():
    vae, x = small_vae("cpu"), torch.zeros(4, 64)
    assert train._nonfinite_error(vae, [x], 2, 1, None).step == 2
    # Parameters found not finite after a step whose loss and gradient were finite.
    error = train._nonfinite_error(vae, [], None, 3, None)
    assert error.step is None
    assert str(error).startswith(
        "the loss or its gradient became NaN or infinite after a step (epoch 3); "
        "non-finite log-probabilities at sites: none on the current batch;"
    )


def test_a_nan_with_finite_parameters_and_sites_says_so(tmp_path):
    message = stop_message(small_vae("cpu"), tmp_path / "not-written-yet.pt")
    assert message == (
        "the loss or its gradient became NaN or infinite at step 2 (epoch 1); "
        "non-finite log-probabilities at sites: none on the current batch; "
        "non-finite parameters: none; try a lower --lr or --clip-grad"
    )


@pytest.mark.parametrize("num_bad", [5, 6])
def test_a_nan_message_lists_the_sites_and_at_most_five_parameters(num_bad, tmp_path):
    vae = small_vae("cpu")
    names = [name for name, _ in vae.named_parameters()]
    with torch.no_grad():
        for value in list(vae.parameters())[:num_bad]:
            value.fill_(float("nan"))
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"a checkpoint")
    message = stop_message(vae, path)
    # The encoder's first layer is among the NaN parameters: every site is NaN.
    more = " ..." if num_bad > 5 else ""
    assert message == (
        "the loss or its gradient became NaN or infinite at step 2 (epoch 1); "
        "non-finite log-probabilities at sites: z (guide), z (model), x (model); "
        f"non-finite parameters: {', '.join(names[:5])}{more}; try a lower --lr or "
        f"--clip-grad; the last checkpoint, {path}, is intact"
    )


@pytest.mark.parametrize("num_bad", [0, 5, 6])
def test_weights_that_give_no_finite_elbo_are_never_checkpointed(
    num_bad, digits, tmp_path, monkeypatch
):
    # The watch sees losses and gradients; the weights a step leaves are checked
    # before each checkpoint, here in epoch 2, after epoch 1's was written.
    vae = small_vae(digits.device)
    names = [name for name, _ in vae.named_parameters()]
    evaluate = train.held_out_elbo

    def ruined_in_epoch_two(model, data, seed):
        if len(calls) == 1:
            with torch.no_grad():
                for value in list(model.parameters())[:num_bad]:
                    value.fill_(float("nan"))
            calls.append("ruined")
            return float("nan")
        calls.append("fine")
        return evaluate(model, data, seed)

    calls: list[str] = []
    monkeypatch.setattr(train, "held_out_elbo", ruined_in_epoch_two)
    path = tmp_path / "checkpoint.pt"
    settings = TrainSettings(**{**SETTINGS, "checkpoint_every": 1})
    with pytest.raises(NumericalError) as error:
        train_vae(vae, digits, settings, checkpoint_path=path, progress=False)
    # At most five named; " ..." says there are more.
    listed = ", ".join(names[: min(num_bad, 5)]) + (" ..." if num_bad > 5 else "")
    listed = listed or "none"
    assert str(error.value) == (
        "after epoch 2 the weights give a held-out ELBO of nan; non-finite "
        f"parameters: {listed}; try a lower --lr or --clip-grad; the last "
        f"checkpoint, {path}, is intact"
    )
    assert load_checkpoint(path, "vae")["epoch"] == 1


def test_evaluation_leaves_the_training_random_stream_alone(digits):
    vae = small_vae(digits.device)
    on_cuda = digits.device.type == "cuda"
    cpu_state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state(digits.device) if on_cuda else None
    first = train.held_out_elbo(vae, digits, seed=0)
    assert torch.equal(torch.get_rng_state(), cpu_state)
    if on_cuda:
        assert torch.equal(torch.cuda.get_rng_state(digits.device), cuda_state)
    # Its draws come from the run's seed alone.
    assert train.held_out_elbo(vae, digits, seed=0) == first
    assert train.held_out_elbo(vae, digits, seed=1) != first


def test_a_payload_copies_its_tensors_only_when_asked():
    vae = small_vae("cpu")
    optimizer = torch.optim.Adam(vae.parameters())
    live = checkpoint_payload(vae, optimizer, History())
    kept = checkpoint_payload(vae, optimizer, History(), copy=True)
    before = {name: value.detach().clone() for name, value in vae.named_parameters()}
    with torch.no_grad():
        for value in vae.parameters():
            value.add_(1.0)
    # The plain payload is the model's own state, saved as it is now; the copy keeps
    # the state it was taken at while training goes on.
    assert_same_parameters(live["vae_state"], vae.state_dict())
    for name, value in before.items():
        assert torch.equal(kept["vae_state"][name], value), name


def test_a_checkpoint_without_gpu_random_state_restores_anywhere(device):
    vae = small_vae(device)
    history = History(train_elbo=[-50.0], test_elbo=[-51.0], train_seconds=[0.5],
                      train_images=NUM_TRAIN)  # fmt: skip
    payload = checkpoint_payload(vae, torch.optim.Adam(vae.parameters()), history,
                                 copy=True)  # fmt: skip
    payload["rng"] = {"torch": payload["rng"]["torch"]}  # as written without a GPU
    torch.rand(3)
    other = small_vae(device)
    restored = state.restore(other, torch.optim.Adam(other.parameters()), payload)
    assert restored == history
    assert torch.equal(torch.get_rng_state(), payload["rng"]["torch"])


def test_a_resume_with_no_epochs_left_keeps_the_state_to_go_on_from(digits, tmp_path):
    path = tmp_path / "checkpoint.pt"
    settings = TrainSettings(epochs=1)
    train_vae(small_vae(digits.device), digits, settings, checkpoint_path=path,
              progress=False)  # fmt: skip
    record = load_checkpoint(path, "vae", digits.device)
    trained = train_vae(small_vae(digits.device), digits, settings,
                        resume_from=record, progress=False)  # fmt: skip
    assert trained.history.epochs_done == 1
    assert trained.resume_state.keys() == {"optimizer_state", "rng"}
    assert torch.equal(trained.resume_state["rng"]["torch"], record["rng"]["torch"])


def test_the_vae_hands_its_settings_to_the_shared_loop(digits, monkeypatch):
    # What the epoch loop does with them is tested in tests/inference; here, that
    # the VAE passes them on: the NaN watch's interval, and the loss per image.
    from ppl_models.models.vae import train as vae_train

    seen = {}

    def spy(objective, optimizer, batches, epochs, steps_per_epoch, **options):
        seen.update(options)
        raise KeyboardInterrupt  # enough: nothing to train

    monkeypatch.setattr(vae_train, "train_epochs", spy)
    settings = TrainSettings(**{**SETTINGS, "check_every": 7, "clip_grad": 3.0})
    with pytest.raises(KeyboardInterrupt):
        train_vae(small_vae(digits.device), digits, settings, progress=False)
    assert seen["check_every"] == 7 and seen["max_grad_norm"] == 3.0
    assert seen["checkpoint_every"] == 2 and seen["progress"] is False
    assert seen["per"](torch.zeros(5, 64)) == 5
