#!/usr/bin/env bash
# Accept-path throughput of one payment node with and without its CDC relay, measured with wrk
# straight against the node (no nginx), plus the relay's lag under that load.
#
#   RINGPAY_STACK_INFO=<info.json> cdc-relay/bench/relay-overhead.sh [rounds=2] [seconds=20] [connections=64] [threads=2]
#
# Needs a running stack for its Kafka (node scripts/stack.ts --info-file <info.json>). The bench
# node publishes to its own topic (bench.events, created here) so the stack's consumers never see
# its events. Runs alternate off/on to spread machine noise over both.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/node_modules/.bin:$PATH"
rounds="${1:-2}"; seconds="${2:-20}"; connections="${3:-64}"; threads="${4:-2}"
warmup_s=5
sample_interval_s=0.5
: "${RINGPAY_STACK_INFO:?set RINGPAY_STACK_INFO to the info file of a running stack}"
brokers="$(node -p "JSON.parse(require('fs').readFileSync(process.env.RINGPAY_STACK_INFO, 'utf8')).kafkaBrokers.join(',')")"
# The stack's broker takes SCRAM logins only: the bench node publishes to its own topic as the
# admin (the relay principal may write only payments.events).
kafka_user="$(node -p "JSON.parse(require('fs').readFileSync(process.env.RINGPAY_STACK_INFO, 'utf8')).kafkaCredentials?.admin?.username ?? ''")"
kafka_password="$(node -p "JSON.parse(require('fs').readFileSync(process.env.RINGPAY_STACK_INFO, 'utf8')).kafkaCredentials?.admin?.password ?? ''")"
kafka_ca="$(node -p "JSON.parse(require('fs').readFileSync(process.env.RINGPAY_STACK_INFO, 'utf8')).kafkaCredentials?.admin?.caFile ?? ''")"
# Relays sign every event (lib/event-signing.ts): the bench node does too, with a key of its own.
signing_key="bench-k1:$(node -p "require('crypto').randomBytes(32).toString('base64')")"
topic=bench.events
work="$(mktemp -d /tmp/ringpay-relay-bench.XXXXXX)"
trap 'kill $(cat "$work"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT

node --input-type=module -e "
import { createTopics } from '$ROOT/scripts/stack/kafka.ts'
const info = JSON.parse((await import('node:fs')).readFileSync(process.env.RINGPAY_STACK_INFO, 'utf8'))
await createTopics({ brokers: '$brokers'.split(','), sasl: info.kafkaCredentials?.admin }, [{ name: '$topic', partitions: 64, replicationFactor: 1 }])
"
node --input-type=module -e "import { writeApiKeysFile } from '$ROOT/scripts/stack/api-keys.ts'; writeApiKeysFile('$work/keys.json')"

free_port() { node -e "const s = require('net').createServer().listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close() })"; }

