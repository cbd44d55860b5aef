#!/usr/bin/env bash
# deploy/local/stack.sh — the clickstream dev/test stack as native processes (no Docker).
#
#   stack.sh up [svc...]             install what is missing, start what is not running, wait until healthy
#   stack.sh down [--purge] [svc...] stop what this script started (SIGTERM, then SIGKILL); --purge deletes data
#   stack.sh stop SVC                stop one service, keep its data (chaos tests)
#   stack.sh start SVC               start one service again and wait until healthy
#   stack.sh status                  state, pid and endpoint of every service
#   stack.sh env                     print (and rewrite) $STATE/env: export lines for the services that are up
#   stack.sh logs [-f] SVC           last lines (LINES=200) of a service's log, -f to follow
#   stack.sh tools                   install the test tools only (promtool, chromium, the Iceberg readers; `up` installs them too)
#   stack.sh java-home               print the Java 17+ home the stack uses, installing one if none (make bench-compare's Spark)
#
# Services: kafka s3 es etcd pg (default: all). Works as root (CI) or as a normal user (apt via sudo).
# Downloads: ${CLICKSTREAM_CACHE:-~/.cache/clickstream}; data, logs, pids: ${CLICKSTREAM_STATE:-~/.local/state/clickstream}.
# Every port, version and timeout below can be overridden from the environment.
#
# Kafka has two client listeners: PLAINTEXT (no authentication) and SASL_SSL (TLS with a certificate
# from a CA of the stack's own, SCRAM-SHA-512 and SCRAM-SHA-256 for one user whose random password is
# in a mode-0600 file). Their files are under $STATE/kafka (tls/ca.pem, client.password) and named by
# the env file (CLICKSTREAM_KAFKA_SASL_*). `up` restarts a running Kafka whose configuration changed.
#
# pg is PostgreSQL from Debian's package (not its service or its default cluster): a cluster of the
# stack's own in $STATE/pg, on 127.0.0.1 only, run as the package's postgres user when the script runs
# as root. It holds the Iceberg catalog (CLICKSTREAM_CATALOG_URI): a role and a database named
# clickstream, password authentication (SCRAM-SHA-256) with a random password in a mode-0600 file
# (CLICKSTREAM_CATALOG_PASSWORD_FILE).
set -Eeuo pipefail
umask 022

# ---------------------------------------------------------------------------------------------- settings
CACHE=${CLICKSTREAM_CACHE:-$HOME/.cache/clickstream}
STATE=${CLICKSTREAM_STATE:-$HOME/.local/state/clickstream}
HOST=127.0.0.1

KAFKA_VERSION=${CLICKSTREAM_KAFKA_VERSION:-4.4.0}
KAFKA_PORT=${CLICKSTREAM_KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${CLICKSTREAM_KAFKA_CONTROLLER_PORT:-19093}
KAFKA_SASL_PORT=${CLICKSTREAM_KAFKA_SASL_PORT:-19094}    # SASL_SSL: TLS + SCRAM
KAFKA_SASL_USER=${CLICKSTREAM_KAFKA_SASL_USER:-clickstream}
KAFKA_CERT_DAYS=${CLICKSTREAM_KAFKA_CERT_DAYS:-825}      # the broker certificate; renewed 30 days before it expires
KAFKA_HEAP=${CLICKSTREAM_KAFKA_HEAP:--Xms256m -Xmx512m}

VERSITYGW_VERSION=${CLICKSTREAM_VERSITYGW_VERSION:-v1.8.0}
S3_PORT=${CLICKSTREAM_S3_PORT:-17070}
S3_ACCESS_KEY=${CLICKSTREAM_S3_ACCESS_KEY:-clickstream}
S3_SECRET_KEY=${CLICKSTREAM_S3_SECRET_KEY:-clickstream-secret}
S3_REGION=${CLICKSTREAM_S3_REGION:-us-east-1}

ES_VERSION=${CLICKSTREAM_ES_VERSION:-8.19.21}
ES_PORT=${CLICKSTREAM_ES_PORT:-19200}
ES_TRANSPORT_PORT=${CLICKSTREAM_ES_TRANSPORT_PORT:-19300}
ES_HEAP=${CLICKSTREAM_ES_HEAP:--Xms512m -Xmx512m}
# C1 only: Elasticsearch starts with ~35% less CPU (a restart in chaos tests, a cold CI machine) at some cost
# in peak throughput, which a test stack does not need. CLICKSTREAM_ES_JAVA_OPTS= (empty) turns it off.
ES_EXTRA_JAVA_OPTS=${CLICKSTREAM_ES_JAVA_OPTS--XX:TieredStopAtLevel=1}
ES_USER=${CLICKSTREAM_ES_USER:-clickstream}   # Elasticsearch refuses to run as root
ES_JAVA_HOME_OVERRIDE=${CLICKSTREAM_ES_JAVA_HOME:-}  # default: the Java 17+ that Kafka uses

ETCD_PORT=${CLICKSTREAM_ETCD_PORT:-12379}
ETCD_PEER_PORT=${CLICKSTREAM_ETCD_PEER_PORT:-12380}

PG_PORT=${CLICKSTREAM_PG_PORT:-15432}
PG_ROLE=${CLICKSTREAM_PG_ROLE:-clickstream}      # the catalog's role and database
PG_OS_USER=${CLICKSTREAM_PG_USER:-postgres}      # as root: the user PostgreSQL runs as (Debian's package creates it)

UP_TIMEOUT=${CLICKSTREAM_UP_TIMEOUT:-180}     # seconds to wait for one service to become healthy
STOP_TIMEOUT=${CLICKSTREAM_STOP_TIMEOUT:-30}  # seconds between SIGTERM and SIGKILL
MAVEN_REPO=${CLICKSTREAM_MAVEN_REPO:-$CACHE/m2}

ALL_SERVICES=(kafka s3 es etcd pg)
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

export DEBIAN_FRONTEND=noninteractive

# --------------------------------------------------------------------------------------------- utilities
log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

now() { date +%s; }

# as_root CMD...: run CMD as root (directly, or through non-interactive sudo)
as_root() {
  if [[ $EUID -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
  else die "need root for: $* (run as root or install sudo)"
  fi
}

APT_UPDATED=0
apt_install() { # apt_install PKG...
  if [[ $APT_UPDATED -eq 0 ]]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || die "apt-get update failed"
    APT_UPDATED=1
  fi
  log "apt-get install -y $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null \
    || die "apt-get install $* failed"
}

# run_logged NAME CMD...: run CMD with its output in $STATE/logs/NAME.log; on failure show the log's tail
run_logged() {
  local name=$1 lf
  shift
  lf=$STATE/logs/$name.log
  if ! "$@" >"$lf" 2>&1; then
    printf '[stack] ---- %s failed; last 30 lines of %s ----\n' "$*" "$lf" >&2
    tail -n 30 "$lf" >&2
    return 1
  fi
}

need_cmd() { # need_cmd CMD [DEBIAN_PACKAGE]
  command -v "$1" >/dev/null 2>&1 || apt_install "${2:-$1}"
  command -v "$1" >/dev/null 2>&1 || die "$1 not found after installing ${2:-$1}"
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT
port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# java_home_for MIN_MAJOR: print a JDK directory with java >= MIN_MAJOR
java_home_for() {
  local min=$1 cand v
  for cand in "${CLICKSTREAM_JAVA_HOME:-}" /usr/lib/jvm/java-17-openjdk-amd64 /usr/lib/jvm/java-17-openjdk-arm64 \
              /usr/lib/jvm/temurin-25-jdk-amd64 /usr/lib/jvm/temurin-21-jdk-amd64 "${JAVA_HOME:-}" \
              "$(dirname "$(dirname "$(readlink -f "$(command -v java 2>/dev/null || echo /nonexistent)")")")"; do
    [[ -n $cand && -x $cand/bin/java ]] || continue
    v=$("$cand/bin/java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
    [[ ${v%%.*} =~ ^[0-9]+$ ]] && (( ${v%%.*} >= min )) && { echo "$cand"; return 0; }
  done
  return 1
}

# java17: set JAVA17 (cached) to a Java 17+ home, or die
JAVA17=""
java17() {
  [[ -n $JAVA17 ]] && return 0
  JAVA17=$(java_home_for 17) || die "needs Java 17+ (apt-get install openjdk-17-jre-headless, or set CLICKSTREAM_JAVA_HOME)"
}

# ------------------------------------------------------------------------------------ process bookkeeping
pidfile() { echo "$STATE/run/$1.pid"; }
logfile() { echo "$STATE/logs/$1.log"; }

# marker: a string that the command line of a running service's leader contains (pid files without a
# start time only)
marker() {
  case $1 in
    kafka) echo "kafka.Kafka $STATE/kafka/server.properties" ;;
    s3) echo "posix $STATE/s3" ;;
    es) echo "-Des.path.conf=$STATE/es/config" ;;
    etcd) echo "--data-dir $STATE/etcd/data" ;;
    pg) echo "-D $STATE/pg/data" ;;
  esac
}

