"""Class probabilities of a batch of records, kept as the model gave them.

A classifier answers a matrix: one row of floats per record, in the order of the manifest's
classes. Most requests do not ask for probabilities, yet the cache, the score histogram and
the drift window all read them; building a ``{class: probability}`` dict per record for each
request cost about half of the model call for 100 records. ``Probabilities`` keeps the rows and
reads as a sequence of those dicts, built only when one is read (the response when asked, the
prediction log, a batch job's output).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import overload


class Probabilities(Sequence[dict[str, float]]):
    """Per record, the probability of each of ``classes`` (``rows[i][j]``: record i, class j)."""

    __slots__ = ("classes", "rows")

    def __init__(self, classes: Sequence[str], rows: list[list[float]]) -> None:
        self.classes = tuple(classes)
        self.rows = rows

    @classmethod
    def of(cls, dicts: Sequence[Mapping[str, float]]) -> Probabilities:
        """From one dict per record; every dict must name the same classes in the same order."""
        classes = tuple(dicts[0]) if dicts else ()
        for index, probabilities in enumerate(dicts):
            if tuple(probabilities) != classes:
                raise ValueError(
                    f"record {index} has classes {list(probabilities)}, not {classes}"
                )
        return cls(classes, [list(probabilities.values()) for probabilities in dicts])

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> dict[str, float]: ...

    @overload
    def __getitem__(self, index: slice) -> Probabilities: ...

    def __getitem__(self, index: int | slice) -> dict[str, float] | Probabilities:
        if isinstance(index, slice):
            return Probabilities(self.classes, self.rows[index])
        return dict(zip(self.classes, self.rows[index], strict=True))

    def __iter__(self) -> Iterator[dict[str, float]]:
        classes = self.classes
        return (dict(zip(classes, row, strict=True)) for row in self.rows)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Probabilities):
            return self.classes == other.classes and self.rows == other.rows
        if isinstance(other, Sequence):
            return list(self) == list(other)
        return NotImplemented

    # Unhashable, like the list it stands for.
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Probabilities({self.classes!r}, {self.rows!r})"

    def top(self) -> list[float]:
        """Per record, the probability of the predicted (most likely) class."""
        return list(map(max, self.rows))
