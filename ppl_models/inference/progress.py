"""Progress: a bar on a terminal that reads the loss from the device only a few
times a second, and log lines where there is no terminal.

Log lines go to the ``ppl_models`` logger at INFO. The library configures no
logging; the command line shows them on stderr.
"""

from __future__ import annotations

import logging
import time

import torch
from tqdm.auto import tqdm

logger = logging.getLogger("ppl_models")


class LossProgress:
    """tqdm over ``total`` steps whose loss display costs a host sync at most
    ``1 / min_interval`` times a second.

    When tqdm switches itself off because stderr is not a terminal (``enabled`` is
    None), every ``log_every`` steps (None: never) the loss is logged instead, if
    the ``ppl_models`` logger shows INFO; otherwise the device is never read.
    """

    def __init__(
        self,
        total: int,
        desc: str,
        *,
        enabled: bool | None = None,
        log_every: int | None = None,
    ):
        # disable=None lets tqdm switch itself off when stderr is not a TTY.
        disable = None if enabled is None else not enabled
        self.bar = tqdm(total=total, desc=desc, disable=disable, leave=False)
        self.min_interval = 0.5
        self._last = 0.0
        logs = (
            enabled is None and self.bar.disable and logger.isEnabledFor(logging.INFO)
        )
        self.log_every = log_every if logs else None
        self.desc, self.total, self.done = desc, total, 0
        self._start = time.perf_counter()

    def update(self, loss: torch.Tensor, steps: int = 1, per: int = 1) -> None:
        """Advance by ``steps``; show ``loss / per`` (``loss`` 0-dim) if enough time
        has passed. The division happens only then, so a hidden bar costs the
        device nothing.
        """
        self.bar.update(steps)
        before, self.done = self.done, self.done + steps
        # A line every log_every steps, and one for the last step wherever it falls.
        if self.log_every and (
            before // self.log_every < self.done // self.log_every
            or self.done == self.total
        ):
            logger.info(
                "%s: step %d/%d, loss %.6g, %.1f s",
                self.desc,
                self.done,
                self.total,
                float(loss) / per,
                time.perf_counter() - self._start,
            )
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
