"""How the command line shows a summary's numbers: one readable line each, and
posterior predictive checks as an aligned table."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

#: a check whose p-value is this close to 0 or 1 is marked "extreme"
EXTREME = 0.05


def summary_lines(summary: Mapping[str, Any], keys: Sequence[str]) -> list[str]:
    """The entries of ``summary`` named in ``keys`` (where present), as lines to print.

    A number shows six significant digits; a per-epoch list, its last value; a dict
    of checks (``{name: {"observed": ..., "p_value": ...}}``), a count and a table.
    """
    lines = []
    for key in keys:
        if key not in summary:
            continue
        value = summary[key]
        if is_checks(value):
            extreme = sum(is_extreme(check["p_value"]) for check in value.values())
            lines.append(f"  {key}: {len(value)} checks, {extreme} extreme")
            lines += check_table(value)
        else:
            lines.append(f"  {key}: {format_value(value)}")
    return lines


def is_checks(value: Any) -> bool:
    """Whether ``value`` is a dict of predictive checks."""
    return (
        isinstance(value, Mapping)
        and bool(value)
        and all(isinstance(v, Mapping) and "p_value" in v for v in value.values())
    )


def is_extreme(p_value: float | None) -> bool:
    """A p-value within :data:`EXTREME` of 0 or 1."""
    return p_value is not None and (p_value <= EXTREME or p_value >= 1 - EXTREME)


def check_table(checks: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Statistic, observed value, p-value, and "extreme" where it is, aligned."""
    width = max(len("statistic"), *(len(name) for name in checks))
    lines = [f"    {'statistic':<{width}}  {'observed':>12}  {'p-value':>7}"]
    for name, check in checks.items():
        p_value = check["p_value"]
        shown = "n/a" if p_value is None else f"{p_value:.3f}"
        flag = "  extreme" if is_extreme(p_value) else ""
        observed = format_value(check.get("observed"))
        lines.append(f"    {name:<{width}}  {observed:>12}  {shown:>7}{flag}")
    return lines


def format_value(value: Any) -> str:
    """A number to six significant digits (ten where six would round it to 0 or
    ±1), a list by its last entry, ``None`` as "n/a" (a non-finite number in
    ``summary.json``); anything else as it is.
    """
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        shown = f"{value:.6g}"
        # A cosine of 0.9999996 is not 1: keep the digits that tell them apart.
        return f"{value:.10g}" if float(shown) in (-1.0, 0.0, 1.0) else shown
    if isinstance(value, list) and value and not isinstance(value[0], list):
        last = format_value(value[-1])
        return last if len(value) == 1 else f"{last} (last of {len(value)})"
    return str(value)
