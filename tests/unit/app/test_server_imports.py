"""The server runtime is requirements/server.txt: app/ must not import control-node packages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CONTROL_ONLY = ("sklearn", "pandas", "skl2onnx", "onnx", "yaml", "dvc", "ml")

PROBE = f"""
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {CONTROL_ONLY!r}:
            raise ImportError(f"server code imported control-node package {{name}}")
        return None

sys.meta_path.insert(0, Block())
import app.main
import app.services.model_store
print("ok")
"""


def test_app_imports_only_server_packages() -> None:
    root = Path(__file__).resolve().parents[3]
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_app_imports_the_redis_client_only_when_a_cache_url_is_set() -> None:
    """Without BERTH_CACHE_URL a worker never needs redis (about 9 MB of memory with what it
    imports)."""
    root = Path(__file__).resolve().parents[3]
    probe = "import sys, app.main; print('redis' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