# proc_start PID: the process's start time (clock ticks since boot); with the pid it identifies a process
proc_start() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $20 }'; }

# svc_pid SVC: print the pid if this script started SVC and it is still running. The pid file holds
# "PID START": a reused pid has another start time. (A file without START falls back to the marker.)
svc_pid() {
  local f pid st
  f=$(pidfile "$1")
  [[ -f $f ]] || return 1
  read -r pid st <"$f" || [[ -n ${pid:-} ]] || return 1
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  if [[ -n ${st:-} ]]; then
    [[ $(proc_start "$pid") == "$st" ]] || return 1
  else
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$(marker "$1")" || return 1
  fi
  echo "$pid"
}

# launch SVC CMD...: start CMD in its own session (pgid = pid) with output to the service log
launch() {
  local svc=$1 lf pid
  shift
  lf=$(logfile "$svc")
  [[ -f $lf ]] && mv -f "$lf" "$lf.prev"
  printf '=== %s: %s\n' "$(date -Is)" "$*" >"$lf"
  # fd 9 holds the stack lock: the service must not inherit it
  setsid "$@" >>"$lf" 2>&1 </dev/null 9>&- &
  pid=$!
  echo "$pid $(proc_start "$pid")" >"$(pidfile "$svc")"
  now >"$STATE/run/$svc.started"
  log "$svc: started (pid $pid, log $lf)"
}

# stop_svc SVC: SIGTERM the service's process group, SIGKILL after STOP_TIMEOUT
stop_svc() {
  local svc=$1 pid deadline
  if ! pid=$(svc_pid "$svc"); then
    rm -f "$(pidfile "$svc")"
    log "$svc: not running"
    return 0
  fi
  log "$svc: stopping (pid $pid)"
  if [[ $svc == pg ]]; then
    # SIGINT to the postmaster: a fast shutdown (it ends its sessions, then checkpoints); SIGTERM
    # would wait for every client to disconnect
    kill -INT "$pid" 2>/dev/null || true
  else
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  fi
  deadline=$(( $(now) + STOP_TIMEOUT ))
  while alive "$pid" || pgrp_alive "$pid"; do
    if (( $(now) >= deadline )); then
      log "$svc: still running after ${STOP_TIMEOUT}s, sending SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.2
  done
  rm -f "$(pidfile "$svc")" "$STATE/run/$svc.started"
  log "$svc: stopped"
}

