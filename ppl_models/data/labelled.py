"""Labelled points for a classifier: scikit-learn's bundled sets or a user's file,
checked, split into train and held-out points and standardized; and the settings
that choose them (:class:`LabelledDataSettings`, a config mixin)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import torch

from ppl_models.data.arrays import load_array_file
from ppl_models.errors import DataError, UsageError
from ppl_models.settings import setting
from ppl_models.validation import as_data_matrix

S = TypeVar("S", bound="LabelledDataSettings")

#: the bundled data sets (none needs a download): name -> number of classes
DATASETS = {"breast_cancer": 2, "wine": 3, "digits": 10}


def load(
    dataset: str | None, path: Path | None, label_column: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (N, D) float32 and labels (N,) int64 in 0..K-1, K >= 2, every class
    present: from ``path`` (labels in ``label_column``, default the last) if given,
    else the bundled ``dataset``.

    :raises DataError: for labels that are not integers 0..K-1, a class with no
        examples, fewer than 2 classes, no features, NaN or infinite values.
    """
    if path is None:
        import sklearn.datasets

        x, y = getattr(sklearn.datasets, f"load_{dataset}")(return_X_y=True)
        return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y)
    table = as_data_matrix(load_array_file(path), f"data file {path}").double()
    column = table.shape[1] - 1 if label_column is None else label_column
    if not 0 <= column < table.shape[1] or table.shape[1] < 2:
        raise DataError(
            f"label column {column} is not among the {table.shape[1]} columns of "
            f"{path}, or no feature column is left"
        )
    labels = table[:, column]
    if (labels != labels.round()).any() or labels.min() < 0:
        bad = labels[(labels != labels.round()) | (labels < 0)][0]
        raise DataError(
            f"labels (column {column}) must be integers 0..K-1, got {float(bad):g}"
        )
    y = labels.long()
    counts = torch.bincount(y)
    if len(counts) < 2 or (counts == 0).any():
        missing = (counts == 0).nonzero().flatten().tolist()
        raise DataError(
            f"labels (column {column}) must name K >= 2 classes 0..K-1, each with an "
            f"example: got {len(counts)} class(es)"
            + (f", none of class {missing}" if missing else "")
        )
    keep = [c for c in range(table.shape[1]) if c != column]
    return table[:, keep].float(), y


def split(
    x: torch.Tensor, y: torch.Tensor, test_fraction: float
) -> tuple[torch.Tensor, ...]:
    """A random held-out split (from torch's generator: seed it first), standardized
    with the train points' mean and sd (constant features left at zero).

    :returns: ``x_train, y_train, x_test, y_test, mean, sd``.
    :raises UsageError: if a split would be empty or lack a class.
    """
    if not 0 < test_fraction < 1:
        raise UsageError(f"test_fraction={test_fraction}: must be between 0 and 1")
    n = len(y)
    n_test = int(round(test_fraction * n))
    if not 1 <= n_test <= n - 2:
        raise UsageError(
            f"test_fraction={test_fraction} of {n} points leaves {n_test} held out "
            f"and {n - n_test} to train on: each needs at least 1 (train 2)"
        )
    order = torch.randperm(n)
    test, train = order[:n_test], order[n_test:]
    num_classes = int(y.max()) + 1
    if len(torch.unique(y[train])) < num_classes:
        raise UsageError(
            f"the train split (seed's draw, test_fraction={test_fraction}) has no "
            "example of some class: lower test_fraction or try another seed"
        )
    mean, sd = x[train].mean(dim=0), x[train].std(dim=0)
    sd = torch.where(sd > 0, sd, torch.ones_like(sd))
    standard = (x - mean) / sd
    return standard[train], y[train], standard[test], y[test], mean, sd


@dataclass
class LabelledDataSettings:
    """A classifier's data settings, to mix into its config:
    ``class MyConfig(FullBatchConfig, LabelledDataSettings)``."""

    dataset: str | None = setting(
        "breast_cancer",
        "scikit-learn's bundled data (no download): breast_cancer (2 classes), wine "
        "(3) or digits (10); ignored with --data",
        choices=tuple(DATASETS),
    )
    data: Path | None = setting(
        None,
        "a .npy or .csv file, one row per point, features and an integer label 0..K-1",
    )
    label_column: int | None = setting(
        None, "the file's label column, from 0 (default: the last)", low=0
    )
    test_fraction: float = setting(0.2, "the share of points held out (a seeded draw)")
    num_classes: int | None = setting(
        None, "K: taken from the labels; a run records it", low=2
    )

    def with_classes(self: S) -> S:
        """The settings a run records: K from the labels (loaded only for a user's
        file), no dataset name beside a file.

        :raises UsageError: if ``num_classes`` was given and the labels have
            another K.
        """
        if self.data is None:
            k = DATASETS[self.dataset]
        else:
            k = int(load(None, self.data, self.label_column)[1].max()) + 1
        if self.num_classes not in (None, k):
            raise UsageError(f"num_classes={self.num_classes}, but the labels have {k}")
        dataset = None if self.data else self.dataset
        return replace(self, num_classes=k, dataset=dataset)

    def split_points(self) -> tuple[torch.Tensor, ...]:
        """:func:`load` then :func:`split`: ``x_train, y_train, x_test, y_test, mean,
        sd``, x (N, D) float32 and y (N,) int64."""
        x, y = load(self.dataset, self.data, self.label_column)
        return split(x, y, self.test_fraction)
