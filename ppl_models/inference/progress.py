"""A progress bar that reads the loss from the device only a few times a second."""

from __future__ import annotations

import time

import torch
from tqdm.auto import tqdm


class LossProgress:
    """tqdm over ``total`` steps whose loss display costs a host sync at most
    ``1 / min_interval`` times a second; silent when output is not a terminal.
    """

    def __init__(self, total: int, desc: str, *, enabled: bool | None = None):
        # disable=None lets tqdm switch itself off when stderr is not a TTY.
        disable = None if enabled is None else not enabled
        self.bar = tqdm(total=total, desc=desc, disable=disable, leave=False)
        self.min_interval = 0.5
        self._last = 0.0

    def update(self, loss: torch.Tensor, steps: int = 1, per: int = 1) -> None:
        """Advance by ``steps``; show ``loss / per`` (``loss`` 0-dim) if enough time
        has passed. The division happens only then, so a hidden bar costs the
        device nothing.
        """
        self.bar.update(steps)
        now = time.monotonic()
        if not self.bar.disable and now - self._last >= self.min_interval:
            self._last = now
            self.bar.set_postfix(loss=f"{float(loss) / per:.4g}", refresh=False)

    def close(self) -> None:
        """Close the bar."""
        self.bar.close()

    def __enter__(self) -> LossProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