# alive PID / pgrp_alive PGID: a live (non-zombie) process / a live process in the group
alive() {
  local st
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $st && $st != Z ]]
}
pgrp_alive() { ps -e -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { f = 1 } END { exit !f }'; }

# fail SVC MESSAGE: report a start failure with the tail of the service's log
fail() {
  local svc=$1 lf
  shift
  lf=$(logfile "$svc")
  {
    printf '[stack] ERROR: %s: %s\n' "$svc" "$*"
    if [[ -f $lf ]]; then
      printf '[stack] ---- last 40 lines of %s ----\n' "$lf"
      tail -n 40 "$lf"
      printf '[stack] ----\n'
    fi
  } >&2
  return 1
}

# wait_healthy SVC...: poll every service's health_SVC until all pass; fail a service whose process
# dies or that is not healthy UP_TIMEOUT seconds after its start. Logs each as it becomes healthy.
wait_healthy() {
  local pending=("$@") next s started rc=0
  while [[ ${#pending[@]} -gt 0 ]]; do
    next=()
    for s in "${pending[@]}"; do
      started=$(cat "$STATE/run/$s.started" 2>/dev/null || now)
      if "health_$s"; then
        if [[ " ${TO_START[*]} " == *" $s "* ]]; then
          log "$s: healthy, $(( $(now) - started ))s after its start"
        else
          log "$s: healthy (already running)"
        fi
      elif ! svc_pid "$s" >/dev/null; then
        fail "$s" "process exited during startup" || rc=1
      elif (( $(now) - started >= UP_TIMEOUT )); then
        fail "$s" "not healthy ${UP_TIMEOUT}s after its start" || rc=1
      else
        next+=("$s")
      fi
    done
    pending=("${next[@]}")
    [[ ${#pending[@]} -eq 0 ]] || sleep 0.5
  done
  return "$rc"
}

check_port_free() { # check_port_free SVC PORT...
  local svc=$1 p
  shift
  for p in "$@"; do
    if port_open "$p"; then
      die "$svc: port $HOST:$p is already in use by a process this script did not start: $(ss -Htlnp "sport = :$p" 2>/dev/null | awk '{print $NF}' | head -1). Stop it or override the port (see the top of $0)."
    fi
  done
}

# ------------------------------------------------------------------------------------------------ kafka
KAFKA_HOME=$CACHE/kafka-$KAFKA_VERSION
KAFKA_DIR=$STATE/kafka

install_kafka() {
  [[ -f $KAFKA_HOME/.complete ]] && return 0
  local t0
  t0=$(now)
  java17
  need_cmd mvn maven
  log "kafka: fetching Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_HOME/libs"
  rm -rf "$KAFKA_HOME.tmp"
  mkdir -p "$KAFKA_HOME.tmp/libs"
  JAVA_HOME=$JAVA17 run_logged install-kafka mvn -B -q -Dstyle.color=never -f "$SCRIPT_DIR/kafka/pom.xml" \
    -Dmaven.repo.local="$MAVEN_REPO" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$KAFKA_HOME.tmp/libs" \
    || die "kafka: mvn dependency:copy-dependencies failed"
  rm -rf "$KAFKA_HOME"
  mv "$KAFKA_HOME.tmp" "$KAFKA_HOME"
  touch "$KAFKA_HOME/.complete"
  log "kafka: installed in $(( $(now) - t0 ))s"
}

kafka_java() { # kafka_java LOG4J_CONFIG [JVM_ARGS...] MAIN_CLASS [ARGS...]: a Kafka tool
  local l4j=$1
  shift
  java17
  "$JAVA17/bin/java" -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$l4j" -cp "$KAFKA_HOME/libs/*" "$@"
}

KAFKA_TLS=$KAFKA_DIR/tls
KAFKA_PASSWORD_FILE=$KAFKA_DIR/client.password

# ensure_kafka_tls: a CA of the stack's own and a broker certificate it signed (for 127.0.0.1 and
# localhost), made once and kept; the broker certificate is made again when it is missing, expires
# within 30 days or was not signed by the CA. Kafka reads the key and the certificate chain from one
# PEM file (ssl.keystore.type=PEM; an unencrypted PKCS#8 key).
ensure_kafka_tls() {
  local d=$KAFKA_TLS
  need_cmd openssl
  mkdir -p "$d"
  if [[ ! -s $d/ca.pem || ! -s $d/ca.key ]]; then
    log "kafka: creating the stack's CA ($d/ca.pem)"
    rm -f "$d/broker.pem"
    ( umask 077; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/ca.key.tmp" ) 2>/dev/null \
      || die "kafka: openssl genpkey (CA key) failed"
    openssl req -x509 -new -key "$d/ca.key.tmp" -sha256 -days 3650 -subj "/CN=clickstream local stack CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -out "$d/ca.pem.tmp" 2>/dev/null || die "kafka: openssl req (CA certificate) failed"
    mv -f "$d/ca.key.tmp" "$d/ca.key"
    mv -f "$d/ca.pem.tmp" "$d/ca.pem"
  fi
  if [[ -s $d/broker.pem && -s $d/broker-keystore.pem ]] \
     && openssl x509 -in "$d/broker.pem" -noout -checkend 2592000 >/dev/null 2>&1 \
     && openssl verify -CAfile "$d/ca.pem" "$d/broker.pem" >/dev/null 2>&1; then
    return 0
  fi
  log "kafka: creating the broker certificate ($d/broker.pem, $KAFKA_CERT_DAYS days)"
  ( umask 077; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/broker.key.tmp" ) 2>/dev/null \
    || die "kafka: openssl genpkey (broker key) failed"
  openssl req -new -key "$d/broker.key.tmp" -subj "/CN=localhost" 2>/dev/null \
    | openssl x509 -req -CA "$d/ca.pem" -CAkey "$d/ca.key" -sha256 -days "$KAFKA_CERT_DAYS" -out "$d/broker.pem.tmp" \
        -extfile <(printf '%s\n' "subjectAltName=IP:$HOST,DNS:localhost" "basicConstraints=critical,CA:FALSE" \
                     "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth") 2>/dev/null \
    || die "kafka: openssl x509 (broker certificate) failed"
  ( umask 077; cat "$d/broker.key.tmp" "$d/broker.pem.tmp" >"$d/broker-keystore.pem.tmp" )
  mv -f "$d/broker.key.tmp" "$d/broker.key"
  mv -f "$d/broker.pem.tmp" "$d/broker.pem"
  mv -f "$d/broker-keystore.pem.tmp" "$d/broker-keystore.pem"
}

# ensure_kafka_password: the SASL user's password, random, in a file only its owner reads
ensure_kafka_password() {
  [[ -s $KAFKA_PASSWORD_FILE ]] && return 0
  mkdir -p "$KAFKA_DIR"
  # letters and digits only: Kafka's tool reads the password from a "SCRAM-SHA-512=password=..." line
  ( umask 077; head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32 >"$KAFKA_PASSWORD_FILE.tmp" )
  mv -f "$KAFKA_PASSWORD_FILE.tmp" "$KAFKA_PASSWORD_FILE"
  rm -f "$KAFKA_DIR/scram.ok"
  log "kafka: new password for SASL user $KAFKA_SASL_USER in $KAFKA_PASSWORD_FILE"
}

# kafka_server_properties: the broker's configuration (the file Kafka runs with). It names the broker
# certificate's fingerprint, so that a new certificate is a changed configuration (see cmd_up).
kafka_server_properties() {
  local fp
  fp=$(openssl x509 -in "$KAFKA_TLS/broker.pem" -noout -fingerprint -sha256 2>/dev/null | sed 's/^.*=//')
  cat <<EOF
# generated by deploy/local/stack.sh — rewritten at every start; "stack.sh up" restarts a Kafka whose file differs
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT,SASL_SSL://$HOST:$KAFKA_SASL_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT,SASL_SSL://$HOST:$KAFKA_SASL_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL
# SASL_SSL: TLS 1.2+ with the stack's broker certificate (sha256 $fp),
# SCRAM users (kafka-configs --entity-type users), no client certificates
sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$KAFKA_TLS/broker-keystore.pem
listener.name.sasl_ssl.ssl.enabled.protocols=TLSv1.3,TLSv1.2
listener.name.sasl_ssl.ssl.client.auth=none
log.dirs=$KAFKA_DIR/data
auto.create.topics.enable=true
num.partitions=4
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
# keep records whatever their timestamps (tests produce event times in the past); bound the disk instead
log.retention.ms=-1
log.retention.bytes=1073741824
log.segment.bytes=67108864
EOF
}

# kafka_config_changed: the running Kafka's configuration is not the one this script would write
# now (an older script's, another port, a new certificate)
kafka_config_changed() {
  ensure_kafka_tls
  [[ $(kafka_server_properties) != "$(cat "$KAFKA_DIR/server.properties" 2>/dev/null)" ]]
}

write_kafka_config() {
  mkdir -p "$KAFKA_DIR/data"
  ensure_kafka_tls
  ensure_kafka_password
  kafka_server_properties >"$KAFKA_DIR/server.properties"
  cat >"$KAFKA_DIR/log4j2.properties" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.statechange.name = state.change.logger
logger.statechange.level = warn
EOF
  cat >"$KAFKA_DIR/tools-log4j2.properties" <<'EOF'
status = error
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.err.ref = STDERR
EOF
}

# a random Kafka cluster id: 16 random bytes, URL-safe base64 without padding, not starting with '-'
new_cluster_id() {
  local id
  while :; do
    id=$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    [[ ${#id} -eq 22 && $id != -* ]] && { echo "$id"; return; }
  done
}

start_kafka() {
  check_port_free kafka "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" "$KAFKA_SASL_PORT"
  java17
  write_kafka_config
  if [[ ! -f $KAFKA_DIR/data/meta.properties ]]; then
    [[ -f $KAFKA_DIR/cluster.id ]] || new_cluster_id >"$KAFKA_DIR/cluster.id"
    rm -f "$KAFKA_DIR/scram.ok"   # new metadata: no SCRAM user yet
    log "kafka: formatting storage (cluster id $(<"$KAFKA_DIR/cluster.id"))"
    kafka_java "$KAFKA_DIR/tools-log4j2.properties" -Xmx256m kafka.tools.StorageTool format \
      --cluster-id "$(<"$KAFKA_DIR/cluster.id")" -c "$KAFKA_DIR/server.properties" \
      >"$STATE/logs/kafka-format.log" 2>&1 || { cat "$STATE/logs/kafka-format.log" >&2; die "kafka: storage format failed"; }
  fi
  (
    cd "$KAFKA_DIR"
    # shellcheck disable=SC2086 # KAFKA_HEAP holds several JVM flags
    launch kafka "$JAVA17/bin/java" -server $KAFKA_HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
      -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true -Dlog4j2.shutdownHookEnabled=false \
      -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" -Dkafka.logs.dir="$KAFKA_DIR" \
      -cp "$KAFKA_HOME/libs/*" kafka.Kafka "$KAFKA_DIR/server.properties"
  )
}

# kafka_scram_want: what $KAFKA_DIR/scram.ok holds once the SASL user has the password of its file
kafka_scram_want() { echo "$KAFKA_SASL_USER $(sha256sum <"$KAFKA_PASSWORD_FILE" | cut -c1-64)"; }
kafka_scram_ok() { [[ -s $KAFKA_PASSWORD_FILE && -f $KAFKA_DIR/scram.ok && $(<"$KAFKA_DIR/scram.ok") == "$(kafka_scram_want)" ]]; }

# ensure_kafka_scram: the SASL user exists with the password of its file, for both SCRAM mechanisms.
# Set through the PLAINTEXT listener of the running broker: the credentials live in the cluster's
# metadata, so a data directory formatted before the SASL listener existed gets them too. Runs a
# tool only when scram.ok does not match the user and password (a new install, a new password).
ensure_kafka_scram() {
  local m tmp rc=0
  kafka_scram_ok && return 0
  # the password goes in mode-0600 files, never on a command line (ps shows those); one request
  # per mechanism (Kafka refuses two changes of one user's credentials in a request)
  for m in SCRAM-SHA-512 SCRAM-SHA-256; do
    tmp=$(mktemp "$KAFKA_DIR/.scram.XXXXXX")
    printf '%s=password=%s\n' "$m" "$(<"$KAFKA_PASSWORD_FILE")" >"$tmp"
    rm -f "$STATE/logs/kafka-scram.log"
    ( umask 077
      kafka_java "$KAFKA_DIR/tools-log4j2.properties" -Xmx128m -XX:TieredStopAtLevel=1 \
        org.apache.kafka.tools.ConfigCommand --bootstrap-server "$HOST:$KAFKA_PORT" --alter \
        --entity-type users --entity-name "$KAFKA_SASL_USER" --add-config-file "$tmp" >"$STATE/logs/kafka-scram.log" 2>&1
    ) || rc=$?
    rm -f "$tmp"
    if (( rc != 0 )); then
      log "kafka: setting the $m credentials of user $KAFKA_SASL_USER failed; last lines of $STATE/logs/kafka-scram.log:"
      tail -n 20 "$STATE/logs/kafka-scram.log" >&2
      return 1
    fi
  done
  ( umask 077; kafka_scram_want >"$KAFKA_DIR/scram.ok" )
  log "kafka: SCRAM-SHA-512 and SCRAM-SHA-256 credentials set for user $KAFKA_SASL_USER"
}

# healthy once this start's log says the server started, both client listeners accept connections
# and a client can list topics. The client check (a JVM, ~2 s) runs once per start; its result is
# remembered in run/kafka.ok. (cmd_up then sees to the SASL user: ensure_kafka_scram.)
health_kafka() {
  local pid ok
  pid=$(svc_pid kafka) || return 1
  port_open "$KAFKA_PORT" || return 1
  port_open "$KAFKA_SASL_PORT" || return 1
  ok=$STATE/run/kafka.ok
  [[ -f $ok && $(<"$ok") == "$pid" ]] && return 0
  grep -q 'Kafka Server started' "$(logfile kafka)" 2>/dev/null || return 1
  kafka_java "$KAFKA_DIR/tools-log4j2.properties" -Xmx128m -XX:TieredStopAtLevel=1 \
    org.apache.kafka.tools.TopicCommand --bootstrap-server "$HOST:$KAFKA_PORT" --list >/dev/null 2>&1 || return 1
  echo "$pid" >"$ok"
}

# --------------------------------------------------------------------------------------------------- s3
VERSITYGW=$CACHE/bin/versitygw

# versitygw_version: the module version a versitygw binary was built from (needs go), "" if unknown
versitygw_version() {
  command -v go >/dev/null 2>&1 || return 0
  go version -m "$VERSITYGW" 2>/dev/null | awk '$1 == "mod" && $2 == "github.com/versity/versitygw" { print $3 }'
}

install_s3() {
  if [[ -x $VERSITYGW ]]; then
    local have
    have=$(versitygw_version)
    [[ -z $have || $have == "$VERSITYGW_VERSION" ]] && return 0
    log "s3: $VERSITYGW is $have, want $VERSITYGW_VERSION: reinstalling"
  fi
  command -v go >/dev/null 2>&1 || die "s3: needs Go on PATH to install versitygw"
  local t0
  t0=$(now)
  log "s3: go install github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION (a minute or more)"
  mkdir -p "$CACHE/bin/.gobin.$$"
  GOBIN=$CACHE/bin/.gobin.$$ GOFLAGS=-mod=mod run_logged install-s3 \
    go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" || die "s3: go install versitygw failed"
  mv -f "$CACHE/bin/.gobin.$$/versitygw" "$VERSITYGW"   # rename: safe while another copy runs
  rmdir "$CACHE/bin/.gobin.$$"
  log "s3: installed in $(( $(now) - t0 ))s"
}

start_s3() {
  check_port_free s3 "$S3_PORT"
  mkdir -p "$STATE/s3"
  # versitygw keeps object metadata in extended attributes
  if command -v setfattr >/dev/null 2>&1; then
    setfattr -n user.clickstream.probe -v 1 "$STATE/s3" 2>/dev/null \
      || log "s3: WARNING: $STATE/s3 does not support user xattrs; versitygw posix needs them"
    setfattr -x user.clickstream.probe "$STATE/s3" 2>/dev/null || true
  fi
  launch s3 "$VERSITYGW" \
    --access "$S3_ACCESS_KEY" --secret "$S3_SECRET_KEY" --region "$S3_REGION" \
    --port "$HOST:$S3_PORT" --health /_health --keep-alive --quiet posix "$STATE/s3"
}

# GET /_health answers 200 (a path no bucket can have: bucket names never start with '_')
health_s3() {
  svc_pid s3 >/dev/null || return 1
  curl -sf -o /dev/null -m 2 "http://$HOST:$S3_PORT/_health" 2>/dev/null
}

# --------------------------------------------------------------------------------------- elasticsearch
ES_HOME=$CACHE/elasticsearch-$ES_VERSION
ES_DIR=$STATE/es

install_es() {
  [[ -f $ES_HOME/.complete ]] && return 0
  local t0
  t0=$(now)
  java17
  need_cmd mvn maven
  need_cmd unzip
  log "es: fetching org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip from Maven Central"
  rm -rf "$CACHE/es-download.tmp" "$ES_HOME.tmp"
  mkdir -p "$CACHE/es-download.tmp" "$ES_HOME.tmp"
  JAVA_HOME=$JAVA17 run_logged install-es mvn -B -q -Dstyle.color=never -Dmaven.repo.local="$MAVEN_REPO" \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
    -Dartifact="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip" \
    -DoutputDirectory="$CACHE/es-download.tmp" || die "es: mvn dependency:copy failed"
  unzip -q "$CACHE/es-download.tmp/elasticsearch-$ES_VERSION.zip" -d "$ES_HOME.tmp" || die "es: unzip failed"
  rm -rf "$ES_HOME" "$CACHE/es-download.tmp"
  mv "$ES_HOME.tmp/elasticsearch-$ES_VERSION" "$ES_HOME"
  rmdir "$ES_HOME.tmp"
  chmod -R a+rX "$ES_HOME"
  touch "$ES_HOME/.complete"
  log "es: installed in $(( $(now) - t0 ))s"
}

# es_run_user: the user Elasticsearch runs as ("" = the current user)
es_run_user() {
  if [[ $EUID -eq 0 ]]; then echo "$ES_USER"; fi
}

ensure_es_user() {
  local u
  u=$(es_run_user)
  [[ -n $u ]] || return 0
  id -u "$u" >/dev/null 2>&1 && return 0
  log "es: creating system user $u (Elasticsearch refuses to run as root)"
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$u" \
    || die "es: useradd $u failed"
}

write_es_config() {
  local extra=""
  mkdir -p "$ES_DIR/data" "$ES_DIR/logs" "$ES_DIR/tmp"
  # a copy of the distribution's config dir (jvm.options, log4j2.properties; ES adds its keystore)
  if [[ ! -f $ES_DIR/config/jvm.options || $(cat "$ES_DIR/config/.version" 2>/dev/null) != "$ES_VERSION" ]]; then
    rm -rf "$ES_DIR/config"
    cp -r "$ES_HOME/config" "$ES_DIR/config"
    echo "$ES_VERSION" >"$ES_DIR/config/.version"
  fi
  # settings of modules that this distribution may not contain: an unknown setting stops the node
  [[ -d $ES_HOME/modules/ingest-geoip ]] && extra+=$'ingest.geoip.downloader.enabled: false\n'
  [[ -d $ES_HOME/modules/x-pack-ml ]] && extra+=$'xpack.ml.enabled: false\n'
  [[ -d $ES_HOME/modules/x-pack-monitoring ]] && extra+=$'xpack.monitoring.collection.enabled: false\n'
  cat >"$ES_DIR/config/elasticsearch.yml" <<EOF
# generated by deploy/local/stack.sh — rewritten at every start
cluster.name: clickstream-dev
node.name: clickstream-dev-1
discovery.type: single-node
network.host: $HOST
http.port: $ES_PORT
transport.port: $ES_TRANSPORT_PORT
path.data: $ES_DIR/data
path.logs: $ES_DIR/logs
xpack.security.enabled: false
cluster.routing.allocation.disk.threshold_enabled: false
action.destructive_requires_name: false
${extra}
EOF
}

# grant_traverse USER PATH...: let USER pass through every parent directory of each PATH. A parent closed
# to it (typically /root, mode 700, when CACHE and STATE are under root's home) gets one ACL entry
# "u:USER:--x" (search only: no listing, no reading); nothing else changes.
grant_traverse() {
  local u=$1 p d dirs=()
  shift
  for p in "$@"; do
    d=$p
    while [[ $d != / ]]; do
      d=$(dirname "$d")
      setpriv --reuid="$u" --regid="$u" --init-groups test -x "$d" 2>/dev/null || dirs=("$d" "${dirs[@]}")
    done
  done
  [[ ${#dirs[@]} -gt 0 ]] || return 0
  need_cmd setfacl acl
  local uniq
  mapfile -t uniq < <(printf '%s\n' "${dirs[@]}" | awk '!seen[$0]++')
  for d in "${uniq[@]}"; do
    setpriv --reuid="$u" --regid="$u" --init-groups test -x "$d" 2>/dev/null && continue
    log "granting user $u search (x) permission on $d (ACL u:$u:x)"
    setfacl -m "u:$u:x" "$d" || die "es: setfacl on $d failed: put CLICKSTREAM_CACHE/CLICKSTREAM_STATE where user $u can reach them"
  done
}

start_es() {
  local u
  check_port_free es "$ES_PORT" "$ES_TRANSPORT_PORT"
  java17
  ensure_es_user
  write_es_config
  u=$(es_run_user)
  local cmd=(env ES_JAVA_HOME="${ES_JAVA_HOME_OVERRIDE:-$JAVA17}" ES_PATH_CONF="$ES_DIR/config" ES_TMPDIR="$ES_DIR/tmp"
             ES_JAVA_OPTS="$ES_HEAP $ES_EXTRA_JAVA_OPTS -XX:-HeapDumpOnOutOfMemoryError" "$ES_HOME/bin/elasticsearch")
  if [[ -n $u ]]; then
    chown -R "$u:" "$ES_DIR"
    grant_traverse "$u" "$ES_HOME/bin" "$ES_DIR/data"
    cmd=(setpriv --reuid="$u" --regid="$u" --init-groups "${cmd[@]}")
  fi
  ( cd "$ES_DIR" && launch es "${cmd[@]}" )
}

health_es() {
  local body
  svc_pid es >/dev/null || return 1
  body=$(curl -s -m 3 "http://$HOST:$ES_PORT/_cluster/health?wait_for_status=yellow&timeout=2s" 2>/dev/null) || return 1
  [[ $body == *'"status":"green"'* || $body == *'"status":"yellow"'* ]]
}

# ------------------------------------------------------------------------------------------------ tools
# Tools the tests use besides the services: promtool, for the unit tests of the Prometheus alert rules
# (deploy/prometheus), from Debian's prometheus package. The package also brings a Prometheus server,
# which the stack does not use: where systemd started it, it is stopped and disabled again. And a
# headless Chromium (Debian's chromium package), in which the end-to-end test of the coordinator's web
# UI (internal/cluster/e2e, TestUI) runs.
install_tools() {
  install_promtool
  install_chromium
}

install_promtool() {
  command -v promtool >/dev/null 2>&1 && return 0
  local t0
  t0=$(now)
  apt_install prometheus
  command -v promtool >/dev/null 2>&1 || die "promtool: not on PATH after installing prometheus"
  if [[ -d /run/systemd/system ]] && systemctl is-enabled --quiet prometheus 2>/dev/null; then
    as_root systemctl disable --now prometheus >/dev/null 2>&1 || log "prometheus: could not disable the package's service"
  fi
  log "tools: installed promtool $(promtool --version 2>&1 | sed -n '1s/^promtool, version \([^ ]*\).*/\1/p') in $(( $(now) - t0 ))s"
}

install_chromium() {
  command -v chromium >/dev/null 2>&1 && return 0
  local t0
  t0=$(now)
  apt_install chromium
  command -v chromium >/dev/null 2>&1 || die "chromium: not on PATH after installing it"
  log "tools: installed $(chromium --version 2>/dev/null | head -1) in $(( $(now) - t0 ))s"
}

# Outside readers of the Iceberg tables (pyiceberg, DuckDB with its iceberg extension), for the
# interoperability tests: a virtualenv at $STATE/venv with deploy/local/requirements-readers.txt,
# reinstalled when that list changes.
READERS_REQ="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/requirements-readers.txt"
install_readers() {
  local venv="$STATE/venv" want
  want=$(sha256sum <"$READERS_REQ" | cut -c1-64)
  [[ -x $venv/bin/python && -f $venv/.requirements && $(<"$venv/.requirements") == "$want" ]] && return 0
  local t0
  t0=$(now)
  command -v python3 >/dev/null 2>&1 || apt_install python3
  python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
  rm -rf "$venv"
  python3 -m venv "$venv" || die "readers: python3 -m venv failed"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$READERS_REQ" >"$(logfile readers)" 2>&1 \
    || die "readers: pip install failed (see $(logfile readers))"
  echo "$want" >"$venv/.requirements"
  log "readers: installed pyiceberg and DuckDB into $venv in $(( $(now) - t0 ))s"
}

# ------------------------------------------------------------------------------------------------- etcd
install_etcd() {
  command -v etcd >/dev/null 2>&1 && return 0
  local t0
  t0=$(now)
  apt_install etcd-server
  command -v etcd >/dev/null 2>&1 || die "etcd: not on PATH after installing etcd-server"
  log "etcd: installed etcd-server $(etcd --version 2>/dev/null | sed -n 's/^etcd Version: //p') in $(( $(now) - t0 ))s"
  # the package enables its own service (port 2379) on systemd hosts; ours is a separate process on other ports
}

start_etcd() {
  check_port_free etcd "$ETCD_PORT" "$ETCD_PEER_PORT"
  mkdir -p "$STATE/etcd"
  chmod 700 "$STATE/etcd"
  local envs=()
  # etcd reads ETCD_* variables as flags and refuses a variable that a flag shadows: drop them all
  local v
  for v in $(compgen -e | grep '^ETCD_' || true); do envs+=(-u "$v"); done
  case $(uname -m) in
    aarch64|arm64) envs+=(ETCD_UNSUPPORTED_ARCH=arm64) ;;
  esac
  launch etcd env "${envs[@]}" etcd --name clickstream --data-dir "$STATE/etcd/data" \
    --listen-client-urls "http://$HOST:$ETCD_PORT" --advertise-client-urls "http://$HOST:$ETCD_PORT" \
    --listen-peer-urls "http://$HOST:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://$HOST:$ETCD_PEER_PORT" \
    --initial-cluster "clickstream=http://$HOST:$ETCD_PEER_PORT" --initial-cluster-state new \
    --initial-cluster-token clickstream-dev --logger zap --log-level warn \
    --auto-compaction-mode periodic --auto-compaction-retention 1h
}

health_etcd() {
  svc_pid etcd >/dev/null || return 1
  curl -s -m 2 "http://$HOST:$ETCD_PORT/health" 2>/dev/null | grep -q '"health":"true"'
}

# --------------------------------------------------------------------------------------------------- pg
PG_DIR=$STATE/pg
PG_PASSWORD_FILE=$PG_DIR/$PG_ROLE.password
PG_SOCK=$PG_DIR/sock   # the superuser's way in: a Unix socket only the run user reaches (peer authentication)

# pg_bin: the PostgreSQL server binaries of the stack's cluster's major version, or the newest Debian's
# packages installed (a new cluster)
pg_bin() {
  local d v
  v=$(cat "$PG_DIR/data/PG_VERSION" 2>/dev/null) || true
  if [[ -n $v && -x /usr/lib/postgresql/$v/bin/postgres ]]; then echo "/usr/lib/postgresql/$v/bin"; return 0; fi
  d=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1) || true
  echo "$d"
}

install_pg() {
  [[ -n $(pg_bin) && -x $(pg_bin)/postgres ]] && return 0
  local t0
  t0=$(now)
  # no cluster of the package's own: postgresql-common reads createcluster.d before it makes "main"
  as_root mkdir -p /etc/postgresql-common/createcluster.d
  printf '%s\n' "# written by clickstream's deploy/local/stack.sh, which runs a cluster of its own" 'create_main_cluster = false' \
    | as_root tee /etc/postgresql-common/createcluster.d/clickstream-no-main-cluster.conf >/dev/null
  apt_install postgresql
  [[ -x $(pg_bin)/postgres ]] || die "pg: no /usr/lib/postgresql/*/bin/postgres after installing postgresql"
  # the package's service (for clusters made later with pg_createcluster) is not the stack's
  if [[ -d /run/systemd/system ]] && systemctl is-enabled --quiet postgresql 2>/dev/null; then
    as_root systemctl disable --now postgresql >/dev/null 2>&1 || log "pg: could not disable the package's service"
  fi
  log "pg: installed $("$(pg_bin)/postgres" --version) in $(( $(now) - t0 ))s"
}

# pg_run_user: the user PostgreSQL runs as ("" = the current user; it refuses to run as root)
pg_run_user() {
  if [[ $EUID -eq 0 ]]; then echo "$PG_OS_USER"; fi
}

# as_pg CMD...: run CMD as the user PostgreSQL runs as, from a directory it can read
as_pg() {
  local u
  u=$(pg_run_user)
  if [[ -n $u ]]; then
    (cd / && setpriv --reuid="$u" --regid="$u" --init-groups "$@")
  else
    (cd / && "$@")
  fi
}

ensure_pg_user() {
  local u
  u=$(pg_run_user)
  [[ -n $u ]] || return 0
  id -u "$u" >/dev/null 2>&1 && return 0
  log "pg: creating system user $u (PostgreSQL refuses to run as root)"
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$u" \
    || die "pg: useradd $u failed"
}

# ensure_pg_password: the catalog role's password, random, in a file only its owner reads
ensure_pg_password() {
  [[ -s $PG_PASSWORD_FILE ]] && return 0
  mkdir -p "$PG_DIR"
  ( umask 077; head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32 >"$PG_PASSWORD_FILE.tmp" )
  mv -f "$PG_PASSWORD_FILE.tmp" "$PG_PASSWORD_FILE"
  rm -f "$PG_DIR/role.ok"
  log "pg: new password for role $PG_ROLE in $PG_PASSWORD_FILE"
}

start_pg() {
  local u bin
  check_port_free pg "$PG_PORT"
  ensure_pg_user
  ensure_pg_password
  bin=$(pg_bin)
  u=$(pg_run_user)
  mkdir -p "$PG_DIR/data" "$PG_SOCK"
  chmod 755 "$PG_DIR"
  chmod 700 "$PG_DIR/data" "$PG_SOCK"
  if [[ -n $u ]]; then
    chown "$u:" "$PG_DIR/data" "$PG_SOCK"
    grant_traverse "$u" "$bin" "$PG_DIR/data"
  fi
  if [[ ! -f $PG_DIR/data/PG_VERSION ]]; then
    rm -f "$PG_DIR/role.ok"   # a new cluster: no role yet
    log "pg: initdb $PG_DIR/data"
    # the superuser is the run user, through the socket only (peer); TCP clients need a password
    as_pg "$bin/initdb" -D "$PG_DIR/data" --encoding=UTF8 --locale=C.UTF-8 \
      --auth-local=peer --auth-host=scram-sha-256 >"$STATE/logs/pg-initdb.log" 2>&1 \
      || { cat "$STATE/logs/pg-initdb.log" >&2; die "pg: initdb failed"; }
  fi
  local cmd=("$bin/postgres" -D "$PG_DIR/data" -c listen_addresses="$HOST" -c port="$PG_PORT"
             -c unix_socket_directories="$PG_SOCK" -c unix_socket_permissions=0700
             -c password_encryption=scram-sha-256 -c shared_buffers=64MB -c max_connections=200
             -c log_min_messages=warning -c log_line_prefix='%m [%p] ')
  [[ -z $u ]] || cmd=(setpriv --reuid="$u" --regid="$u" --init-groups "${cmd[@]}")
  ( cd "$PG_DIR" && launch pg "${cmd[@]}" )
}

# pg_role_want: what $PG_DIR/role.ok holds once the role has the password of its file
pg_role_want() { echo "$PG_ROLE $(sha256sum <"$PG_PASSWORD_FILE" | cut -c1-64)"; }
pg_role_ok() { [[ -s $PG_PASSWORD_FILE && -f $PG_DIR/role.ok && $(<"$PG_DIR/role.ok") == "$(pg_role_want)" ]]; }

# ensure_pg_role: the catalog's role, with the password of its file, owns a database of its name. The
# password goes to psql on its standard input, never on a command line; the server stores its SCRAM
# verifier. Runs psql only when role.ok does not match the role and password.
ensure_pg_role() {
  pg_role_ok && return 0
  local pw
  pw=$(<"$PG_PASSWORD_FILE")
  [[ $pw =~ ^[A-Za-z0-9]+$ ]] || die "pg: $PG_PASSWORD_FILE: the password must be letters and digits"
  [[ $PG_ROLE =~ ^[a-z_][a-z0-9_]*$ ]] || die "pg: CLICKSTREAM_PG_ROLE=$PG_ROLE: want lower-case letters, digits and '_'"
  printf '%s\n' \
    "SELECT format('CREATE ROLE %I LOGIN', '$PG_ROLE') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_ROLE')" '\gexec' \
    "ALTER ROLE \"$PG_ROLE\" WITH LOGIN PASSWORD '$pw';" \
    "SELECT format('CREATE DATABASE %I OWNER %I', '$PG_ROLE', '$PG_ROLE') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_ROLE')" '\gexec' \
    | as_pg "$(pg_bin)/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" -d postgres >"$STATE/logs/pg-role.log" 2>&1 \
    || { log "pg: creating role $PG_ROLE failed; last lines of $STATE/logs/pg-role.log:"; tail -n 20 "$STATE/logs/pg-role.log" >&2; return 1; }
  ( umask 077; pg_role_want >"$PG_DIR/role.ok" )
  log "pg: role $PG_ROLE (SCRAM-SHA-256 password) and its database $PG_ROLE are ready"
}

health_pg() {
  svc_pid pg >/dev/null || return 1
  "$(pg_bin)/pg_isready" -q -h "$HOST" -p "$PG_PORT" -t 2 >/dev/null 2>&1
}

# -------------------------------------------------------------------------------------------------- env
endpoint() {
  case $1 in
    kafka) echo "$HOST:$KAFKA_PORT" ;;
    s3) echo "http://$HOST:$S3_PORT" ;;
    es) echo "http://$HOST:$ES_PORT" ;;
    etcd) echo "http://$HOST:$ETCD_PORT" ;;
    pg) pg_catalog_uri ;;
  esac
}

