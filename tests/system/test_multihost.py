"""Three test VPSes on a private network: one load balancer + monitoring host, two app hosts.

site.yml provisions all three; the lb's nginx balances over the app hosts' private listeners,
Prometheus on the lb scrapes every host over the private network, and each firewall admits only
what the groups call for. Deploys roll one app host at a time, each one out of the upstream while
it switches; traffic through the lb loses no request while a host deploys, while a host's API is
stopped, or while a host is cut off the network; a host whose switch fails is left out.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from berth.vps import Host
from tests.monitoring.remote import query, ssh, sudo
from tests.system.ansible_run import PlaybookRun, changed_tasks, failures, run_playbook
from tests.system.conftest import bundle_manifest, make_inventory
from tests.system.test_deploy import Traffic, variant_bundle
from tests.vps.plugin import VpsFactory

pytestmark = pytest.mark.system

API_PORT = 8000
UPSTREAM_DIR = "/etc/nginx/berth-upstream.d"


@dataclass(frozen=True)
class Cluster:
    lb: Host
    apps: tuple[Host, Host]
    inventory: Path
    first_run: PlaybookRun

    @property
    def hosts(self) -> tuple[Host, ...]:
        return (self.lb, *self.apps)

    def url(self, path: str) -> str:
        return f"https://{self.lb.address}{path}"


@pytest.fixture(scope="module")
def cluster(
    vps_factory: VpsFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    bundle_manifest()
    with ThreadPoolExecutor(max_workers=3) as pool:
        hosts = list(pool.map(vps_factory.create, ["mh-lb", "mh-app1", "mh-app2"]))
    lb, app1, app2 = hosts
    try:
        groups = {"lb": [lb.name], "monitoring": [lb.name], "app": [app1.name, app2.name]}
        inventory = make_inventory(
            tmp_path_factory.mktemp("multihost"), hosts, groups, private=True
        )
        run = run_playbook(inventory, "site.yml", timeout=2400)
        if run.returncode != 0:
            detail = f"{failures(run.output)}\n...\n{run.output[-3000:]}"
            pytest.fail(f"site.yml failed on three fresh hosts:\n{detail}", False)
        yield Cluster(lb, (app1, app2), inventory, run)
    finally:
        for host in hosts:
            vps_factory.destroy(host)


# Runs on a host: prints the body of one URL (https with the host's self-signed certificate).
_FETCH = (
    "import ssl, sys, urllib.request; "
    "print(urllib.request.urlopen(sys.argv[1], timeout=10, "
    "context=ssl._create_unverified_context()).read().decode())"
)


def fetch(host: Host, url: str) -> str:
    result = ssh(host, f"python3 -c {shlex.quote(_FETCH)} {shlex.quote(url)}")
    assert result.returncode == 0, f"{url} on {host.name}: {result.stderr}"
    return result.stdout


def served_version(app: Host) -> str:
    """The version an app host serves, asked through its own nginx."""
    body = fetch(app, "https://127.0.0.1/ready")
    match = re.search(r'"model_version":\s*"([0-9a-f]+)"', body)
    assert match, f"{app.name} /ready: {body}"
    return match.group(1)


def predictions_served(app: Host) -> float:
    """Requests to POST /v1/predict this app host answered, from its own metrics listener."""
    text = fetch(app, f"http://{app.private_address}:9180/metrics")
    total = 0.0
    for line in text.splitlines():
        if line.startswith("berth_http_requests_total{") and 'route="/v1/predict"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def reachable(source: Host, address: str, port: int) -> bool:
    """Whether source can open a TCP connection to address:port (bash's /dev/tcp, 3 s)."""
    probe = f"timeout 3 bash -c 'exec 3<>/dev/tcp/{address}/{port}' && echo open || echo closed"
    return ssh(source, probe).stdout.strip() == "open"


def upstream_entry(cluster: Cluster, app: Host) -> str:
    return sudo(cluster.lb, f"cat {UPSTREAM_DIR}/{app.name}.conf")


def test_site_provisions_three_hosts_and_a_second_run_changes_nothing(cluster: Cluster) -> None:
    for host in cluster.hosts:
        counts = cluster.first_run.counts(host.name)
        assert counts["failed"] == 0 and counts["unreachable"] == 0, counts
    again = run_playbook(cluster.inventory, "site.yml", timeout=2400)
    assert again.returncode == 0, again.output[-4000:]
    for host in cluster.hosts:
        assert again.counts(host.name)["changed"] == 0, changed_tasks(again.output)


def test_lb_balances_over_both_app_hosts(cluster: Cluster) -> None:
    golden = [pair["input"] for pair in bundle_manifest()["golden"]]
    before = [predictions_served(app) for app in cluster.apps]
    with httpx.Client(verify=False, timeout=10) as client:
        for _ in range(30):
            answer = client.post(cluster.url("/v1/predict"), json={"records": golden})
            assert answer.status_code == 200, answer.text
            time.sleep(0.06)  # under nginx's per-client rate limit
    time.sleep(2)  # workers write their metrics at most BERTH_METRICS_FLUSH_MS (1 s) later
    after = [predictions_served(app) for app in cluster.apps]
    served = [b - a for a, b in zip(before, after, strict=True)]
    assert sum(served) >= 30 and all(n >= 5 for n in served), served
    for app in cluster.apps:
        entry = upstream_entry(cluster, app)
        assert f"server {app.private_address}:{API_PORT} " in entry and " down" not in entry


def test_prometheus_on_the_lb_scrapes_every_host_over_the_private_network(
    cluster: Cluster,
) -> None:
    wanted = {("node", h.name) for h in cluster.hosts} | {
        (job, app.name) for app in cluster.apps for job in ("berth-api", "berth-scheduler")
    }
    deadline = time.monotonic() + 90
    while True:
        up = {
            (r["metric"]["job"], r["metric"]["instance"]): r["value"][1]
            for r in query(cluster.lb, "up")
        }
        missing = {target for target in wanted if up.get(target) != "1"}
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert not missing, f"targets not up: {sorted(missing)}; up = {up}"


def test_firewalls_admit_only_lb_to_api_and_monitoring_to_exporters(cluster: Cluster) -> None:
    app1, app2 = cluster.apps
    # The lb (also the monitoring host) reaches the API and the exporters on the private network.
    assert reachable(cluster.lb, app1.private_address, API_PORT)
    assert reachable(cluster.lb, app1.private_address, 9100)
    assert reachable(cluster.lb, app1.private_address, 9180)
    # Another app host is neither: it reaches none of them.
    for port in (API_PORT, 9100, 9113, 9180, 9181):
        assert not reachable(app2, app1.private_address, port), port
    # Nothing listens for the API or the exporters on the public address.
    for port in (API_PORT, 9100, 9180):
        assert not reachable(cluster.lb, app1.address, port), port


def test_rolling_deploy_under_traffic_drops_no_request(cluster: Cluster, tmp_path: Path) -> None:
    original = served_version(cluster.apps[0])
    bundle, version = variant_bundle(tmp_path, "multihost")
    golden = [pair["input"] for pair in bundle_manifest()["golden"]]
    traffic = Traffic(cluster.url("/v1/predict"), {"records": golden})
    with traffic.running():
        time.sleep(2)
        run = run_playbook(
            cluster.inventory, "playbooks/deploy.yml", "-e", f"model_bundle_dir={bundle}"
        )
        time.sleep(2)
    assert run.returncode == 0, run.output[-4000:]
    print(
        f"rolling deploy: {traffic.ok} answered, {len(traffic.failures)} failed, "
        f"{traffic.resent} sent again after a reload"
    )
    assert traffic.failures == [], traffic.failures[:5]
    assert traffic.versions == {original, version}
    assert [served_version(app) for app in cluster.apps] == [version, version]
    # Each host left the upstream while it switched, one at a time, and came back.
    assert run.output.count("Take this host out of the load balancers' upstream") == 2
    for app in cluster.apps:
        assert " down" not in upstream_entry(cluster, app)


def test_traffic_flows_while_an_app_host_is_stopped_or_cut_off(cluster: Cluster) -> None:
    app1, _ = cluster.apps
    golden = [pair["input"] for pair in bundle_manifest()["golden"]]
    traffic = Traffic(cluster.url("/v1/predict"), {"records": golden})
    with traffic.running():
        time.sleep(2)
        sudo(app1, "systemctl stop berth-api.socket berth-api.service")
        time.sleep(8)
        sudo(app1, "systemctl start berth-api.socket berth-api.service")
        time.sleep(3)
        # Cut off: the lb's packets to it go unanswered, so only the connect timeout tells.
        sudo(app1, "ip link set priv0 down")
        time.sleep(8)
        sudo(app1, "ip link set priv0 up")
        time.sleep(3)
    print(
        f"app host stopped/cut off: {traffic.ok} answered, {len(traffic.failures)} failed, "
        f"{traffic.resent} sent again after a reload"
    )
    assert traffic.failures == [], traffic.failures[:5]
    assert traffic.ok > 50


def test_a_host_whose_switch_fails_is_rolled_back_and_left_out(
    cluster: Cluster, tmp_path: Path
) -> None:
    app1, app2 = cluster.apps
    serving = served_version(app1)
    # A bundle the server accepts, whose smoke test after the switch fails (nothing answers the
    # smoke URL): the switch happens, then is rolled back.
    bundle, version = variant_bundle(tmp_path, "unsmoked", widen=2.0)
    golden = [pair["input"] for pair in bundle_manifest()["golden"]]
    traffic = Traffic(cluster.url("/v1/predict"), {"records": golden})
    with traffic.running():
        time.sleep(2)
        run = run_playbook(
            cluster.inventory,
            "playbooks/deploy.yml",
            "-e",
            f"model_bundle_dir={bundle}",
            "-e",
            "model_smoke_url=http://127.0.0.1:9",
        )
        time.sleep(2)
    assert run.returncode != 0
    assert f"rolled back to {serving}, which keeps serving" in run.output, run.output[-4000:]
    assert "leave this host out" in run.output
    print(f"failed switch: {traffic.ok} answered, {traffic.resent} sent again after a reload")
    assert traffic.failures == [], traffic.failures[:5]
    assert f"Model {version} was not switched in" in run.output
    assert version not in traffic.versions  # no client ever saw the version that failed
    # The first host failed and stays out of the upstream; the roll stopped before the second.
    assert upstream_entry(cluster, app1).rstrip().endswith(" down;")
    assert " down" not in upstream_entry(cluster, app2)
    assert served_version(app1) == served_version(app2) == serving
    # A later good deploy (the version of this checkout) puts it back.
    again = run_playbook(cluster.inventory, "playbooks/deploy.yml")
    assert again.returncode == 0, again.output[-3000:]
    assert " down" not in upstream_entry(cluster, app1)
    assert served_version(app1) == served_version(app2) == bundle_manifest()["version"]
