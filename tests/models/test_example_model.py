"""The README's "Adding a model" tells the truth about its worked example: the line
count it quotes, and the code it shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "tests" / "models" / "example_model.py"


def adding_a_model() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Adding a model")
    return readme[start : readme.index("\n## ", start + 1)]


def test_the_example_is_at_most_80_lines_and_the_readme_says_how_many():
    lines = len(EXAMPLE.read_text().splitlines())
    assert lines <= 80
    assert f"took **{lines} lines**" in adding_a_model()


def test_the_readme_shows_the_examples_own_code():
    blocks = re.findall(r"```python\n(.*?)```", adding_a_model(), re.DOTALL)
    assert blocks, "the section shows no code"
    source = {line.rstrip() for line in EXAMPLE.read_text().splitlines()}
    shown = [line.rstrip() for line in blocks[0].splitlines()]
    missing = [line for line in shown if line and not line.startswith("# ")]
    missing = [line for line in missing if line not in source]
    if missing:
        pytest.fail(f"README lines not in {EXAMPLE.name}: {missing}")
