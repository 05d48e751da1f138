#!/usr/bin/env bash
# THE test command: installs what is missing, type-checks, starts ONE ephemeral stack, runs
# the tap suites against it (RINGPAY_STACK_INFO), stops the stack, and prints
# `N passed, N failed` as its last line.
#
#   scripts/test.sh                 all tests
#   scripts/test.sh test/infra      just these (any tap arguments; run as one tap invocation)
#
# Without arguments the run has two phases on the same stack:
#   1. every test/**/*.test.ts except those under a `faults/` dir, files in parallel; these
#      must not disrupt the shared stack;
#   2. test files under a `faults/` dir (e.g. test/faults/, test/infra/faults/), one file at a
#      time; they may kill/stop nodes, Kafka, Postgres through the control API and must restore
#      what they broke before they end.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

stack_ready_timeout_s="${RINGPAY_STACK_READY_TIMEOUT_S:-240}"
# Files of phase 1 run at once. tap's default is one per CPU (2 here), but the tests mostly wait
# (PSP latency, polls, the stack's own work): a whole CI run at 2 used ~10 CPU-minutes in 14
# minutes of two cores (~36 %). Each file brings up its own Node process, so 4 overlap well.
phase1_jobs="${RINGPAY_TEST_JOBS:-4}"
# The runner's own ordered shutdown is bounded at 120 s; past this it is SIGKILLed.
stack_stop_timeout_s=150
poll_interval_s=0.2

log() { printf '[test] %s\n' "$*" >&2; }

scripts/ensure-deps.sh
# Pinned Node 24 first: tsc and tap are `#!/usr/bin/env node` scripts.
export PATH="$ROOT/node_modules/.bin:$PATH"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" = 24 ] || { log "node on PATH is v$node_major, expected the pinned v24"; exit 1; }

log "type check (tsc -p tsconfig.json)"
tsc -p tsconfig.json

work="$(mktemp -d "${TMPDIR:-/tmp}/ringpay-test.XXXXXX")"
chmod 755 "$work"
stack_dir="$work/stack"
info_file="$work/info.json"
stack_log="$work/stack.log"
stack_pid=""
tests_ran=0
passed=0
failed=0
tap_rc=0
# Logs of the last failed run are kept here (the ephemeral stack dir is removed at exit).
failed_logs_dir="$ROOT/.stack/last-failed-test-logs"

stop_stack() {
  local rc=$?
  if [ "$tests_ran" -eq 1 ] && [ "$tap_rc" -ne 0 ] && [ -d "$stack_dir/logs" ]; then
    rm -rf "$failed_logs_dir"
    mkdir -p "$(dirname "$failed_logs_dir")"
    cp -r "$stack_dir/logs" "$failed_logs_dir" 2>/dev/null || true
    cp "$stack_dir/nginx/nginx.conf" "$failed_logs_dir/" 2>/dev/null || true
  fi
  if [ -n "$stack_pid" ] && kill -0 "$stack_pid" 2>/dev/null; then
    log "stopping the stack (pid $stack_pid)"
    kill -TERM "$stack_pid" 2>/dev/null || true
    local waited=0
    while kill -0 "$stack_pid" 2>/dev/null && [ "$waited" -lt "$((stack_stop_timeout_s * 5))" ]; do
      sleep "$poll_interval_s"
      waited=$((waited + 1))
    done
    if kill -0 "$stack_pid" 2>/dev/null; then
      log "stack did not stop within ${stack_stop_timeout_s} s: killing it and its children"
      kill -KILL "$stack_pid" 2>/dev/null || true
      if [ -f "$stack_dir/children.pgids" ]; then
        while read -r pgid; do
          [ -n "$pgid" ] && kill -KILL -- "-$pgid" 2>/dev/null || true
        done <"$stack_dir/children.pgids"
      fi
    fi
    wait "$stack_pid" 2>/dev/null || true
  fi
  if [ "$tests_ran" -eq 0 ] && [ "$rc" -ne 0 ] && [ -f "$stack_log" ]; then
    log "stack log (last 60 lines of $stack_log):"
    tail -n 60 "$stack_log" >&2 || true
  fi
  if [ "$tests_ran" -eq 1 ] && [ "$tap_rc" -ne 0 ]; then
    log "stack logs of this run kept in $failed_logs_dir"
  fi
  rm -rf "$work"
  if [ "$tests_ran" -eq 1 ]; then
    # The closing line CI reads.
    echo "$passed passed, $failed failed"
  fi
  exit "$rc"
}
trap stop_stack EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "starting an ephemeral stack (log: $stack_log)"
t0=$SECONDS
# The watchdog looks for payments stuck for 3 s (30 s in the local stack), so the tests of dropped
# webhooks settle in seconds. --tracing: the suite's stack writes traces (test/e2e/tracing.test.ts
# reads one payment's); the benchmarks run without it.
PROCESSOR_WATCHDOG_STALE_AFTER_MS=3000 PROCESSOR_WATCHDOG_INTERVAL_MS=500 \
  node scripts/stack.ts --ephemeral --tracing --dir "$stack_dir" --info-file "$info_file" >"$stack_log" 2>&1 &
stack_pid=$!

deadline=$((SECONDS + stack_ready_timeout_s))
until [ -f "$info_file" ]; do
  if ! kill -0 "$stack_pid" 2>/dev/null; then
    log "the stack exited before it was ready"
    exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    log "the stack was not ready within ${stack_ready_timeout_s} s"
    exit 1
  fi
  sleep "$poll_interval_s"
done
log "stack ready in $((SECONDS - t0)) s"
export RINGPAY_STACK_INFO="$info_file"

# Runs tap with the given arguments, tees its TAP output, adds its summary to the totals.
run_tap() {
  local out="$work/tap.$RANDOM.out"
  local rc=0
  tap --reporter=tap "$@" 2>&1 | tee "$out" || rc=${PIPESTATUS[0]}
  # The summary line: `# { total: 12, pass: 11, fail: 1, skip: ... }`
  local summary
  summary="$(grep -E '^# \{ total: [0-9]+' "$out" | tail -n 1 || true)"
  if [ -n "$summary" ]; then
    local p f
    p="$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$summary")"
    f="$(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$summary")"
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0}))
  elif [ "$rc" -ne 0 ]; then
    failed=$((failed + 1))
  fi
  if [ "$rc" -ne 0 ]; then tap_rc=$rc; fi
}

tests_ran=1
if [ "$#" -gt 0 ]; then
  # tap takes files, not directories: a directory argument means every test file under it.
  args=()
  for arg in "$@"; do
    if [ -d "$arg" ]; then
      while IFS= read -r file; do args+=("$file"); done < <(find "$arg" -name '*.test.ts' -not -path '*/node_modules/*' | sort)
    else
      args+=("$arg")
    fi
  done
  run_tap "${args[@]}"
else
  log "phase 1: tests that share the stack (parallel, $phase1_jobs files at a time)"
  run_tap --jobs="$phase1_jobs" --exclude='**/faults/**' --exclude='**/@(fixture*(s)|dist|node_modules)/**'
  if find . -path ./node_modules -prune -o -path '*/test/*' -path '*/faults/*' -name '*.test.ts' -print 2>/dev/null | grep -q .; then
    log "phase 2: fault tests (one file at a time)"
    run_tap --jobs=1 --include='test/**/faults/**/*.test.ts' --include='*/test/**/faults/**/*.test.ts' --include='faults/test/**/*.test.ts'
  fi
fi

# stop_stack (EXIT trap) stops the stack, then prints `N passed, N failed` last.
exit "$tap_rc"
