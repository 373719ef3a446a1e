"""Heavy libraries stay out of processes that do not use them (the 600 MB memory budget of a
1 GB server): pyarrow alone adds ~45 MB to each process that imports it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.system.ansible_run import REPO

HEAVY = ("pyarrow", "boto3", "psycopg", "sklearn", "pandas", "scipy")


def loaded_after(statement: str) -> set[str]:
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "BERTH_API_KEYS_FILE": "/nonexistent"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return {name.split(".")[0] for name in json.loads(result.stdout.splitlines()[-1])}


@pytest.mark.parametrize(
    "statement",
    [
        "import app.main",  # what every API worker imports
        "import app.jobs.service, app.jobs.runner",  # the scheduler before its first batch run
    ],
)
def test_no_heavy_library_is_imported_up_front(statement: str) -> None:
    assert not loaded_after(statement) & set(HEAVY)
