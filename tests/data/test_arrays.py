"""A user's data file: read as a matrix, or refused with a message that says why."""

from __future__ import annotations

import numpy as np
import pytest

from ppl_models.data.arrays import load_array_file
from ppl_models.errors import DataError
from ppl_models.validation import as_data_matrix


def test_a_csv_and_a_whitespace_file_read_as_matrices(tmp_path):
    (tmp_path / "a.csv").write_text("# comment\n1,2\n3,4.5\n")
    (tmp_path / "b.txt").write_text("1 2\n3 4.5\n")
    expected = np.array([[1.0, 2.0], [3.0, 4.5]])
    assert np.array_equal(load_array_file(tmp_path / "a.csv"), expected)
    assert np.array_equal(load_array_file(tmp_path / "b.txt"), expected)


def test_a_directory_is_named_as_one(tmp_path):
    (tmp_path / "data.csv").mkdir()
    with pytest.raises(DataError, match=r"data\.csv is a directory, not a file$"):
        load_array_file(tmp_path / "data.csv")


@pytest.mark.parametrize("header", ["x1,x2", "# notes\nheight, weight"])
def test_a_header_row_is_named_with_the_way_out(tmp_path, header):
    path = tmp_path / "data.csv"
    path.write_text(f"{header}\n1,2\n3,4\n")
    with pytest.raises(DataError) as info:
        load_array_file(path)
    message = str(info.value)
    first = header.splitlines()[-1]
    assert message.startswith(f"cannot read data file {path}: ")
    assert message.endswith(
        f"; its first line ({first!r}) looks like a header: remove it or start it "
        "with #"
    )


def test_a_bad_value_below_numbers_gets_no_header_hint(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("1,2\n3,oops\n")
    with pytest.raises(DataError) as info:
        load_array_file(path)
    assert "oops" in str(info.value) and "header" not in str(info.value)


def test_a_matrix_without_columns_is_refused():
    with pytest.raises(DataError, match=r"^data has no columns: shape \(5, 0\)$"):
        as_data_matrix(np.zeros((5, 0)))
