"""Post one annotation to Grafana (deploys and rollbacks on the dashboards).

Usage: grafana_annotate.py --url https://HOST/grafana/ --text TEXT [--tags berth,deploy]
Credentials come from GRAFANA_USER / GRAFANA_PASSWORD. TLS is not verified (self-signed by
default, contract 1). Exits 0 when written, 1 with the reason on stderr otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from urllib.parse import urlsplit

from grafana_client import GrafanaApi  # type: ignore[import-untyped]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--text", required=True)
    parser.add_argument("--tags", default="berth,deploy")
    args = parser.parse_args(argv)
    parts = urlsplit(args.url)
    user = os.environ.get("GRAFANA_USER", "admin")
    password = os.environ.get("GRAFANA_PASSWORD", "")
    if not password:
        sys.stderr.write("GRAFANA_PASSWORD is empty: set grafana_admin_password\n")
        return 1
    api = GrafanaApi(
        auth=(user, password),
        host=parts.hostname or "localhost",
        port=parts.port,
        protocol=parts.scheme or "https",
        url_path_prefix=parts.path.strip("/"),
        verify=False,
        timeout=10.0,
    )
    tags = [tag for tag in args.tags.split(",") if tag]
    try:
        api.annotations.add_annotation(
            time_from=int(time.time() * 1000), tags=tags, text=args.text
        )
    except Exception as exc:  # any failure is reported, never raised into a deploy
        sys.stderr.write(f"Grafana at {args.url} did not take the annotation: {exc}\n")
        return 1
    sys.stdout.write(f"annotation written: {args.text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
