"""What each rank runs in the data-parallel tests, launched by ``torchrun``:
``python -m torch.distributed.run --standalone --nproc-per-node 2
tests/distributed/worker.py SCENARIO OUT``. Each rank writes what the test compares
into OUT as ``SCENARIO-rank{R}.pt``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from ppl_models import distributed
from ppl_models.data import load_images
from ppl_models.data.batches import shard_indices
from ppl_models.errors import NumericalError
from ppl_models.io.checkpoint import load_checkpoint
from ppl_models.models.vae import fit_vae
from ppl_models.models.vae.evaluate import evaluate_bounds

SMALL = dict(epochs=2, batch_size=64, latent_dim=2, hidden_dims=(16,), seed=3,
             device="cpu", progress=False)  # fmt: skip


def digits():
    return load_images("digits", binarize="dynamic", device=torch.device("cpu"))


def trained(out: Path, rank: int) -> dict:
    """Two epochs straight, and one then one resumed: each rank's parameters."""
    straight = fit_vae(digits(), **SMALL, checkpoint_path=out / "straight.pt")
    fit_vae(digits(), **{**SMALL, "epochs": 1}, checkpoint_path=out / "half.pt")
    distributed.barrier()  # rank 0 has written the checkpoint
    record = load_checkpoint(out / "half.pt", "vae")
    resumed = fit_vae(digits(), **SMALL, resume_from=record)
    test = torch.cat([straight.data.test] * 4)  # 1188 images: blocks 0 to 2
    torch.manual_seed(5)
    sharded = evaluate_bounds(straight.vae, test, 3, shard=True)
    torch.manual_seed(5)
    whole = evaluate_bounds(straight.vae, test, 3)  # every block in this process
    return {
        "straight": straight.vae.state_dict(),
        "resumed": resumed.vae.state_dict(),
        "history": straight.history.train_elbo,
        "sharded": sharded,
        "whole": whole,
    }


def summed_gradients(rank: int, size: int) -> dict:
    """One epoch of a least-squares fit on shards of batch B per rank, and (on every
    rank) the same epoch in one process with batch size x B over the same order."""
    torch.manual_seed(0)
    x, y = torch.randn(50, 3), torch.randn(50)
    order = torch.randperm(50, generator=torch.Generator().manual_seed(7))
    batch = 4

    def model() -> torch.nn.Linear:
        torch.manual_seed(1)
        return torch.nn.Linear(3, 1)

    def step(net, optimizer, indices) -> None:
        optimizer.zero_grad()
        loss = (net(x[indices]).squeeze(-1) - y[indices]).square().sum()
        loss.backward()
        optimizer.step()

    net = model()
    ddp = distributed.data_parallel(net)  # as the training loop wraps an ELBO
    optimizer = torch.optim.SGD(ddp.parameters(), lr=1e-3)
    mine = shard_indices(50, rank, size, order)
    for indices in mine.split(batch):
        step(ddp, optimizer, indices)
    one = model()
    one_optimizer = torch.optim.SGD(one.parameters(), lr=1e-3)
    everyone = torch.stack([shard_indices(50, r, size, order) for r in range(size)])
    for k in range(0, everyone.shape[1], batch):
        step(one, one_optimizer, everyone[:, k : k + batch].reshape(-1))
    return {"data_parallel": net.state_dict(), "one_process": one.state_dict()}


def nonfinite(out: Path, rank: int) -> dict:
    """A clean first epoch, then a resumed one in which rank 1's images are NaN."""
    fit_vae(digits(), **{**SMALL, "epochs": 1}, checkpoint_path=out / "nan.pt")
    distributed.barrier()
    if rank == 1:  # its batches turn NaN from the third on, as a fault would
        import ppl_models.models.vae.train as train

        shards = train.shard_batches

        def faulty(*args, **kwargs):
            for k, batch in enumerate(shards(*args, **kwargs)):
                yield batch if k < 2 else torch.full_like(batch, float("nan"))

        train.shard_batches = faulty
    record = load_checkpoint(out / "nan.pt", "vae")
    try:
        fit_vae(digits(), **SMALL, resume_from=record, checkpoint_path=out / "nan.pt")
    except NumericalError as error:
        return {"step": error.step, "message": str(error)}
    return {"step": None}


def killed(out: Path, rank: int) -> dict:
    """Rank 1 dies in its second epoch; rank 0 must not wait for it forever."""

    def die(history) -> None:
        if rank == 1:
            import os

            os._exit(3)

    fit_vae(digits(), **{**SMALL, "epochs": 3}, on_epoch_end=die)
    return {}


def main() -> None:
    scenario, out = sys.argv[1], Path(sys.argv[2])
    distributed.start("cpu")
    world = distributed.current()
    try:
        if scenario == "trained":
            result = {**trained(out, world.rank),
                      **summed_gradients(world.rank, world.size)}  # fmt: skip
        elif scenario == "nonfinite":
            result = nonfinite(out, world.rank)
        else:
            result = killed(out, world.rank)
        torch.save(result, out / f"{scenario}-rank{world.rank}.pt")
        # Leave together: gloo may abort a rank whose peer tears its connections
        # down while it still holds them.
        distributed.barrier()
    finally:
        distributed.stop()


if __name__ == "__main__":
    main()
