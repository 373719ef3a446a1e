"""`berth status`: read every host's state with probe.py over SSH and render it."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from berth.cli.exitcodes import Exit
from berth.cli.runner import CliError, HostAnswer, run_module

PROBE = Path(__file__).with_name("probe.py")


@dataclass(frozen=True)
class HostState:
    host: str
    state: dict[str, Any] | None
    error: str = ""
    unreachable: bool = False

    @property
    def serves_api(self) -> bool:
        """Whether the host should answer predictions: in inventory group app.

        Without the groups (an older probe), a host without the API unit counts as a load
        balancer or monitoring host; with them, an app host without the API is unhealthy.
        """
        state = self.state or {}
        groups = state.get("groups")
        if isinstance(groups, list):
            return "app" in groups
        return bool(state.get("api_installed", True))

    @property
    def healthy(self) -> bool:
        if self.state is None:
            return False
        if not self.serves_api:
            return True
        return all(self.state.get(k, {}).get("status") == 200 for k in ("health", "ready"))

    @property
    def left_out(self) -> list[str]:
        """App hosts this load balancer leaves out of its upstream (a failed switch)."""
        upstream = (self.state or {}).get("upstream")
        if not isinstance(upstream, dict):
            return []
        return sorted(host for host, state in upstream.items() if state == "down")

    @property
    def alerts(self) -> list[dict[str, Any]]:
        alerts = (self.state or {}).get("alerts")
        return alerts if isinstance(alerts, list) else []


def collect(inventory: Path, pattern: str = "all") -> list[HostState]:
    """Run the probe on every host (as root); a host that cannot answer gets an error instead."""
    answers = run_module(
        "ansible.builtin.script",
        f"{PROBE} --groups={{{{group_names|join(',')}}}} executable=python3",
        inventory,
        pattern=pattern,
    )
    return [_parse(answer) for answer in sorted(answers.values(), key=lambda a: a.host)]


def _parse(answer: HostAnswer) -> HostState:
    if not answer.ok:
        return HostState(answer.host, None, answer.error, answer.unreachable)
    try:
        state = json.loads(answer.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return HostState(answer.host, None, f"unreadable probe output: {answer.stdout[:300]!r}")
    return HostState(answer.host, state)


def ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _iso_age(value: Any, now: float) -> str:
    if not isinstance(value, str):
        return "?"
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return value
    return ago(now - stamp)


def _deploy_line(entry: Mapping[str, Any], now: float) -> str:
    when = next((entry[k] for k in ("time", "ts", "at", "timestamp") if k in entry), None)
    if isinstance(when, int | float):
        when_text = ago(now - float(when))
    else:
        when_text = _iso_age(when, now) if when else "?"
    action = entry.get("action", "deploy")
    version = entry.get("version", "?")
    outcome = entry.get("result", entry.get("outcome", entry.get("status", "")))
    extra = f" ({outcome})" if outcome else ""
    return f"{when_text:>9}  {action} {version}{extra}"


def _health_text(probe: Mapping[str, Any]) -> str:
    if "error" in probe:
        return f"no answer ({probe['error']})"
    body = probe.get("body")
    detail = body.get("status", body.get("detail", "")) if isinstance(body, Mapping) else body
    return f"{probe.get('status')} {detail}".strip()


def render(states: list[HostState]) -> str:
    lines: list[str] = []
    for hs in states:
        if hs.state is None:
            kind = "UNREACHABLE" if hs.unreachable else "ERROR"
            lines += [f"{hs.host}  {kind}", *(f"  {line}" for line in hs.error.splitlines()), ""]
            continue
        st = hs.state
        now = float(st.get("now") or time.time())
        verdict = "healthy" if hs.healthy else "UNHEALTHY"
        lines.append(f"{hs.host} ({st.get('hostname')})  {verdict}")
        model = st.get("model")
        if model:
            lines.append(
                f"  model     {model.get('name', '?')} {model['version']}"
                f" (built {_iso_age(model.get('created_at'), now)},"
                f" serving since {ago(now - float(model['switched_at']))};"
                f" on host: {', '.join(model.get('installed', []))})"
            )
        else:
            lines.append("  model     none installed")
        lines.append(f"  release   {st.get('release') or 'none'}")
        if hs.serves_api:
            lines.append(f"  health    {_health_text(st.get('health', {}))}")
            lines.append(f"  ready     {_health_text(st.get('ready', {}))}")
        else:
            groups = st.get("groups")
            role = ", ".join(groups) if isinstance(groups, list) and groups else "no app group"
            lines.append(f"  api       not on this host ({role})")
        upstream = st.get("upstream")
        if isinstance(upstream, dict) and upstream:
            parts = [
                f"{host} {'DOWN' if state == 'down' else state}"
                for host, state in sorted(upstream.items())
            ]
            lines.append(f"  upstream  {', '.join(parts)}")
            if hs.left_out:
                lines.append(
                    "    left out after a failed switch; a deploy that succeeds there puts it back"
                )
        units = st.get("units") or {}
        unit_text = ", ".join(f"{u} {s}" for u, s in sorted(units.items())) or "no berth units"
        lines.append(f"  units     {unit_text}")
        deploys = st.get("deploys") or []
        lines.append("  deploys   " + ("none recorded" if not deploys else ""))
        lines += [f"    {_deploy_line(d, now)}" for d in reversed(deploys)]
        alerts = st.get("alerts")
        if alerts is None:
            lines.append(
                "  alerts    monitoring not installed (no Alertmanager on 127.0.0.1:9093)"
            )
        elif isinstance(alerts, dict):
            lines.append(f"  alerts    Alertmanager did not answer: {alerts.get('error')}")
        elif not alerts:
            lines.append("  alerts    none firing")
        else:
            lines.append(f"  alerts    {len(alerts)} FIRING")
            lines += [
                f"    {a.get('severity') or '-'}  {a.get('name')}"
                f"  since {_iso_age(a.get('since'), now)}  {a.get('summary') or ''}".rstrip()
                for a in alerts
            ]
        down = st.get("targets_down")
        if isinstance(down, list) and down:
            names = ", ".join(f"{t.get('job')}/{t.get('instance')}" for t in down)
            lines.append(f"  scrape    targets down: {names}")
        lines.append("")
    return "\n".join(lines)


def exit_code(states: list[HostState]) -> Exit:
    if not states:
        raise CliError("the inventory has no hosts")
    if any(hs.unreachable for hs in states):
        return Exit.UNREACHABLE
    if any(not hs.healthy or hs.alerts or hs.left_out for hs in states):
        return Exit.UNHEALTHY
    return Exit.OK
