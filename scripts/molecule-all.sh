#!/usr/bin/env bash
# Run `molecule test` for every role scenario (roles/<role>/molecule/<scenario>/), one after the other,
# on throwaway test VPS hosts (docs/test-vps.md; needs root). Prints a line per scenario with its time
# and a summary; exits non-zero if any scenario failed. Ctrl-C (or SIGTERM/SIGHUP) stops the running
# scenario and destroys its hosts before exiting.
#
# Usage: scripts/molecule-all.sh [-q] [ROLE...]
#   ROLE...  only these roles (default: every role with a molecule scenario)
#   -q       keep each scenario's output in its log file and print only its tail on failure
# Logs: .cache/molecule-logs/<role>-<scenario>.log
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$root/.venv/bin:$PATH"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
log_dir="$root/.cache/molecule-logs"

quiet=false
if [[ ${1:-} == -q ]]; then
  quiet=true
  shift
fi

scenarios=()
if (($# > 0)); then
  for role in "$@"; do
    found=("$root"/roles/"$role"/molecule/*/molecule.yml)
    [[ -e ${found[0]} ]] || { echo "molecule-all: no molecule scenario in roles/$role" >&2; exit 2; }
    scenarios+=("${found[@]}")
  done
else
  # Every role's `default` scenario. Scenarios under other names need something this machine may
  # lack (roles/grafana/molecule/real-server: Grafana's own apt repository); run them by naming the
  # role on a machine that has it.
  scenarios=("$root"/roles/*/molecule/default/molecule.yml)
  for extra in "$root"/roles/*/molecule/*/molecule.yml; do
    [[ $extra == */molecule/default/molecule.yml ]] && continue
    echo "molecule-all: not run by default: ${extra#"$root"/} (name its role to run it)" >&2
  done
fi

current_pid=""
current_dir=""
current_scenario=""

# Stop the running molecule and everything it started (ansible-playbook, the VPS helper): its process
# group gets SIGINT, then SIGTERM and SIGKILL after 30 s. Then the scenario's destroy playbook removes
# every host the scenario recorded, whatever state the run was in.
stop_current() {
  [[ -n $current_pid ]] || return 0
  kill -INT -- "-$current_pid" 2>/dev/null || true
  for _ in {1..60}; do
    kill -0 -- "-$current_pid" 2>/dev/null || break
    sleep 0.5
  done
  kill -TERM -- "-$current_pid" 2>/dev/null || true
  sleep 1
  kill -KILL -- "-$current_pid" 2>/dev/null || true
  wait "$current_pid" 2>/dev/null || true
  echo "==> Destroying the hosts of $(basename "$current_dir")/$current_scenario" >&2
  (cd "$current_dir" && molecule destroy --scenario-name "$current_scenario") >/dev/null 2>&1 \
    || echo "molecule-all: destroy failed; check 'tests/vps/testvps list' for mol-* hosts" >&2
  current_pid=""
}

on_signal() {
  trap - INT TERM HUP
  echo >&2
  echo "==> Interrupted" >&2
  stop_current
  exit 130
}
trap on_signal INT TERM HUP

mkdir -p "$log_dir"
total=${#scenarios[@]}
results=()
failed=0
start_all=$SECONDS
n=0
for file in "${scenarios[@]}"; do
  n=$((n + 1))
  scenario_dir=$(dirname "$file")
  scenario=$(basename "$scenario_dir")
  role_dir=$(dirname "$(dirname "$scenario_dir")")
  role=$(basename "$role_dir")
  log="$log_dir/$role-$scenario.log"
  echo "==> [$n/$total] $role ($scenario): molecule test (log: ${log#"$root"/})"

  started=$SECONDS
  current_dir=$role_dir
  current_scenario=$scenario
  # Job control (set -m) gives the scenario its own process group that still takes SIGINT, and keeps the
  # terminal's Ctrl-C for this script, which forwards it (stop_current).
  set -m
  if $quiet; then
    (cd "$role_dir" && exec molecule test --scenario-name "$scenario") >"$log" 2>&1 &
  else
    (cd "$role_dir" && exec bash -c \
      'set -o pipefail; molecule test --scenario-name "$1" 2>&1 | tee "$2"' _ "$scenario" "$log") &
  fi
  set +m
  current_pid=$!
  rc=0
  wait "$current_pid" || rc=$?
  current_pid=""
  elapsed=$((SECONDS - started))

  if ((rc == 0)); then
    status=passed
  else
    status="FAILED (exit $rc)"
    failed=$((failed + 1))
    if $quiet; then
      echo "---- last lines of ${log#"$root"/} ----"
      tail -n 60 "$log"
    fi
  fi
  line=$(printf '%-8s %-10s %-18s %4ds' "$role" "$scenario" "$status" "$elapsed")
  results+=("$line")
  echo "==> [$n/$total] $line"
done

echo "==> Molecule summary"
printf '    %s\n' "${results[@]}"
echo "    total: $((SECONDS - start_all))s"
# The plain closing line CI reads: N passed, N failed.
echo "molecule: $((total - failed)) passed, $failed failed"
((failed == 0))