# pg_catalog_uri: the Iceberg catalog on the stack's PostgreSQL, as clickstream's --catalog takes it
# (no password: that comes from the file of CLICKSTREAM_CATALOG_PASSWORD_FILE)
pg_catalog_uri() { echo "postgres://$PG_ROLE@$HOST:$PG_PORT/$PG_ROLE?sslmode=disable"; }

svc_port() {
  case $1 in
    kafka) echo "$KAFKA_PORT" ;;
    s3) echo "$S3_PORT" ;;
    es) echo "$ES_PORT" ;;
    etcd) echo "$ETCD_PORT" ;;
    pg) echo "$PG_PORT" ;;
  esac
}

# a cheap "is up" for env/status: our process is alive and its port accepts connections
svc_up() { svc_pid "$1" >/dev/null && port_open "$(svc_port "$1")"; }

write_env() {
  local tmp
  tmp=$(mktemp "$STATE/.env.XXXXXX")
  {
    echo "# clickstream local stack — generated by deploy/local/stack.sh at $(date -Is); services that are up only"
    echo "export CLICKSTREAM_STACK=$STATE"
    if svc_up kafka; then
      echo "export CLICKSTREAM_KAFKA_BROKERS=$(endpoint kafka)"
      # the SASL_SSL listener: names of their own, so that no command takes them for its flags
      # (--kafka-user would otherwise come from CLICKSTREAM_KAFKA_USER for the PLAINTEXT brokers too)
      if port_open "$KAFKA_SASL_PORT" && kafka_scram_ok; then
        echo "export CLICKSTREAM_KAFKA_SASL_BROKERS=$HOST:$KAFKA_SASL_PORT"
        echo "export CLICKSTREAM_KAFKA_SASL_CA_FILE=$KAFKA_TLS/ca.pem"
        echo "export CLICKSTREAM_KAFKA_SASL_USER=$KAFKA_SASL_USER"
        echo "export CLICKSTREAM_KAFKA_SASL_PASSWORD_FILE=$KAFKA_PASSWORD_FILE"
      fi
    fi
    if svc_up s3; then
      echo "export CLICKSTREAM_S3_ENDPOINT=$(endpoint s3)"
      echo "export AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY"
      echo "export AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY"
      echo "export AWS_REGION=$S3_REGION"
    fi
    if svc_up es; then
      echo "export CLICKSTREAM_ES_URL=$(endpoint es)"
    fi
    if svc_up etcd; then
      echo "export CLICKSTREAM_ETCD_ENDPOINTS=$(endpoint etcd)"
    fi
    if svc_up pg && pg_role_ok; then
      # not CLICKSTREAM_CATALOG: that would set every command's --catalog; tests and scripts pass it on
      echo "export CLICKSTREAM_CATALOG_URI=$(pg_catalog_uri)"
      echo "export CLICKSTREAM_CATALOG_PASSWORD_FILE=$PG_PASSWORD_FILE"
    fi
    if [[ -x $STATE/venv/bin/python && -f $STATE/venv/.requirements ]]; then
      echo "export CLICKSTREAM_READERS_PYTHON=$STATE/venv/bin/python"
    fi
  } >"$tmp"
  chmod 644 "$tmp"
  mv -f "$tmp" "$STATE/env"
}

