"""The README's "Adding a model" tells the truth about its worked example: the line
count it quotes, and the code it shows."""

from __future__ import annotations

import ast
import io
import re
import tokenize
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


def code_lines(path: Path) -> int:
    """Lines holding code: no docstring, comment or blank line."""
    source = path.read_text()
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        kinds = ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
        if isinstance(node, kinds) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.update(range(first.lineno, first.end_lineno + 1))
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
            tokenize.DEDENT, tokenize.ENDMARKER}  # fmt: skip
    lines = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skip:
            lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines - docstrings)


@pytest.mark.parametrize("name", ["logreg", "catvae"])
def test_the_readme_gives_the_newer_models_sizes_as_they_are(name):
    # "What the newer models cost": networks aside, as the sizes are quoted.
    package = ROOT / "ppl_models" / "models" / name
    files = [p for p in sorted(package.glob("*.py")) if p.name != "networks.py"]
    lines = sum(len(p.read_text().splitlines()) for p in files)
    code = sum(code_lines(p) for p in files)
    quoted = (
        f"`ppl_models/models/{name}/`, {lines} lines [{code}] in {len(files)} files"
    )
    assert quoted in " ".join(adding_a_model().split())