# CPU ticks per thread group of a process: main thread, relay worker, libuv pool, the rest.
thread_ticks() {
  local pid="$1" t comm stat rest
  local main=0 relay=0 pool=0 other=0 ticks
  for t in /proc/"$pid"/task/*; do
    comm="$(cat "$t/comm" 2>/dev/null)" || continue
    stat="$(cat "$t/stat" 2>/dev/null)" || continue
    rest="${stat##*) }"
    ticks="$(awk '{print $12 + $13}' <<<"$rest")"
    case "$comm" in
      MainThread|node) main=$((main + ticks)) ;;
      cdc-relay*) relay=$((relay + ticks)) ;;
      libuv-worker) pool=$((pool + ticks)) ;;
      *) other=$((other + ticks)) ;;
    esac
  done
  echo "$main $relay $pool $other"
}

# CPU ticks of a whole process (the Kafka broker's JVM).
process_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# The broker's CPU counts against the relay too; without a pid (several brokers, or a remote one)
# it is left out of the figures.
kafka_pid="${RINGPAY_KAFKA_PID:-$(pgrep -f 'kafka\.Kafka' | head -2 | awk 'END { if (NR == 1) print $1 }')}"

# awk reads everything (no early exit): curl must not hit a closed pipe under pipefail.
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" '!found && $1 ~ "^"n"\\{" {print $2; found = 1}'; }

run_one() {
  local mode="$1" round="$2"
  local id="bench-$mode-$round" pub adm
  pub="$(free_port)"; adm="$(free_port)"
  local env=(RINGPAY_NODE_ID="$id" RINGPAY_PUBLIC_PORT="$pub" RINGPAY_ADMIN_PORT="$adm" RINGPAY_DATA_DIR="$work/$id"
    RINGPAY_API_KEYS_FILE="$work/keys.json" RINGPAY_INTERNAL_SERVICES="audit:$(printf "%064d" 0)" RINGPAY_LOG_LEVEL=warn)
  if [ "$mode" = on ]; then
    env+=(KAFKA_BROKERS="$brokers" RINGPAY_EVENTS_TOPIC="$topic" RINGPAY_EVENT_SIGNING_KEY="$signing_key")
    if [ -n "$kafka_user" ]; then env+=(KAFKA_SASL_USERNAME="$kafka_user" KAFKA_SASL_PASSWORD="$kafka_password"); fi
    if [ -n "$kafka_ca" ]; then env+=(KAFKA_TLS_CA_FILE="$kafka_ca"); fi
  fi
  env -u KAFKA_BROKERS "${env[@]}" node payment-svc/main.ts >"$work/$id.log" 2>&1 &
  echo $! >"$work/node.pid"
  until curl -sf "http://127.0.0.1:$adm/readyz" >/dev/null; do sleep 0.1; done
  RUN_ID="w$round$mode$RANDOM" wrk -t"$threads" -c"$connections" -d"${warmup_s}s" -s cdc-relay/bench/post.lua "http://127.0.0.1:$pub" >/dev/null
  local max_lag=0 max_lag_s=0
  if [ "$mode" = on ]; then
    ( while true; do
        echo "$(metric "$adm" ringpay_relay_lag_events) $(metric "$adm" ringpay_relay_lag_seconds)"
        sleep "$sample_interval_s"
      done ) >"$work/lag-$id.txt" &
    echo $! >"$work/sampler.pid"
  fi
  local cpu0 wcpu0 pub0
  cpu0="$(metric "$adm" process_cpu_seconds_total)"
  if [ "$mode" = on ]; then
    until [ "$(metric "$adm" ringpay_relay_lag_events)" = 0 ]; do sleep 0.05; done
    sleep 2.1  # one worker CPU report interval
    wcpu0="$(metric "$adm" ringpay_relay_worker_cpu_seconds)"; pub0="$(metric "$adm" ringpay_relay_published_events_total)"
    cpu0="$(metric "$adm" process_cpu_seconds_total)"
  fi
  local ticks0; ticks0="$(thread_ticks "$(cat "$work/node.pid")")"
  local kticks0=0; [ -n "$kafka_pid" ] && kticks0="$(process_ticks "$kafka_pid")"
  local out
  out="$(RUN_ID="r$round$mode$RANDOM" wrk -t"$threads" -c"$connections" -d"${seconds}s" --latency -s cdc-relay/bench/post.lua "http://127.0.0.1:$pub")"
  local rps p50 p99 non2xx
  rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
  p50="$(awk '$1=="50%" {print $2}' <<<"$out")"
  p99="$(awk '$1=="99%" {print $2}' <<<"$out")"
  non2xx="$(awk -F= '/non2xx/ {print $2}' <<<"$out")"
  local cpu1 requests ticks1 hz
  ticks1="$(thread_ticks "$(cat "$work/node.pid")")"
  local kticks1=0; [ -n "$kafka_pid" ] && kticks1="$(process_ticks "$kafka_pid")"
  cpu1="$(metric "$adm" process_cpu_seconds_total)"
  requests="$(awk '/requests in/ {print $1}' <<<"$out")"
  hz="$(getconf CLK_TCK)"
  local per_thread
  per_thread="$(awk -v a="$ticks0" -v b="$ticks1" -v n="$requests" -v hz="$hz" 'BEGIN {
    split(a, x, " "); split(b, y, " ")
    printf "main %.0f relay %.0f pool %.0f other %.0f", (y[1]-x[1])*1e6/hz/n, (y[2]-x[2])*1e6/hz/n, (y[3]-x[3])*1e6/hz/n, (y[4]-x[4])*1e6/hz/n }')"
  local cpu_us; cpu_us="$(awk -v a="$cpu0" -v b="$cpu1" -v n="$requests" 'BEGIN {printf "%.1f", (b - a) * 1e6 / n}')"
  local drain_ms=0
  if [ "$mode" = on ]; then
    kill "$(cat "$work/sampler.pid")"; rm -f "$work/sampler.pid"
    max_lag="$(awk 'BEGIN{m=0} $1>m {m=$1} END{print m}' "$work/lag-$id.txt")"
    max_lag_s="$(awk 'BEGIN{m=0} $2>m {m=$2} END{print m}' "$work/lag-$id.txt")"
    local t0; t0="$(date +%s%N)"
    until [ "$(metric "$adm" ringpay_relay_lag_events)" = 0 ]; do sleep 0.05; done
    drain_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    sleep 2.1
    published="$(metric "$adm" ringpay_relay_published_events_total)"
    batches="$(metric "$adm" ringpay_relay_publish_batch_events_count)"
    from_memory="$(curl -s "http://127.0.0.1:$adm/metrics" | awk '$1 ~ /^ringpay_relay_read_events_total\{source="memory"/ {print $2}')"
    wcpu_us="$(awk -v a="$wcpu0" -v b="$(metric "$adm" ringpay_relay_worker_cpu_seconds)" -v p0="$pub0" -v p1="$published" 'BEGIN {printf "%.1f", (b - a) * 1e6 / (p1 - p0)}')"
  fi
  kill -TERM "$(cat "$work/node.pid")"; wait "$(cat "$work/node.pid")" 2>/dev/null || true; rm -f "$work/node.pid"
  local kafka_us; kafka_us="$(awk -v a="$kticks0" -v b="$kticks1" -v n="$requests" -v hz="$hz" 'BEGIN {printf "%.0f", (b - a) * 1e6 / hz / n}')"
  printf '%-4s round %d  %9s req/s  p50 %-8s p99 %-8s non-2xx %-4s node cpu %6s µs/req (%s) kafka %s µs/req' \
    "$mode" "$round" "$rps" "$p50" "$p99" "$non2xx" "$cpu_us" "$per_thread" "${kafka_pid:+$kafka_us}"
  if [ "$mode" = on ]; then
    printf '  relay: lag max %s events / %ss, drained %d ms after load, %s µs cpu/event, %s events (%s from memory) in %s batches' \
      "$max_lag" "$max_lag_s" "$drain_ms" "$wcpu_us" "$published" "$from_memory" "$batches"
  fi
  printf '\n'
}

echo "relay overhead: wrk -t$threads -c$connections -d${seconds}s against one node; Kafka $brokers topic $topic"
for round in $(seq 1 "$rounds"); do
  run_one off "$round"
  run_one on "$round"
done
