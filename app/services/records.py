"""Checked records and their numeric matrix, built once per request.

The model input, the fallback keys and the drift window each need a request's values as a
float64 array (in their own column order). ``Batch`` is the list of checked records (it is a
``list``, so everything taking records still does) that also keeps that matrix once built;
``matrix`` gives any caller the columns it needs, from the batch's matrix when it has one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
from numpy.typing import NDArray


class Batch(list[dict[str, Any]]):
    """Records that passed the input checks, with ``names`` the manifest's feature order.

    ``numeric``: every feature is numeric, so the records have one float64 matrix. The input
    validator builds every record with its keys in ``names`` order (pydantic-core writes a
    ``TypedDict`` in field order), so the matrix is read from the values in one pass.
    """

    def __init__(
        self,
        records: Iterable[dict[str, Any]],
        names: Sequence[str],
        numeric: bool,
        matrix: NDArray[np.float64] | None = None,
    ) -> None:
        super().__init__(records)
        self.names = tuple(names)
        self.numeric = numeric
        self._matrix = matrix if numeric else None  # given when the caller has it already
        self._index: dict[str, int] | None = None

    @classmethod
    def joined(cls, parts: Sequence[Batch]) -> Batch:
        """One batch of the records of ``parts`` (same features), in order."""
        first = parts[0]
        batch = cls([record for part in parts for record in part], first.names, first.numeric)
        matrices = [part._matrix for part in parts]
        if first.numeric and all(m is not None for m in matrices):
            batch._matrix = np.vstack(matrices)  # type: ignore[arg-type]
        return batch

    def columns(self, names: Sequence[str]) -> NDArray[np.float64] | None:
        """The float64 values of ``names``, one row per record, or None when this batch has no
        matrix (a categorical feature) or lacks one of the names."""
        if not self.numeric:
            return None
        if self._matrix is None:
            self._matrix = self._values()
        if tuple(names) == self.names:
            return self._matrix
        if self._index is None:
            self._index = {name: i for i, name in enumerate(self.names)}
        try:
            return self._matrix[:, [self._index[name] for name in names]]
        except KeyError:
            return None

    def _values(self) -> NDArray[np.float64]:
        if not self or tuple(self[0]) != self.names:  # not built by the validator: look up
            return build_matrix(self, self.names)
        values = chain.from_iterable(map(dict.values, self))
        count = len(self) * len(self.names)
        return np.fromiter(values, np.float64, count).reshape(len(self), len(self.names))


def matrix(records: Sequence[Mapping[str, Any]], names: Sequence[str]) -> NDArray[np.float64]:
    """The values of ``names`` (all numeric) as float64 rows, one per record."""
    if isinstance(records, Batch):
        shared = records.columns(names)
        if shared is not None:
            return shared
    return build_matrix(records, names)


def build_matrix(
    records: Sequence[Mapping[str, Any]], names: Sequence[str]
) -> NDArray[np.float64]:
    values = list(map(value_getter(tuple(names)), records))
    return np.array(values, np.float64).reshape(len(records), len(names))


@lru_cache(maxsize=32)  # a worker serves one model (two during a reload): few name tuples
def value_getter(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A function giving a record's values of ``names`` as a tuple, in that order: for a few
    records, cheaper than a matrix (numpy's fixed cost per call is several microseconds)."""
    if len(names) == 1:  # itemgetter of one name gives the value, not a 1-tuple
        name = names[0]
        return lambda record: (record[name],)
    if not names:
        return lambda record: ()
    return itemgetter(*names)
