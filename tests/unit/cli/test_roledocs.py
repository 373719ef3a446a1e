"""Role READMEs are generated from meta/argument_specs.yml and kept current."""

from __future__ import annotations

from pathlib import Path

from berth import roledocs


def test_every_role_readme_is_current() -> None:
    dirs = roledocs.role_dirs()
    assert len(dirs) >= 8
    stale = [d.name for d in dirs if (d / "README.md").read_text() != roledocs.render(d)]
    assert not stale, f"run `make role-docs`: stale READMEs in {stale}"


def test_check_fails_on_a_stale_readme(tmp_path: Path) -> None:
    role = tmp_path / "roles" / "demo"
    (role / "meta").mkdir(parents=True)
    (role / "tasks").mkdir()
    (role / "tasks" / "remove.yml").write_text("---\n[]\n")
    (role / "meta" / "argument_specs.yml").write_text(
        "argument_specs:\n"
        "  main:\n"
        "    short_description: Demo role.\n"
        "    description:\n"
        "      - Installs the demo.\n"
        "      - Restarts the demo on every change | even at night.\n"
        "    options:\n"
        "      demo_port: {type: int, default: 8080, description: Port., choices: [8080, 9090]}\n"
        "      demo_token: {type: str, required: true, no_log: true, description: Token.}\n"
    )
    assert roledocs.main(["--check", str(role)]) == 1
    assert roledocs.main([str(role)]) == 0
    assert roledocs.main(["--check", str(role)]) == 0
    text = (role / "README.md").read_text()
    assert "## Purpose\n\nInstalls the demo." in text
    assert "- Restarts the demo on every change | even at night." in text
    assert "| `demo_port` | int | `8080` | Port. One of: `8080`, `9090`. |" in text
    assert "| `demo_token` | str | *required* | Token. Secret: never logged. |" in text
    assert "| `remove` (`tasks_from: remove.yml`) |" in text
