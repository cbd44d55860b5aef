#!/usr/bin/env bash
# deploy/local/demo.sh — the clickstream pipeline end to end on the local stack (make demo).
#
#   demo.sh        generate clicks into Kafka at a steady rate, ingest them into the S3 lake, run a
#                  coordinator (scheduled windows) and two workers, wait until a few windows are
#                  aggregated and indexed, print the top URLs per country from Elasticsearch
#   demo.sh down   stop whatever a demo left running
#
# Secure by default: the cluster runs on an etcd of its own (the stack's etcd binary on free loopback
# ports, data in the demo's folder) with authentication on (clickstream etcd-auth, generated passwords
# in files), and every gRPC connection is mutual TLS with the certificates of `clickstream certs`: the
# coordinator and the workers each with their own, submit with the operator's, status with the
# viewer's. At the end the demo checks that no log holds a password or a private key.
#
# Expects the stack's environment (make demo sources it): CLICKSTREAM_KAFKA_BROKERS,
# CLICKSTREAM_S3_ENDPOINT, AWS_*, CLICKSTREAM_ES_URL. Knobs: DEMO_WINDOW (1m), DEMO_WINDOWS (2: windows
# to wait for), DEMO_RATE (400 clicks/s), DEMO_SESSION_TIMEOUT (30s), DEMO_LATENESS (5s),
# DEMO_TIMEOUT (420 s), DEMO_KEEP=1 (leave running), DEMO_UI_PORT (17480: the coordinator's web UI),
# DEMO_ETCD_PORT and DEMO_ETCD_PEER_PORT (free ones),
# CLICKSTREAM_ETCD_BINARY (etcd on PATH).
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${CLICKSTREAM_BIN:-$ROOT/bin/clickstream}
STATE=${CLICKSTREAM_STATE:-$HOME/.local/state/clickstream}
DEMO_DIR=$STATE/demo
WINDOW=${DEMO_WINDOW:-1m}
WINDOWS=${DEMO_WINDOWS:-2}
RATE=${DEMO_RATE:-400}
SESSION_TIMEOUT=${DEMO_SESSION_TIMEOUT:-30s}
LATENESS=${DEMO_LATENESS:-5s}
TIMEOUT=${DEMO_TIMEOUT:-420}
COORD=127.0.0.1:${DEMO_COORDINATOR_PORT:-17400}
INGEST_METRICS=127.0.0.1:${DEMO_INGEST_METRICS_PORT:-17401}
UI=127.0.0.1:${DEMO_UI_PORT:-17480}
ALIAS=${DEMO_INDEX:-clickstream-demo-$(date -u +%Y%m%d%H%M%S)}
CERTS=$DEMO_DIR/certs
SECRETS=$DEMO_DIR/secrets

say() { printf '\033[1m[demo]\033[0m %s\n' "$*"; }
die() { printf '[demo] ERROR: %s\n' "$*" >&2; exit 1; }

# stop PIDFILE...: SIGTERM, then SIGKILL after 10 s
stop() {
  local pid f
  for f in "$@"; do
    [[ -e $f ]] || continue
    pid=$(cat "$f")
    kill -TERM "$pid" 2>/dev/null || true
  done
  for f in "$@"; do
    [[ -e $f ]] || continue
    pid=$(cat "$f")
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$f"
  done
}

