#!/usr/bin/env bash
# bench/compare/setup.sh — installs what `make bench-compare` needs, idempotently, and
# prints it as shell assignments (eval them):
#   BENCH_PYTHON     a virtualenv ($STATE/bench-venv) with bench/compare/requirements.txt,
#                    reinstalled when that list changes
#   BENCH_SPARK_JAR  org.apache.iceberg:iceberg-spark-runtime-4.0_2.13 from Maven Central,
#                    in the stack's Maven cache
#   BENCH_JAVA_HOME  the Java 17+ home that deploy/local/stack.sh finds (or installs)
set -Eeuo pipefail

CACHE=${CLICKSTREAM_CACHE:-$HOME/.cache/clickstream}
STATE=${CLICKSTREAM_STATE:-$HOME/.local/state/clickstream}
MAVEN_REPO=${CLICKSTREAM_MAVEN_REPO:-$CACHE/m2}
ICEBERG_SPARK=${BENCH_ICEBERG_SPARK:-org.apache.iceberg:iceberg-spark-runtime-4.0_2.13:1.10.0}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REQ=$HERE/requirements.txt
VENV=$STATE/bench-venv

log() { printf '[bench-setup] %s\n' "$*" >&2; }
die() { printf '[bench-setup] ERROR: %s\n' "$*" >&2; exit 1; }

# apt_install PKG...: Debian packages, as root or through non-interactive sudo
apt_install() {
  local sudo=()
  [[ $EUID -eq 0 ]] || sudo=(sudo -n)
  log "apt-get install $*"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null &&
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null ||
    die "apt-get install $* failed"
}

mkdir -p "$STATE/logs" "$CACHE/bench"

java_home=$("$HERE/../../deploy/local/stack.sh" java-home) || die "no Java 17+"

want=$(sha256sum <"$REQ" | cut -c1-64)
if ! [[ -x $VENV/bin/python && -f $VENV/.requirements && $(<"$VENV/.requirements") == "$want" ]]; then
  log "installing $REQ into $VENV (a few minutes: pyspark is large)"
  command -v python3 >/dev/null || apt_install python3
  python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ" >"$STATE/logs/bench-venv.log" 2>&1 \
    || die "pip install failed (see $STATE/logs/bench-venv.log)"
  echo "$want" >"$VENV/.requirements"
fi

IFS=: read -r group artifact version <<<"$ICEBERG_SPARK"
jar=$CACHE/bench/$artifact-$version.jar
if [[ ! -s $jar ]]; then
  log "fetching $ICEBERG_SPARK from Maven Central"
  command -v mvn >/dev/null || apt_install maven
  JAVA_HOME=$java_home mvn -B -q -Dstyle.color=never -Dmaven.repo.local="$MAVEN_REPO" \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy -Dartifact="$ICEBERG_SPARK" \
    -DoutputDirectory="$CACHE/bench" >"$STATE/logs/bench-jar.log" 2>&1 \
    || die "mvn dependency:copy $ICEBERG_SPARK failed (see $STATE/logs/bench-jar.log)"
  [[ -s $jar ]] || die "no $jar after mvn dependency:copy"
  : "$group"
fi

printf 'BENCH_PYTHON=%q\nBENCH_SPARK_JAR=%q\nBENCH_JAVA_HOME=%q\n' "$VENV/bin/python" "$jar" "$java_home"
