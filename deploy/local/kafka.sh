#!/usr/bin/env bash
# The local Apache Kafka broker (KRaft, one combined broker+controller on 127.0.0.1) used by the tests,
# `make run` and the benchmarks. Needs only bash, coreutils, Java 17+ and Maven (for `fetch`).
#
#   kafka.sh fetch       download the broker jars from Maven Central into .cache/kafka/<version>/libs
#   kafka.sh start       format storage if needed, start in the background, wait until ready, print host:port
#   kafka.sh stop        SIGTERM, then SIGKILL after KAFKA_STOP_TIMEOUT_S
#   kafka.sh wipe        stop, then delete KAFKA_DATA_DIR
#   kafka.sh status      exit 0 when running, 1 otherwise
#   kafka.sh bootstrap   print host:port
#
# `start` and `bootstrap` print only the bootstrap address on stdout; everything else goes to stderr,
# so `bootstrap=$(kafka.sh start)` works. See deploy/local/README.md for the variables.
# KAFKA_SECURITY=sasl_ssl starts a broker that clients reach only over TLS with a SCRAM login (users admin,
# app, worker, producer, eraser and stranger; passwords, CA and certificates made at the first start in KAFKA_DATA_DIR).
set -euo pipefail

readonly KAFKA_VERSION="${KAFKA_VERSION:-3.9.2}"
readonly KAFKA_HOST=127.0.0.1
readonly KAFKA_PORT="${KAFKA_PORT:-9092}"
readonly KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
readonly KAFKA_HEAP="${KAFKA_HEAP:--Xmx512m -Xms256m}"
# Kafka's own server defaults. No -XX:TieredStopAtLevel=1: it would shave a second off start-up
# but leave the broker without the C2 compiler for the whole run, which the benchmarks would measure.
readonly KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true}"
readonly KAFKA_START_TIMEOUT_S="${KAFKA_START_TIMEOUT_S:-60}"
readonly KAFKA_STOP_TIMEOUT_S="${KAFKA_STOP_TIMEOUT_S:-30}"
readonly KAFKA_SECURITY="${KAFKA_SECURITY:-plaintext}"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
readonly SCRIPT_DIR REPO_ROOT