# ----------------------------------------------------------------------------------------------- commands
parse_services() { # sets SERVICES from the arguments (default: all)
  SERVICES=()
  local s a
  [[ $# -eq 0 ]] && { SERVICES=("${ALL_SERVICES[@]}"); return; }
  for a in "$@"; do
    for s in "${ALL_SERVICES[@]}"; do [[ $a == "$s" ]] && { SERVICES+=("$a"); continue 2; }; done
    die "unknown service '$a' (services: ${ALL_SERVICES[*]})"
  done
}

init_dirs() {
  mkdir -p "$CACHE" "$STATE/run" "$STATE/logs"
  exec 9>"$STATE/run/.lock"
  flock -w 900 9 || die "another stack.sh holds $STATE/run/.lock"
}

TO_START=()
cmd_up() {
  local t0 s p pids=() failed=0
  t0=$(now)
  parse_services "$@"
  init_dirs
  need_cmd curl
  need_cmd setsid util-linux
  need_cmd pgrep procps
  for s in "${SERVICES[@]}"; do
    if svc_pid "$s" >/dev/null; then
      # a Kafka that runs with another configuration (an older script's) is started again with this one
      if [[ $s == kafka ]] && kafka_config_changed; then
        log "kafka: its configuration changed (an older script's, other ports, a new certificate): restarting it"
        stop_svc kafka
      else
        continue
      fi
    fi
    rm -f "$(pidfile "$s")"
    TO_START+=("$s")
  done
  # installs: apt first (not concurrently), then the downloads and the Go build side by side
  install_tools
  for s in "${TO_START[@]}"; do
    case $s in etcd) install_etcd ;; pg) install_pg ;; esac
  done
  if [[ " ${TO_START[*]} " == *" s3 "* ]]; then install_s3 & pids+=($!); fi
  install_readers & pids+=($!)
  # the two Maven fetches share one local repository: one after the other
  ( for s in "${TO_START[@]}"; do case $s in kafka) install_kafka ;; es) install_es ;; esac; done ) & pids+=($!)
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  (( failed == 0 )) || die "install failed (see above)"
  # start everything, then wait for each
  for s in "${TO_START[@]}"; do "start_$s"; done
  wait_healthy "${SERVICES[@]}" || failed=1
  if [[ " ${SERVICES[*]} " == *" kafka "* ]] && health_kafka; then
    ensure_kafka_scram || { sleep 2; ensure_kafka_scram; } || failed=1
  fi
  if [[ " ${SERVICES[*]} " == *" pg "* ]] && health_pg; then
    ensure_pg_role || failed=1
  fi
  write_env
  (( failed == 0 )) || die "some services did not become healthy; endpoints that are up are in $STATE/env"
  for s in "${SERVICES[@]}"; do
    printf '%-6s %s\n' "$s" "$(endpoint "$s")"
    [[ $s == kafka ]] && printf '%-6s %s\n' "" "$HOST:$KAFKA_SASL_PORT (SASL_SSL, SCRAM user $KAFKA_SASL_USER)"
  done
  log "up in $(( $(now) - t0 ))s; env: source $STATE/env"
}

