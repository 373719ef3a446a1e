"""Test bundles with drift reference histograms (``Manifest.reference``, not in the version
hash), made by adding them to a copy of a real exported bundle."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

BINS = 4


def add_reference(bundle: Path, destination: Path) -> Path:
    """Copy ``bundle`` to ``destination`` and give it a reference: every feature spread evenly
    over ``BINS`` bins between its training min and max; classes equally likely."""
    shutil.copytree(bundle, destination)
    path = destination / "manifest.json"
    manifest: dict[str, Any] = json.loads(path.read_text())
    features = {}
    for feature in manifest["features"]:
        low, high = feature["min"], feature["max"]
        step = (high - low) / BINS
        edges = [low + i * step for i in range(BINS)] + [high]
        features[feature["name"]] = {"edges": edges, "counts": [25] * BINS}
    classes = manifest["output"]["classes"]
    manifest["reference"] = {
        "features": features,
        "predictions": {"values": classes, "counts": [10] * len(classes)},
    }
    path.write_text(json.dumps(manifest))
    return destination