# A relative data dir is taken from the repo root, so the script behaves the same from any cwd.
data_dir="${KAFKA_DATA_DIR:-var/kafka}"
[[ "$data_dir" == /* ]] || data_dir="$REPO_ROOT/$data_dir"
readonly DATA_DIR="$data_dir"
readonly LIBS_DIR="$REPO_ROOT/.cache/kafka/$KAFKA_VERSION/libs"
readonly PID_FILE="$DATA_DIR/kafka.pid"
readonly LOG_DIR="$DATA_DIR/logs"
readonly CONFIG_DIR="$DATA_DIR/config"
readonly STORAGE_DIR="$DATA_DIR/data"
# Written at the first start; `wipe` refuses to delete a directory without it.
readonly MARKER_FILE="$DATA_DIR/.local-kafka"
# The security mode the storage was formatted for (SCRAM users are made at format time).
readonly SECURITY_FILE="$DATA_DIR/.security"
readonly TLS_DIR="$DATA_DIR/tls"
readonly SECRETS_DIR="$DATA_DIR/secrets"
readonly SCRAM_USERS=(admin app worker producer eraser subscriber stranger)

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

bootstrap_address() { printf '%s:%s\n' "$KAFKA_HOST" "$KAFKA_PORT"; }

require_java() {
  command -v java >/dev/null 2>&1 || die "java not found on PATH (Java 17 or newer is needed)"
}

# True when the process exists and is not a zombie (an unreaped child still answers kill -0).
pid_alive() {
  local pid="$1" stat
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/stat" ]]; then
    stat="$(<"/proc/$pid/stat")" || return 1
    stat="${stat##*) }"
    [[ "${stat:0:1}" != Z ]] || return 1
  fi
  return 0
}

# Prints the broker pid when our pid file names a live Kafka process.
running_pid() {
  local pid
  [[ -f "$PID_FILE" ]] || return 1
  pid="$(<"$PID_FILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  pid_alive "$pid" || return 1
  # Guard against a recycled pid: the process must be a Kafka server using this data dir's config.
  if [[ -r "/proc/$pid/cmdline" ]]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$CONFIG_DIR/server.properties" || return 1
  fi
  printf '%s\n' "$pid"
}

port_open() {
  (exec 3<>"/dev/tcp/$KAFKA_HOST/$1") 2>/dev/null
}

libs_ready() { [[ -f "$LIBS_DIR/.complete" ]]; }

cmd_fetch() {
  if libs_ready; then
    log "Kafka $KAFKA_VERSION jars already in ${LIBS_DIR#"$REPO_ROOT"/}"
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found on PATH (Maven fetches the Kafka jars)"
  require_java
  # Download into a temporary folder and move it in whole, so an interrupted fetch never looks complete.
  local tmp_dir="$LIBS_DIR.tmp.$$"
  rm -rf "$tmp_dir"
  mkdir -p "$(dirname "$LIBS_DIR")"
  local mvn_log="${LIBS_DIR%/libs}/fetch.log"
  log "fetching Kafka $KAFKA_VERSION jars with Maven"
  # Maven's output goes to a file (some builds print colour codes even with -q -B) and is shown on failure.
  if ! mvn -q -B -ntp -Dstyle.color=never -f "$SCRIPT_DIR/pom.xml" \
    dependency:copy-dependencies \
    -Dkafka.version="$KAFKA_VERSION" \
    -DincludeScope=runtime \
    -DoutputDirectory="$tmp_dir" >"$mvn_log" 2>&1; then
    cat "$mvn_log" >&2
    rm -rf "$tmp_dir"
    die "Maven could not fetch the Kafka $KAFKA_VERSION jars (log: $mvn_log)"
  fi
  ls "$tmp_dir"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null 2>&1 || {
    rm -rf "$tmp_dir"
    die "Maven finished but kafka_2.13-$KAFKA_VERSION.jar is missing"
  }
  touch "$tmp_dir/.complete"
  rm -rf "$LIBS_DIR"
  mv "$tmp_dir" "$LIBS_DIR"
  log "Kafka $KAFKA_VERSION jars in ${LIBS_DIR#"$REPO_ROOT"/} ($(find "$LIBS_DIR" -name '*.jar' | wc -l) jars)"
}

render_config() {
  local templates=("$SCRIPT_DIR/server.properties.template")
  [[ "$KAFKA_SECURITY" == sasl_ssl ]] && templates+=("$SCRIPT_DIR/security-sasl-ssl.properties.template")
  local config
  config="$(cat "${templates[@]}" | sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
    -e "s|@KAFKA_CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
    -e "s|@KAFKA_LOG_DIRS@|$STORAGE_DIR|g" \
    -e "s|@TLS_DIR@|$TLS_DIR|g")"
  # The passwords go in with bash's own substitution, not sed's arguments: a command's arguments are visible
  # to every user of the machine (ps) while it runs.
  config="${config//@ADMIN_PASSWORD@/$(secret admin)}"
  config="${config//@KEYSTORE_PASSWORD@/$(secret keystore)}"
  (umask 077 && printf '%s\n' "$config" >"$CONFIG_DIR/server.properties.tmp")
  mv "$CONFIG_DIR/server.properties.tmp" "$CONFIG_DIR/server.properties"
}

# The password in $SECRETS_DIR/<name>.password, made at first use (sasl_ssl only; empty otherwise).
secret() {
  [[ "$KAFKA_SECURITY" == sasl_ssl ]] || return 0
  local file="$SECRETS_DIR/$1.password"
  if [[ ! -s "$file" ]]; then
    mkdir -p "$SECRETS_DIR"
    chmod 700 "$SECRETS_DIR"
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$file")
  fi
  cat "$file"
}

# A CA and a broker certificate for 127.0.0.1 and localhost, made with openssl at the first sasl_ssl start.
make_tls_if_needed() {
  [[ "$KAFKA_SECURITY" == sasl_ssl ]] || return 0
  [[ -f "$TLS_DIR/broker.p12" ]] && return 0
  command -v openssl >/dev/null 2>&1 || die "openssl not found on PATH (KAFKA_SECURITY=sasl_ssl makes certificates)"
  mkdir -p "$TLS_DIR"
  chmod 700 "$TLS_DIR"
  log "making a CA and a broker certificate in $TLS_DIR"
  (
    set -e
    umask 077
    cd "$TLS_DIR"
    openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=profilestream local CA" \
      -keyout ca.key -out ca.pem
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout broker.key -out broker.csr
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >broker.ext
    openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 \
      -extfile broker.ext -out broker.pem
    secret keystore >/dev/null # made now if new: openssl reads it from its file, not its arguments
    openssl pkcs12 -export -in broker.pem -inkey broker.key -certfile ca.pem -name broker \
      -passout "file:$SECRETS_DIR/keystore.password" -out broker.p12
    chmod 644 ca.pem
  ) >"$LOG_DIR/tls.log" 2>&1 || { cat "$LOG_DIR/tls.log" >&2; die "making the certificates failed"; }
}

# SCRAM users for `kafka-storage format` (sasl_ssl only; every user gets both SCRAM mechanisms), one argument
# per line in a file only the owner can read: the tool reads its arguments from "@file", so no password is on
# its command line, where every user of the machine could read it (ps) while it runs.
write_scram_arguments() {
  local file="$1" user mechanism
  (
    umask 077
    : >"$file"
    for user in "${SCRAM_USERS[@]}"; do
      for mechanism in SCRAM-SHA-256 SCRAM-SHA-512; do
        printf -- '--add-scram\n%s=[name=%s,password=%s]\n' "$mechanism" "$user" "$(secret "$user")" >>"$file"
      done
    done
  )
}

# The user "app" may do everything profilestream does (any topic, any group, the cluster's create and
# describe); the user "stranger" has no ACL. Adding an ACL that exists changes nothing.
grant_acls() {
  [[ "$KAFKA_SECURITY" == sasl_ssl ]] || return 0
  local client_config="$CONFIG_DIR/admin-client.properties"
  (
    umask 077
    printf '%s\n' "security.protocol=SASL_SSL" "sasl.mechanism=SCRAM-SHA-512" \
      "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"$(secret admin)\";" \
      "ssl.truststore.type=PEM" "ssl.truststore.location=$TLS_DIR/ca.pem" >"$client_config"
  )
  if ! java -Dlog4j.configuration="file:$SCRIPT_DIR/log4j.properties" -cp "$LIBS_DIR/*" kafka.admin.AclCommand \
    --bootstrap-server "$(bootstrap_address)" --command-config "$client_config" --add \
    --allow-principal User:app --operation All --topic '*' --group '*' --cluster \
    >"$LOG_DIR/acls.log" 2>&1; then
    cat "$LOG_DIR/acls.log" >&2
    return 1
  fi
}

# A Kafka cluster id is 16 random bytes in URL-safe base64 without padding; one starting with '-'
# would read as an option on the command line, so draw again.
new_cluster_id() {
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$id" != -* ]] && break
  done
  printf '%s\n' "$id"
}

format_storage_if_needed() {
  [[ -f "$STORAGE_DIR/meta.properties" ]] && return 0
  local cluster_id
  cluster_id="$(new_cluster_id)"
  log "formatting storage in ${STORAGE_DIR} (cluster id $cluster_id, security $KAFKA_SECURITY)"
  local scram=()
  if [[ "$KAFKA_SECURITY" == sasl_ssl ]]; then
    secret admin >/dev/null # makes the secrets directory
    write_scram_arguments "$SECRETS_DIR/format-arguments"
    scram=("@$SECRETS_DIR/format-arguments")
  fi
  local formatted=0
  java -Dkafka.logs.dir="$LOG_DIR" -Dlog4j.configuration="file:$SCRIPT_DIR/log4j.properties" \
    -cp "$LIBS_DIR/*" kafka.tools.StorageTool format \
    --cluster-id "$cluster_id" --config "$CONFIG_DIR/server.properties" "${scram[@]}" \
    >"$LOG_DIR/format.log" 2>&1 || formatted=$?
  rm -f "$SECRETS_DIR/format-arguments"
  if ((formatted != 0)); then
    cat "$LOG_DIR/format.log" >&2
    die "formatting the storage failed (see $LOG_DIR/format.log)"
  fi
}

# Shows what this start wrote: all of kafka.out (JVM errors), server.log from the given byte offset.
show_log_tails() {
  local log_offset="$1"
  if [[ -s "$LOG_DIR/kafka.out" ]]; then
    log "last lines of $LOG_DIR/kafka.out:"
    tail -n 25 "$LOG_DIR/kafka.out" >&2
  fi
  if [[ -f "$LOG_DIR/server.log" ]]; then
    log "last lines of $LOG_DIR/server.log:"
    tail -c "+$((log_offset + 1))" "$LOG_DIR/server.log" | tail -n 25 >&2
  fi
}

cmd_start() {
  local pid
  if pid="$(running_pid)"; then
    log "already running (pid $pid)"
    bootstrap_address
    return 0
  fi
  rm -f "$PID_FILE"
  require_java
  libs_ready || cmd_fetch
  local port
  for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    if port_open "$port"; then
      die "port $port on $KAFKA_HOST is taken by another process (set KAFKA_PORT / KAFKA_CONTROLLER_PORT)"
    fi
  done

  mkdir -p "$LOG_DIR" "$CONFIG_DIR" "$STORAGE_DIR"
  touch "$MARKER_FILE"
  # Storage formatted before this file existed was formatted without users: plaintext.
  local formatted_for=""
  if [[ -f "$SECURITY_FILE" ]]; then
    formatted_for="$(<"$SECURITY_FILE")"
  elif [[ -f "$STORAGE_DIR/meta.properties" ]]; then
    formatted_for=plaintext
  fi
  if [[ -n "$formatted_for" && "$formatted_for" != "$KAFKA_SECURITY" ]]; then
    die "$DATA_DIR was made with KAFKA_SECURITY=$formatted_for; wipe it or use another KAFKA_DATA_DIR"
  fi
  [[ -f "$STORAGE_DIR/meta.properties" ]] || printf '%s\n' "$KAFKA_SECURITY" >"$SECURITY_FILE"
  make_tls_if_needed
  render_config
  format_storage_if_needed

  # server.log survives restarts: only lines written after this offset count as this start's.
  local log_offset=0 started_at=$SECONDS
  [[ -f "$LOG_DIR/server.log" ]] && log_offset="$(wc -c <"$LOG_DIR/server.log")"

  # Word splitting of the heap and JVM option strings is intended.
  # shellcheck disable=SC2086
  nohup java $KAFKA_HEAP $KAFKA_JVM_OPTS \
    "-Xlog:gc*:file=$LOG_DIR/gc.log:time,tags:filecount=3,filesize=10M" \
    -Dkafka.logs.dir="$LOG_DIR" \
    -Dlog4j.configuration="file:$SCRIPT_DIR/log4j.properties" \
    -cp "$LIBS_DIR/*" kafka.Kafka "$CONFIG_DIR/server.properties" \
    >"$LOG_DIR/kafka.out" 2>&1 </dev/null &
  pid=$!
  printf '%s\n' "$pid" >"$PID_FILE"

  # Ready means the broker logged that it started (KRaft brokers log it once unfenced) and its
  # client listener accepts connections; an open port alone can precede the broker's registration.
  local deadline=$((SECONDS + KAFKA_START_TIMEOUT_S))
  while ((SECONDS < deadline)); do
    if ! pid_alive "$pid"; then
      rm -f "$PID_FILE"
      show_log_tails "$log_offset"
      die "Kafka exited during start-up"
    fi
    if [[ -f "$LOG_DIR/server.log" ]] &&
      tail -c "+$((log_offset + 1))" "$LOG_DIR/server.log" | grep -q 'Kafka Server started' &&
      port_open "$KAFKA_PORT"; then
      if ! grant_acls; then
        log "granting the ACLs failed: stopping the broker"
        cmd_stop
        exit 1
      fi
      log "Kafka $KAFKA_VERSION ($KAFKA_SECURITY) ready in $((SECONDS - started_at)) s (pid $pid, logs in $LOG_DIR)"
      bootstrap_address
      return 0
    fi
    sleep 0.2
  done
  show_log_tails "$log_offset"
  log "Kafka not ready after ${KAFKA_START_TIMEOUT_S} s: stopping it"
  cmd_stop
  exit 1
}

cmd_stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE"
    log "not running"
    return 0
  fi
  log "stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT_S))
  while pid_alive "$pid" && ((SECONDS < deadline)); do
    sleep 0.2
  done
  if pid_alive "$pid"; then
    log "still running after ${KAFKA_STOP_TIMEOUT_S} s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while pid_alive "$pid"; do sleep 0.1; done
  fi
  rm -f "$PID_FILE"
  log "stopped"
}

cmd_wipe() {
  cmd_stop
  [[ -d "$DATA_DIR" ]] || return 0
  [[ -f "$MARKER_FILE" ]] || die "$DATA_DIR was not made by kafka.sh (no ${MARKER_FILE##*/}): not deleting it"
  rm -rf "$DATA_DIR"
  log "deleted $DATA_DIR"
}

cmd_status() {
  local pid
  if pid="$(running_pid)"; then
    log "running (pid $pid) at $(bootstrap_address)"
    return 0
  fi
  log "not running"
  return 1
}

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

main() {
  [[ $# -eq 1 ]] || usage
  case "$1" in
    fetch) cmd_fetch ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    wipe) cmd_wipe ;;
    status) cmd_status ;;
    bootstrap) bootstrap_address ;;
    *) usage ;;
  esac
}

main "$@"
