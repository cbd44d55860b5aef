#!/usr/bin/env bash
# deploy/local/demo.sh — the clickstream pipeline end to end on the local stack (make demo).
#
#   demo.sh        generate clicks into Kafka at a steady rate, ingest them into the S3 lake, run a
#                  coordinator (scheduled windows) and two workers, wait until a few windows are
#                  aggregated and indexed, print the top URLs per country from Elasticsearch
#   demo.sh down   stop whatever a demo left running
#
# Expects the stack's environment (make demo sources it): CLICKSTREAM_KAFKA_BROKERS,
# CLICKSTREAM_S3_ENDPOINT, AWS_*, CLICKSTREAM_ES_URL, CLICKSTREAM_ETCD_ENDPOINTS.
# Knobs: DEMO_WINDOW (1m), DEMO_WINDOWS (2: windows to wait for), DEMO_RATE (400 clicks/s),
# DEMO_SESSION_TIMEOUT (30s), DEMO_LATENESS (5s), DEMO_TIMEOUT (420 s), DEMO_KEEP=1 (leave running).
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
ALIAS=${DEMO_INDEX:-clickstream-demo-$(date -u +%Y%m%d%H%M%S)}

say() { printf '\033[1m[demo]\033[0m %s\n' "$*"; }
die() { printf '[demo] ERROR: %s\n' "$*" >&2; exit 1; }

stop_all() {
  local pid f
  for f in "$DEMO_DIR"/*.pid; do
    [[ -e $f ]] || continue
    pid=$(cat "$f")
    kill -TERM "$pid" 2>/dev/null || true
  done
  for f in "$DEMO_DIR"/*.pid; do
    [[ -e $f ]] || continue
    pid=$(cat "$f")
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$f"
  done
}

if [[ ${1:-} == down ]]; then
  stop_all
  say "demo processes stopped"
  exit 0
fi

for v in CLICKSTREAM_KAFKA_BROKERS CLICKSTREAM_S3_ENDPOINT CLICKSTREAM_ES_URL CLICKSTREAM_ETCD_ENDPOINTS; do
  [[ -n ${!v:-} ]] || die "$v is not set: run 'make demo' (it starts the stack and loads its env file)"
done
[[ -x $BIN ]] || die "$BIN is missing: run 'make build'"

mkdir -p "$DEMO_DIR"
stop_all
ID=$(date -u +%Y%m%d%H%M%S)
TOPIC=demo-clicks-$ID
LAKE=s3://clickstream-demo/$ID/lake
OUT=s3://clickstream-demo/$ID/aggregates
PREFIX=/clickstream-demo/$ID
[[ ${DEMO_KEEP:-0} == 1 ]] || trap 'stop_all' EXIT

lake_events() { # valid events ingest has committed, from its metrics
  curl -fsS "http://$INGEST_METRICS/metrics" 2>/dev/null |
    awk '/^clickstream_ingest_events_written_total/ {printf "%d", $2; found=1} END {if (!found) printf "0"}'
}

start() { # start NAME ARGS...: run the binary in the background, log and pid in $DEMO_DIR
  local name=$1; shift
  "$BIN" "$@" >"$DEMO_DIR/$name.log" 2>&1 &
  echo $! >"$DEMO_DIR/$name.pid"
}

say "run $ID: topic $TOPIC, lake $LAKE, results $OUT, index alias $ALIAS"
say "windows of $WINDOW, session timeout $SESSION_TIMEOUT, allowed lateness $LATENESS; logs in $DEMO_DIR"
start gen gen --brokers "$CLICKSTREAM_KAFKA_BROKERS" --topic "$TOPIC" --realtime --rate "$RATE" --events 0 \
  --users 3000 --urls 300 --late-ratio 0.002 --max-lateness 3s --seed "$RANDOM"
start ingest ingest --brokers "$CLICKSTREAM_KAFKA_BROKERS" --topic "$TOPIC" --group "demo-$ID" \
  --lake "$LAKE" --s3-create-bucket --flush-interval 2s --metrics-listen "$INGEST_METRICS"
start coordinator coordinator --etcd "$CLICKSTREAM_ETCD_ENDPOINTS" --etcd-prefix "$PREFIX" --listen "$COORD" \
  --lake "$LAKE" --s3-create-bucket --session-timeout "$SESSION_TIMEOUT" \
  --schedule --window "$WINDOW" --lateness "$LATENESS" --schedule-out "$OUT" --output-root "$OUT" --schedule-interval 2s \
  --idle-source-timeout 30s --es "$CLICKSTREAM_ES_URL" --es-index "$ALIAS"
for i in 1 2; do
  start "worker-$i" worker --etcd "$CLICKSTREAM_ETCD_ENDPOINTS" --etcd-prefix "$PREFIX" --listen 127.0.0.1:0 \
    --lake-root "$LAKE" --output-root "$OUT"
done

# Progress: every few seconds, what ingest committed and which windows are done.
deadline=$(( $(date +%s) + TIMEOUT ))
done_windows=0
while (( $(date +%s) < deadline )); do
  sleep 5
  for p in gen ingest coordinator worker-1 worker-2; do
    kill -0 "$(cat "$DEMO_DIR/$p.pid")" 2>/dev/null || { tail -20 "$DEMO_DIR/$p.log" >&2; die "$p exited"; }
  done
  committed=$(grep -c 'msg=committed' "$DEMO_DIR/ingest.log" 2>/dev/null || true)
  jobs=$("$BIN" status --coordinator "$COORD" 2>/dev/null || true)
  done_windows=$(grep -ciE ' succeeded .* yes ' <<<"$jobs" || true)
  running=$(grep -ciE ' (running|merging|pending) ' <<<"$jobs" || true)
  say "$(date -u +%T)  events committed to the lake: $(lake_events); windows indexed: $done_windows/$WINDOWS, jobs running: $running"
  (( done_windows >= WINDOWS )) && break
done
(( done_windows >= WINDOWS )) || { "$BIN" status --coordinator "$COORD" >&2 || true; die "only $done_windows windows indexed within ${TIMEOUT}s"; }

echo
say "jobs:"
"$BIN" status --coordinator "$COORD"
echo
say "top URLs per country (Elasticsearch alias $ALIAS, every indexed window):"
"$BIN" top --es "$CLICKSTREAM_ES_URL" --index "$ALIAS" --n 3 --countries 6
echo
say "done. 'make demo-down' stops the local stack; DEMO_KEEP=1 make demo leaves the pipeline running."