cmd_down() {
  local purge=0 args=() s
  for s in "$@"; do
    if [[ $s == --purge ]]; then purge=1; else args+=("$s"); fi
  done
  parse_services "${args[@]}"
  init_dirs
  for s in "${SERVICES[@]}"; do stop_svc "$s"; done
  if (( purge )); then
    for s in "${SERVICES[@]}"; do
      log "$s: deleting data in $STATE/$s"
      rm -rf "${STATE:?}/$s" "$(logfile "$s")" "$(logfile "$s").prev"
      [[ $s == kafka ]] && rm -f "$STATE/logs/kafka-format.log" "$STATE/logs/kafka-scram.log" "$STATE/run/kafka.ok"
      [[ $s == pg ]] && rm -f "$STATE/logs/pg-initdb.log" "$STATE/logs/pg-role.log"
    done
  fi
  write_env
}

cmd_status() {
  local s pid state
  mkdir -p "$STATE/run"
  printf '%-6s %-10s %-8s %s\n' SVC STATE PID ENDPOINT
  for s in "${ALL_SERVICES[@]}"; do
    if pid=$(svc_pid "$s"); then
      if "health_$s"; then state=healthy; else state=unhealthy; fi
    else
      pid=-
      state=down
    fi
    printf '%-6s %-10s %-8s %s\n' "$s" "$state" "$pid" "$(endpoint "$s")"
  done
}