# stop_all stops the pipeline, then its etcd.
stop_all() {
  local f procs=()
  for f in "$DEMO_DIR"/*.pid; do
    [[ -e $f && $f != "$DEMO_DIR/etcd.pid" ]] && procs+=("$f")
  done
  stop "${procs[@]}"
  stop "$DEMO_DIR/etcd.pid"
}

if [[ ${1:-} == down ]]; then
  stop_all
  say "demo processes stopped"
  exit 0
fi

for v in CLICKSTREAM_KAFKA_BROKERS CLICKSTREAM_S3_ENDPOINT CLICKSTREAM_ES_URL; do
  [[ -n ${!v:-} ]] || die "$v is not set: run 'make demo' (it starts the stack and loads its env file)"
done
[[ -x $BIN ]] || die "$BIN is missing: run 'make build'"
ETCD_BIN=${CLICKSTREAM_ETCD_BINARY:-$(command -v etcd || true)}
[[ -n $ETCD_BIN && -x $ETCD_BIN ]] || die "no etcd binary: run 'make demo' (deploy/local/stack.sh up installs it) or set CLICKSTREAM_ETCD_BINARY"

mkdir -p "$DEMO_DIR"
chmod 700 "$DEMO_DIR"
stop_all
ID=$(date -u +%Y%m%d%H%M%S)
TOPIC=demo-clicks-$ID
LAKE=s3://clickstream-demo/$ID/lake
OUT=s3://clickstream-demo/$ID/aggregates
PREFIX=/clickstream-demo/$ID
# The lake's Iceberg tables (events, aggregates): an SQLite catalog that ingest and the
# coordinator share on this machine (a cluster would use a shared catalog).
CATALOG=sqlite://$DEMO_DIR/catalog-$ID.db
[[ ${DEMO_KEEP:-0} == 1 ]] || trap 'stop_all' EXIT

lake_events() { # valid events ingest has committed, from its metrics
  curl -fsS "http://$INGEST_METRICS/metrics" 2>/dev/null |
    awk '/^clickstream_ingest_events_written_total/ {printf "%d", $2; found=1} END {if (!found) printf "0"}'
}

launch() { # launch NAME CMD...: run CMD in the background, log and pid in $DEMO_DIR
  local name=$1; shift
  "$@" >"$DEMO_DIR/$name.log" 2>&1 &
  echo $! >"$DEMO_DIR/$name.pid"
}
start() { launch "$1" "$BIN" "${@:2}"; } # start NAME ARGS...: the clickstream binary

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { # a loopback port nothing listens on (and not $1), below the kernel's ephemeral ports
  local p
  for _ in $(seq 1 100); do
    p=$(( 20000 + RANDOM % 12000 ))
    [[ $p != "${1:-}" ]] && port_free "$p" && { echo "$p"; return; }
  done
  die "no free loopback port found"
}

tls_flags() { # tls_flags VAR ROLE NAME: set the array VAR to the --tls-* flags of ROLE NAME's certificate
  local -n flags=$1
  flags=(--tls-ca "$CERTS/ca.pem" --tls-cert "$CERTS/$2-$3.pem" --tls-key "$CERTS/$2-$3-key.pem")
}
tls_flags COORDINATOR_TLS coordinator local
tls_flags VIEWER_TLS viewer local
tls_flags OPERATOR_TLS operator local
viewer() { "$BIN" "$@" --coordinator "$COORD" "${VIEWER_TLS[@]}"; }
operator() { "$BIN" "$@" --coordinator "$COORD" "${OPERATOR_TLS[@]}"; }

say "run $ID: topic $TOPIC, lake $LAKE, results $OUT, index alias $ALIAS"
say "windows of $WINDOW, session timeout $SESSION_TIMEOUT, allowed lateness $LATENESS; logs in $DEMO_DIR"

# Certificates: a CA (reused from an earlier run) and one certificate per process and client.
"$BIN" certs --dir "$CERTS" >"$DEMO_DIR/certs.log" 2>&1 || { cat "$DEMO_DIR/certs.log" >&2; die "clickstream certs failed"; }
say "mutual TLS: certificates in $CERTS (coordinator, worker-1, worker-2, operator, viewer)"

# The cluster's own etcd, with authentication on: fresh data and new passwords every run.
ETCD_PORT=${DEMO_ETCD_PORT:-$(free_port)}
ETCD_PEER_PORT=${DEMO_ETCD_PEER_PORT:-$(free_port "$ETCD_PORT")}
port_free "$ETCD_PORT" && port_free "$ETCD_PEER_PORT" || die "etcd ports $ETCD_PORT/$ETCD_PEER_PORT are in use: set DEMO_ETCD_PORT and DEMO_ETCD_PEER_PORT"
ETCD=http://127.0.0.1:$ETCD_PORT
rm -rf "$DEMO_DIR/etcd" "$SECRETS"
mkdir -m 700 "$SECRETS"
for user in root coordinator worker; do
  (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$SECRETS/$user")
done
etcd_env=()
for v in $(compgen -e | grep '^ETCD_' || true); do etcd_env+=(-u "$v"); done # etcd reads ETCD_* as flags
launch etcd env "${etcd_env[@]}" "$ETCD_BIN" --name demo --data-dir "$DEMO_DIR/etcd" \
  --listen-client-urls "$ETCD" --advertise-client-urls "$ETCD" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "demo=http://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state new --logger zap --log-level warn
for _ in $(seq 1 100); do
  curl -s -m 2 "$ETCD/health" 2>/dev/null | grep -q '"health":"true"' && break
  kill -0 "$(cat "$DEMO_DIR/etcd.pid")" 2>/dev/null || { tail -20 "$DEMO_DIR/etcd.log" >&2; die "etcd exited"; }
  sleep 0.2
done
"$BIN" etcd-auth --etcd "$ETCD" --etcd-prefix "$PREFIX" --root-password-file "$SECRETS/root" \
  --coordinator-password-file "$SECRETS/coordinator" --worker-password-file "$SECRETS/worker" >"$DEMO_DIR/etcd-auth.log" 2>&1 ||
  { cat "$DEMO_DIR/etcd-auth.log" >&2; die "clickstream etcd-auth failed"; }
say "etcd at $ETCD with authentication on: users clickstream-coordinator and clickstream-worker, passwords in $SECRETS"
start gen gen --brokers "$CLICKSTREAM_KAFKA_BROKERS" --topic "$TOPIC" --realtime --rate "$RATE" --events 0 \
  --users 3000 --urls 300 --late-ratio 0.002 --max-lateness 3s --seed "$RANDOM"
start ingest ingest --brokers "$CLICKSTREAM_KAFKA_BROKERS" --topic "$TOPIC" --group "demo-$ID" \
  --lake "$LAKE" --s3-create-bucket --flush-interval 2s --metrics-listen "$INGEST_METRICS" \
  --catalog "$CATALOG" --table-commit-interval 5s
start coordinator coordinator --etcd "$ETCD" --etcd-prefix "$PREFIX" --listen "$COORD" --http-listen "$UI" \
  --etcd-user clickstream-coordinator --etcd-password-file "$SECRETS/coordinator" "${COORDINATOR_TLS[@]}" \
  --lake "$LAKE" --s3-create-bucket --session-timeout "$SESSION_TIMEOUT" \
  --schedule --window "$WINDOW" --lateness "$LATENESS" --schedule-out "$OUT" --output-root "$OUT" --schedule-interval 2s \
  --idle-source-timeout 30s --es "$CLICKSTREAM_ES_URL" --es-index "$ALIAS" --catalog "$CATALOG"
# The web UI is HTTPS with the coordinator's certificate, for clients with a viewer's (or an
# operator's) certificate: curl below; a browser needs the viewer's certificate imported, e.g. as
# openssl pkcs12 -export -in viewer-local.pem -inkey viewer-local-key.pem -out viewer.p12.
UI_URL=https://$UI/
ui_get() { curl -fsS -m 5 --cacert "$CERTS/ca.pem" --cert "$CERTS/viewer-local.pem" --key "$CERTS/viewer-local-key.pem" "$UI_URL$1"; }
say "web UI of the coordinator: $UI_URL (mutual TLS: the viewer's certificate in $CERTS)"
for i in 1 2; do
  tls_flags worker_tls worker "worker-$i"
  start "worker-$i" worker --etcd "$ETCD" --etcd-prefix "$PREFIX" --listen 127.0.0.1:0 \
    --etcd-user clickstream-worker --etcd-password-file "$SECRETS/worker" "${worker_tls[@]}" \
    --lake-root "$LAKE" --output-root "$OUT"
done

# Progress: every few seconds, what ingest committed and which windows are done.
deadline=$(( $(date +%s) + TIMEOUT ))
done_windows=0
while (( $(date +%s) < deadline )); do
  sleep 5
  for p in etcd gen ingest coordinator worker-1 worker-2; do
    kill -0 "$(cat "$DEMO_DIR/$p.pid")" 2>/dev/null || { tail -20 "$DEMO_DIR/$p.log" >&2; die "$p exited"; }
  done
  committed=$(grep -c 'msg=committed' "$DEMO_DIR/ingest.log" 2>/dev/null || true)
  jobs=$(viewer status 2>/dev/null || true)
  done_windows=$(grep -ciE ' succeeded .* yes ' <<<"$jobs" || true)
  running=$(grep -ciE ' (running|merging|pending) ' <<<"$jobs" || true)
  say "$(date -u +%T)  events committed to the lake: $(lake_events); windows indexed: $done_windows/$WINDOWS, jobs running: $running"
  (( done_windows >= WINDOWS )) && break
done
(( done_windows >= WINDOWS )) || { viewer status >&2 || true; die "only $done_windows windows indexed within ${TIMEOUT}s"; }

echo
say "jobs (clickstream status, with the viewer's certificate):"
viewer status
echo
ui_get api/workers >/dev/null || die "the web UI at $UI_URL does not answer the viewer"
curl -s -o /dev/null -m 5 --cacert "$CERTS/ca.pem" "${UI_URL}api/jobs" -w '%{http_code}' | grep -q 401 ||
  die "the web UI at $UI_URL answers a client without a certificate"
say "the web UI at $UI_URL answers the viewer's certificate, and refuses a client without one"
echo
# The roles: the viewer reads but may not submit; the operator re-runs the first window.
window=$(viewer status | awk '$2 == "succeeded" && $5 == "yes" {w = $4} END {print w}')
[[ -n $window ]] || die "no indexed window in the status"
from=${window%/*} to=${window#*/}
if refusal=$(viewer submit --from "$from" --to "$to" --out "$OUT/rerun" 2>&1); then
  die "the viewer submitted a job"
