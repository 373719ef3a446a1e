"""Batch sources: where records come from. A source plans a range of positions after the
watermark, then reads exactly that range (again, after a crash).

Positions are JSON values: a directory source uses ``[ctime_ns, name]`` of files (a rename into
the directory sets ctime, so late-moved files are still new); PostgreSQL uses the watermark
column's value.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

# pyarrow is imported where it is used: it costs ~45 MB per process, and most runs need none.
if TYPE_CHECKING:
    import pyarrow as pa

SUFFIXES = (".csv", ".parquet")


class SourceError(Exception):
    """The source cannot be read now (down, missing, bad file); the run fails and retries."""


@dataclass
class Batch:
    table: pa.Table
    origin: list[str]  # one label per row: "<file>:<row>" or "<column>=<value>"


class Source(Protocol):
    def plan(self, after: Any) -> Any | None:
        """The last position of the next range after ``after``, or None if nothing is new."""

    def read(self, after: Any, upto: Any) -> Batch:
        """Every record in (after, upto]."""

    def lag_seconds(self, upto: Any) -> float:
        """Age of the oldest record after ``upto`` (0 when none waits)."""


class DirectorySource:
    def __init__(
        self,
        directory: Path,
        max_files: int,
        settle_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.max_files = max_files
        self.settle_seconds = settle_seconds
        self.clock = clock

    def _files(self) -> list[tuple[list[Any], Path]]:
        if not self.directory.is_dir():
            raise SourceError(
                f"batch source directory {self.directory} does not exist: create it or set "
                "BERTH_BATCH_INCOMING_DIR"
            )
        found = []
        for entry in os.scandir(self.directory):
            if entry.name.startswith(".") or not entry.name.lower().endswith(SUFFIXES):
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            info = entry.stat(follow_symlinks=False)
            changed = max(info.st_ctime_ns, info.st_mtime_ns)
            found.append(([changed, entry.name], Path(entry.path)))
        found.sort(key=lambda item: (item[0][0], item[0][1]))
        return found

    @staticmethod
    def _after(position: list[Any], after: Any) -> bool:
        return after is None or (position[0], position[1]) > (after[0], after[1])

    def plan(self, after: Any) -> Any | None:
        settled = (self.clock() - self.settle_seconds) * 1e9
        new = [pos for pos, _ in self._files() if self._after(pos, after) and pos[0] <= settled]
        return new[: self.max_files][-1] if new else None

    def read(self, after: Any, upto: Any) -> Batch:
        import pyarrow as pa

        tables: list[pa.Table] = []
        origin: list[str] = []
        for position, path in self._files():
            if not self._after(position, after) or self._after(position, upto):
                continue
            table = _read_file(path)
            tables.append(table)
            origin.extend(f"{path.name}:{row}" for row in range(table.num_rows))
        if not tables:
            return Batch(pa.table({}), [])
        return Batch(pa.concat_tables(tables, promote_options="permissive"), origin)

    def lag_seconds(self, upto: Any) -> float:
        waiting = [pos[0] for pos, _ in self._files() if self._after(pos, upto)]
        return max(0.0, self.clock() - min(waiting) / 1e9) if waiting else 0.0


def _read_file(path: Path) -> pa.Table:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    try:
        if path.name.lower().endswith(".parquet"):
            return pq.read_table(path)
        return pacsv.read_csv(path)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise SourceError(
            f"cannot read batch file {path}: {exc}. Fix or remove the file; the watermark "
            "stays before it, so no later file is scored until then"
        ) from exc


class PostgresSource:
    """Rows of ``query`` in the order of ``column``, which must only grow as rows arrive."""

    def __init__(
        self,
        dsn: str,
        query: str,
        column: str,
        max_rows: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not query.strip():
            raise SourceError("BERTH_BATCH_POSTGRES_QUERY is empty: give the SELECT to score")
        self.dsn, self.column, self.max_rows, self.clock = dsn, column, max_rows, clock
        self.query = query.strip().rstrip(";")
        self._started = clock()

    def _execute(self, sql: str, params: dict[str, Any]) -> tuple[list[str], list[Any]]:
        import psycopg  # only when this source is configured

        try:
            with psycopg.connect(self.dsn, connect_timeout=10) as conn, conn.cursor() as cur:
                cur.execute(sql.encode(), params)
                names = [desc.name for desc in cur.description or []]
                return names, cur.fetchall()
        except psycopg.Error as exc:
            raise SourceError(f"PostgreSQL source failed: {exc}".strip()) from exc

    def _where(self, after: Any) -> str:
        return "" if after is None else f' WHERE src."{self.column}" > %(after)s'

    def plan(self, after: Any) -> Any | None:
        self._started = self.clock()
        sql = (
            f'SELECT max(c) FROM (SELECT src."{self.column}" AS c FROM ({self.query}) AS src'
            f'{self._where(after)} ORDER BY src."{self.column}" LIMIT %(limit)s) AS page'
        )
        _, rows = self._execute(sql, {"after": after, "limit": self.max_rows})
        value = rows[0][0] if rows else None
        return value if value is None or isinstance(value, int | float) else str(value)

    def read(self, after: Any, upto: Any) -> Batch:
        where = self._where(after)
        where += (" AND" if where else " WHERE") + f' src."{self.column}" <= %(upto)s'
        sql = f'SELECT * FROM ({self.query}) AS src{where} ORDER BY src."{self.column}"'
        names, rows = self._execute(sql, {"after": after, "upto": upto})
        columns = {name: [row[i] for row in rows] for i, name in enumerate(names)}
        import pyarrow as pa

        table = pa.table(columns) if rows else pa.table({})
        origin = [f"{self.column}={row[names.index(self.column)]}" for row in rows]
        return Batch(table, origin)

    def lag_seconds(self, upto: Any) -> float:
        # Arrival times are unknown here: a full page means rows are still waiting since this run.
        return 0.0 if self.plan(upto) is None else self.clock() - self._started