cmd_logs() {
  local follow=0
  [[ ${1:-} == -f ]] && { follow=1; shift; }
  [[ $# -eq 1 ]] || die "usage: $0 logs [-f] SVC"
  parse_services "$1"
  local lf
  lf=$(logfile "$1")
  [[ -f $lf ]] || die "no log for $1 yet ($lf)"
  if (( follow )); then tail -n "${LINES:-200}" -F "$lf"; else tail -n "${LINES:-200}" "$lf"; fi
  if [[ $1 == es && $follow -eq 0 ]]; then
    echo "(Elasticsearch's own logs: $ES_DIR/logs)"
  fi
}

usage() {
  sed -n '2,/^set -Eeuo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit "${1:-0}"
}

main() {
  local action=${1:-}
  [[ $# -gt 0 ]] && shift
  case $action in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    stop) [[ $# -eq 1 ]] || die "usage: $0 stop SVC"; parse_services "$1"; init_dirs; stop_svc "$1"; write_env ;;
    start) [[ $# -eq 1 ]] || die "usage: $0 start SVC"; cmd_up "$1" ;;
    status) cmd_status ;;
    env) mkdir -p "$STATE/run"; write_env; cat "$STATE/env" ;;
    logs) cmd_logs "$@" ;;
    tools) init_dirs; install_tools; install_readers; write_env ;;
    java-home) java_home_for 17 >/dev/null || apt_install openjdk-17-jre-headless; java17; echo "$JAVA17" ;;
    -h|--help|help) usage 0 ;;
    *) usage 2 >&2 ;;
  esac
}

main "$@"
