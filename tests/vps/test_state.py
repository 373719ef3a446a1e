"""Host records, index allocation and recognising our own processes."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from berth.vps import host, proc
from berth.vps import state as st
from berth.vps.config import Config
from berth.vps.errors import VpsError
from berth.vps.state import HostState


@pytest.fixture
def config(tmp_path: Path) -> Config:
    env = {
        "BERTH_VPS_CACHE_DIR": str(tmp_path / "cache"),
        "BERTH_VPS_HOSTS_DIR": str(tmp_path / "hosts"),
        "BERTH_VPS_RUN_DIR": str(tmp_path / "run"),
        "BERTH_VPS_KEY": str(tmp_path / "key"),
    }
    return Config.from_env(env)


def test_config_defaults_and_overrides(tmp_path: Path) -> None:
    assert Config.from_env({}).hosts_dir == Path("/var/lib/berth-vps/hosts")
    assert Config.from_env({"BERTH_VPS_RUN_DIR": str(tmp_path)}).run_dir == tmp_path


def test_record_round_trip(config: Config) -> None:
    record = HostState("web", 42, config.host_root("web"), phase=st.UP)
    record.processes["nspawn"] = proc.ProcRef(123, 456, "systemd-nspawn")

    st.save(config, record)

    assert st.load(config, "web") == record
    saved = json.loads(st.state_path(config, "web").read_text())
    assert saved["address"] == "10.231.42.2"


def test_names_derived_from_index_fit_interface_limits() -> None:
    record = HostState("a-rather-long-test-host-name-0123456789", 254, Path("/x"))

    assert record.veth == "ve-berth-254"
    assert len(record.veth) <= 15
    assert record.gateway == "10.231.254.1"


def test_missing_record_is_none_and_corrupt_record_an_error(config: Config) -> None:
    assert st.load(config, "nope") is None
    st.state_path(config, "bad").parent.mkdir(parents=True)
    st.state_path(config, "bad").write_text("{")

    with pytest.raises(VpsError, match="corrupt"):
        st.load(config, "bad")


def test_pick_index_skips_recorded_and_live_indexes(config: Config) -> None:
    st.save(config, HostState("a", 10, Path("/a")))
    st.save(config, HostState("b", 12, Path("/b")))

    assert st.pick_index(config, {11}, range(10, 100)) == 13


def test_pick_index_full_range_is_an_error(config: Config) -> None:
    st.save(config, HostState("a", 10, Path("/a")))

    with pytest.raises(VpsError, match="no free index"):
        st.pick_index(config, set(), range(10, 11))


@pytest.mark.parametrize("name", ["", "-x", "x-", "UPPER", "a_b", "a" * 41, "a/b"])
def test_bad_names_are_rejected(name: str) -> None:
    with pytest.raises(VpsError, match="invalid host name"):
        st.check_name(name)


def test_record_with_dead_processes_is_not_alive(config: Config) -> None:
    record = HostState("web", 42, Path("/x"), phase=st.UP)
    record.processes["nspawn"] = proc.ProcRef(os.getpid(), 1, "python")

    assert not record.alive()


def test_process_identity_survives_only_for_the_same_process() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        ref = proc.identify(child.pid)
        assert ref is not None
        assert proc.is_running(ref)
        impostor = proc.ProcRef(ref.pid, ref.start_time + 1, ref.comm)
        assert not proc.is_running(impostor)

        proc.stop(impostor)  # a reused PID must never be killed

        assert child.poll() is None
        proc.stop(ref, timeout=5)
        assert not proc.is_running(ref)
    finally:
        child.kill()
        child.wait()


def test_spawned_daemon_waits_for_the_program_a_wrapper_execs(tmp_path: Path) -> None:
    ref = proc.spawn(["env", "sleep", "30"], tmp_path / "log", expect_comm="sleep")
    try:
        assert ref.comm == "sleep"
        assert proc.is_running(ref)
    finally:
        proc.stop(ref)
    assert proc.wait_gone(ref, 1)


def test_status_lists_records_and_leftover_directories(config: Config) -> None:
    st.save(config, HostState("half", 20, config.host_root("half")))
    (config.hosts_dir / "orphan").mkdir(parents=True)
    (config.hosts_dir / ".#orphan.lck").touch()

    rows = {row.name: row.state for row in host.status(config)}

    assert rows == {"half": "dead", "orphan": "dead"}


def test_down_of_unknown_host_is_a_no_op(config: Config) -> None:
    start = time.monotonic()

    assert host.down(config, "never-made") is False
    assert time.monotonic() - start < 5


def test_key_pair_made_once_when_several_processes_ask_at_once(tmp_path: Path) -> None:
    """Two test runs starting together on a fresh machine both got 'already exists' before."""
    repo = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "BERTH_VPS_KEY": str(tmp_path / "keys" / "id_ed25519"),
        "PYTHONPATH": str(repo),
    }
    code = (
        "from berth.vps.config import Config; from berth.vps.keys import ensure_key; "
        "print(ensure_key(Config.from_env()).read_text())"
    )
    argv = [sys.executable, "-c", code]
    workers = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    results = [(*worker.communicate(timeout=60), worker.returncode) for worker in workers]
    assert all(rc == 0 for _, _, rc in results), results
    assert len({out for out, _, _ in results}) == 1  # every process got the same key
    pub = (tmp_path / "keys" / "id_ed25519.pub").read_text()
    assert pub.startswith("ssh-ed25519 ") and pub.rstrip().endswith("berth-vps")
    leftovers = {p.name for p in (tmp_path / "keys").iterdir()}
    assert leftovers == {"id_ed25519", "id_ed25519.pub", "key.lock"}
