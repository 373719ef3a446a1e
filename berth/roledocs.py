"""Generate each role's README.md from its meta/argument_specs.yml, or check that they are current.

Usage: python -m berth.roledocs [--check] [ROLE_DIR ...]   (make role-docs; make lint runs --check)

The README is generated whole: never edit it, edit meta/argument_specs.yml. The main entry
point's short_description and first description paragraph are the purpose; its other paragraphs
are the notes and caveats; options become the variables table (defaults/main.yml fills missing
defaults); other entry points (tasks_from) are listed; tasks/remove.yml adds the teardown one.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
MARKER = (
    "<!-- Generated from meta/argument_specs.yml by `python -m berth.roledocs` (make role-docs)."
    " Do not edit: edit the spec. -->"
)
REMOVE_TEXT = (
    "Removes what the role installed; playbooks/teardown.yml runs it"
    " (berth_teardown_keep_data keeps the data)."
)


def _paragraphs(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [" ".join(str(item).split()) for item in items if str(item).strip()]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default(option: Mapping[str, Any], fallback: Mapping[str, Any], name: str) -> str:
    if "default" in option:
        value = option["default"]
    elif name in fallback:
        value = fallback[name]
    else:
        return "*required*" if option.get("required") else "*none*"
    if isinstance(value, list | dict) and len(json.dumps(value)) > 60:
        return "see defaults/main.yml"
    shown = value if isinstance(value, str) else json.dumps(value)
    return f"`{_cell(str(shown))}`" if shown != "" else '`""`'


def _type(option: Mapping[str, Any]) -> str:
    kind = str(option.get("type", "str"))
    if kind == "list" and "elements" in option:
        kind = f"list of {option['elements']}"
    return kind


def variables_table(options: Mapping[str, Any], defaults: Mapping[str, Any]) -> list[str]:
    if not options:
        return ["This entry point takes no variables."]
    lines = ["| Variable | Type | Default | Description |", "|---|---|---|---|"]
    for name in sorted(options):
        option = options[name] or {}
        text = " ".join(_paragraphs(option.get("description"))) or "(no description)"
        if option.get("choices"):
            text += " One of: " + ", ".join(f"`{c}`" for c in option["choices"]) + "."
        if option.get("no_log"):
            text += " Secret: never logged."
        lines.append(
            f"| `{name}` | {_type(option)} | {_default(option, defaults, name)} | {_cell(text)} |"
        )
    return lines


def render(role_dir: Path) -> str:
    """The README.md text of one role."""
    name = role_dir.name
    spec_file = role_dir / "meta" / "argument_specs.yml"
    specs: dict[str, Any] = yaml.safe_load(spec_file.read_text())["argument_specs"]
    main = specs.get("main", {})
    paragraphs = _paragraphs(main.get("description"))
    lines = [
        MARKER,
        "",
        f"# Role `{name}`",
        "",
        str(main.get("short_description", "")).strip(),
        "",
    ]
    lines += ["## Purpose", "", *(paragraphs[:1] or ["See the short description above."]), ""]
    lines += ["## Notes and caveats", ""]
    lines += [f"- {p}" for p in paragraphs[1:]] or ["- None recorded in the spec."]
    lines += ["", "## Entry points", "", "| Entry point | What it does |", "|---|---|"]
    entries = {
        key: str(value.get("short_description", "")).strip() for key, value in specs.items()
    }
    if (role_dir / "tasks" / "remove.yml").is_file() and "remove" not in entries:
        entries["remove"] = REMOVE_TEXT
    for entry in sorted(entries, key=lambda e: (e != "main", e)):
        how = "`roles:`" if entry == "main" else f"`tasks_from: {entry}.yml`"
        lines.append(f"| `{entry}` ({how}) | {_cell(entries[entry])} |")
    lines += ["", "## Variables", ""]
    defaults_file = role_dir / "defaults" / "main.yml"
    defaults = (
        yaml.safe_load(defaults_file.read_text()) if defaults_file.exists() else None
    ) or {}
    lines += variables_table(main.get("options") or {}, defaults)
    for entry, value in sorted(specs.items()):
        if entry != "main" and value.get("options"):
            lines += ["", f"### Entry point `{entry}`", "", *variables_table(value["options"], {})]
    lines += [
        "",
        "## Example",
        "",
        "```yaml",
        f"- name: Apply {name}",
        "  hosts: all",
        "  become: true",
        "  roles:",
        f"    - role: {name}",
        "```",
        "",
    ]
    return "\n".join(lines)


def role_dirs(root: Path = REPO) -> list[Path]:
    return sorted(p.parents[1] for p in (root / "roles").glob("*/meta/argument_specs.yml"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m berth.roledocs", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a README is not current")
    parser.add_argument("roles", nargs="*", type=Path, help="role directories (default: all)")
    args = parser.parse_args(argv)
    stale = []
    for role in args.roles or role_dirs():
        readme = role / "README.md"
        text = render(role)
        current = readme.read_text() if readme.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(str(readme))
        else:
            readme.write_text(text)
            sys.stderr.write(f"wrote {readme}\n")
    if stale:
        sys.stderr.write(
            "role READMEs out of date with meta/argument_specs.yml (run `make role-docs`):\n  "
            + "\n  ".join(stale)
            + "\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
