"""The recap parser the system tests rely on."""

from __future__ import annotations

from tests.system.ansible_run import parse_recap

OUTPUT = """
TASK [x] ***
ok: [web-1]

PLAY RECAP *********************************************************************
web-1   : ok=49 changed=0 unreachable=0 failed=0 skipped=13 rescued=0 ignored=0
db      : ok=3  changed=2 unreachable=1 failed=1 skipped=0  rescued=0 ignored=0
"""


def test_recap_counts_are_read_per_host() -> None:
    recap = parse_recap(OUTPUT)
    assert recap["web-1"]["ok"] == 49
    assert recap["web-1"]["changed"] == 0
    assert recap["db"] == {
        "ok": 3, "changed": 2, "unreachable": 1, "failed": 1,
        "skipped": 0, "rescued": 0, "ignored": 0,
    }  # fmt: skip


def test_no_recap_gives_no_hosts() -> None:
    assert parse_recap("fatal: could not parse inventory") == {}
