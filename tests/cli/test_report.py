"""What the command line prints of a summary: readable numbers, and predictive
checks as an aligned table with the extreme ones marked."""

from __future__ import annotations

import pytest

from ppl_models.cli.report import check_table, format_value, summary_lines

CHECKS = {
    "variance of x1": {"observed": 9.632032394, "p_value": 1.0},
    "variance of x2": {"observed": 0.5809732675, "p_value": 0.756},
    "largest eigenvalue": {"observed": 9.962104797, "p_value": 0.03},
    "blank": {"observed": None, "p_value": None},
}


@pytest.mark.parametrize(
    "value, shown",
    [
        (10925.359375, "10925.4"),
        (0.00503131, "0.00503131"),
        (0.9999996491237781, "0.9999996491"),  # not "1"
        (-0.99999999, "-0.99999999"),
        (1.0, "1"),
        (2e-13, "2e-13"),
        (float("inf"), "inf"),
        (None, "n/a"),
        (True, "True"),
        (7, "7"),
        ([-120.5, -110.25, -105.125], "-105.125 (last of 3)"),
        ([-99.5], "-99.5"),
        ([[1.0, 2.0]], "[[1.0, 2.0]]"),
        ("cpu", "cpu"),
    ],
)
def test_format_value(value, shown):
    assert format_value(value) == shown


def test_checks_are_a_table_with_a_count_and_the_extreme_ones_marked():
    lines = summary_lines({"ppc": CHECKS, "other": 1.5}, ["ppc", "missing", "other"])
    assert lines == [
        "  ppc: 4 checks, 2 extreme",
        "    statistic               observed  p-value",
        "    variance of x1           9.63203    1.000  extreme",
        "    variance of x2          0.580973    0.756",
        "    largest eigenvalue        9.9621    0.030  extreme",
        "    blank                        n/a      n/a",
        "  other: 1.5",
    ]


@pytest.mark.parametrize(
    "p_value, extreme", [(0.05, True), (0.0501, False), (0.95, True), (0.9499, False)]
)
def test_extreme_means_within_five_percent_of_either_end(p_value, extreme):
    row = check_table({"t": {"observed": 1.0, "p_value": p_value}})[1]
    assert row.endswith("extreme") == extreme


def test_an_empty_dict_is_not_a_table():
    assert summary_lines({"notes": {}}, ["notes"]) == ["  notes: {}"]
