"""Class probabilities kept as the model's rows, read as one dict per record."""

from __future__ import annotations

import pytest

from app.services.fallback import Answer, InProcessCache
from app.services.inference import Predictor
from app.services.model_store import Prediction
from app.services.probabilities import Probabilities

ROWS = [[0.25, 0.75], [0.9, 0.1], [0.5, 0.5]]


def test_reads_as_dicts_per_record() -> None:
    probabilities = Probabilities(("x", "y"), ROWS)
    assert len(probabilities) == 3
    assert probabilities[1] == {"x": 0.9, "y": 0.1}
    assert list(probabilities) == [
        {"x": 0.25, "y": 0.75},
        {"x": 0.9, "y": 0.1},
        {"x": 0.5, "y": 0.5},
    ]
    assert probabilities == list(probabilities)  # equal to the list of dicts it stands for
    assert probabilities != [{"x": 0.25, "y": 0.75}]
    assert probabilities.top() == [0.75, 0.9, 0.5]


def test_slices_stay_rows() -> None:
    part = Probabilities(("x", "y"), ROWS)[1:]
    assert isinstance(part, Probabilities)
    assert part.rows == ROWS[1:] and part.classes == ("x", "y")


def test_of_dicts_round_trips_and_refuses_mixed_classes() -> None:
    dicts = [{"x": 0.25, "y": 0.75}, {"x": 0.9, "y": 0.1}]
    assert Probabilities.of(dicts) == Probabilities(("x", "y"), ROWS[:2])
    with pytest.raises(ValueError, match="record 1 has classes"):
        Probabilities.of([{"x": 1.0}, {"y": 1.0}])


def test_answer_keeps_a_row_and_reads_as_a_dict() -> None:
    answer = Answer("y", [0.25, 0.75], ("x", "y"))
    assert answer == Answer.of("y", {"x": 0.25, "y": 0.75})
    assert answer.probabilities == {"x": 0.25, "y": 0.75}
    assert Answer.of(1.5).probabilities is None


class RowsModel:
    """A loaded model's kind of answer: labels and a ``Probabilities`` of rows."""

    version = "v1"
    manifest = None

    def __init__(self, rows: list[list[float]]) -> None:
        self.rows = rows

    def predict(self, records: object) -> Prediction:
        labels = ["y" if row[1] > row[0] else "x" for row in self.rows]
        return Prediction(labels, Probabilities(("x", "y"), self.rows))


def test_remembered_answers_are_rows_not_dicts() -> None:
    cache = InProcessCache(10)
    predictor = Predictor(cache, budget_ms=1000, threads=1)
    records = [{"a": float(i)} for i in range(3)]
    outcome = predictor.predict(RowsModel(ROWS), records)  # type: ignore[arg-type]
    assert outcome.probabilities == Probabilities(("x", "y"), ROWS)
    stored = list(cache._items.values())
    assert [answer.scores for answer in stored] == ROWS
    assert all(answer.classes == ("x", "y") for answer in stored)


@pytest.mark.parametrize("rows", [ROWS[:2], [*ROWS, [0.5, 0.5]]])
def test_an_answer_unlike_the_records_is_a_model_error(rows: list[list[float]]) -> None:
    records = [{"a": float(i)} for i in range(3)]
    predictor = Predictor(InProcessCache(10), budget_ms=1000, threads=1, default=Answer("x"))
    outcome = predictor.predict(RowsModel(rows), records)  # type: ignore[arg-type]
    assert outcome.fallback_reason == "model_error"
    assert outcome.predictions == ["x", "x", "x"]  # the default answer, nothing remembered
    assert len(predictor.cache) == 0  # type: ignore[arg-type]
