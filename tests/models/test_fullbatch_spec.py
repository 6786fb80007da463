"""The full-batch base's smoke options: every kind of setting becomes the command
line that sets it (a flag for True, values for a tuple, nothing for False)."""

from __future__ import annotations

from dataclasses import dataclass

from ppl_models.fullbatch import FullBatchConfig, FullBatchSpec
from ppl_models.settings import setting


@dataclass
class Kinds(FullBatchConfig):
    verbose: bool = setting(False, "a flag")
    quiet: bool = setting(False, "another flag")
    widths: tuple[int, ...] = setting((4,), "layer widths", flag="--width")
    size: float = setting(1.0, "a number")


class KindsSpec(FullBatchSpec):  # not registered: only its smoke options are used
    config_class = Kinds
    smoke_settings = {
        "verbose": True, "quiet": False, "widths": (8, 2), "size": 0.5, "steps": 3
    }  # fmt: skip


def test_smoke_settings_become_the_options_that_set_them():
    args = KindsSpec.smoke_fit_args()
    assert args == ["--verbose", "--width", "8", "2", "--size", "0.5", "--steps", "3"]