fi
say "the viewer may not submit: ${refusal#clickstream submit: }"
say "the operator re-runs the window $window into $OUT/rerun:"
operator submit --from "$from" --to "$to" --out "$OUT/rerun" --wait
echo
say "top URLs per country (Elasticsearch alias $ALIAS, every indexed window):"
"$BIN" top --es "$CLICKSTREAM_ES_URL" --index "$ALIAS" --n 3 --countries 6
echo

# The same data as Apache Iceberg tables, read by outside engines that know nothing of clickstream.
if [[ -n ${CLICKSTREAM_READERS_PYTHON:-} ]]; then
  [[ ${DEMO_KEEP:-0} == 1 ]] || stop_all # ingest publishes its last commits to the table as it exits
  say "the lake as Iceberg tables (catalog $CATALOG), read by pyiceberg and DuckDB:"
  "$CLICKSTREAM_READERS_PYTHON" "$(dirname "${BASH_SOURCE[0]}")/readers.py" show "$CATALOG" || die "the Iceberg tables could not be read"
  echo
fi

# No log may hold a secret: the etcd passwords, the S3 secret key, a private key.
[[ ${DEMO_KEEP:-0} == 1 ]] || stop_all
leaks=()
for f in "$SECRETS"/*; do
  grep -qrF -- "$(cat "$f")" "$DEMO_DIR"/*.log && leaks+=("the etcd $(basename "$f") password")
done
if [[ -n ${AWS_SECRET_ACCESS_KEY:-} ]] && grep -qrF -- "$AWS_SECRET_ACCESS_KEY" "$DEMO_DIR"/*.log; then
  leaks+=("the S3 secret key")
fi
grep -qrF -- "PRIVATE KEY" "$DEMO_DIR"/*.log && leaks+=("a private key")
(( ${#leaks[@]} == 0 )) || die "secrets in the logs of $DEMO_DIR: ${leaks[*]}"
say "no password, secret key or private key in the logs"
say "done. 'make demo-down' stops the local stack; DEMO_KEEP=1 make demo leaves the pipeline running"
say "(and the web UI at $UI_URL)."
