#!/usr/bin/env bash
# README quick start #1: install what is missing, run the stack on 127.0.0.1:8080 (in the
# foreground: its output is shown here), create and read a payment through nginx, then keep the
# stack running until Ctrl-C.
#
#   scripts/demo.sh                      stack keeps running after the demo
#   scripts/demo.sh --exit-after-demo    stop the stack after the demo; exit code = the demo's
# Other arguments go to scripts/stack.ts (e.g. --nodes 5, --port 9090, --dir .stack/demo).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

stack_ready_timeout_s=240
stack_stop_timeout_s=150
poll_interval_s=0.2

exit_after_demo=0
stack_args=()
for arg in "$@"; do
  case "$arg" in
    --exit-after-demo) exit_after_demo=1 ;;
    *) stack_args+=("$arg") ;;
  esac
done

scripts/ensure-deps.sh
NODE="$ROOT/node_modules/.bin/node"

info_file="$(mktemp -u "${TMPDIR:-/tmp}/ringpay-demo-info.XXXXXX.json")"
stack_pid=""

stop_stack() {
  local rc=$?
  if [ -n "$stack_pid" ] && kill -0 "$stack_pid" 2>/dev/null; then
    kill -TERM "$stack_pid" 2>/dev/null || true
    local waited=0
    while kill -0 "$stack_pid" 2>/dev/null && [ "$waited" -lt "$((stack_stop_timeout_s * 5))" ]; do
      sleep "$poll_interval_s"
      waited=$((waited + 1))
    done
    kill -KILL "$stack_pid" 2>/dev/null || true
    wait "$stack_pid" 2>/dev/null || true
  fi
  rm -f "$info_file"
  exit "$rc"
}
trap stop_stack EXIT
# Ctrl-C reaches the stack runner directly (same terminal process group); the trap then waits
# for its ordered shutdown (the runner ignores the duplicate signal).
trap 'exit 130' INT
trap 'exit 143' TERM

"$NODE" scripts/stack.ts --port 8080 ${stack_args[@]+"${stack_args[@]}"} --info-file "$info_file" &
stack_pid=$!

deadline=$((SECONDS + stack_ready_timeout_s))
until [ -f "$info_file" ]; do
  kill -0 "$stack_pid" 2>/dev/null || { echo "[demo] the stack exited before it was ready" >&2; exit 1; }
  [ "$SECONDS" -lt "$deadline" ] || { echo "[demo] the stack was not ready within ${stack_ready_timeout_s} s" >&2; exit 1; }
  sleep "$poll_interval_s"
done

demo_rc=0
"$NODE" scripts/demo.ts --info-file "$info_file" || demo_rc=$?

if [ "$exit_after_demo" -eq 1 ]; then
  exit "$demo_rc"
fi
echo
echo "The stack keeps running (public API http://127.0.0.1:8080 unless --port was given). Press Ctrl-C to stop it."
wait "$stack_pid" || true
stack_pid=""
