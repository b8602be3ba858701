#!/usr/bin/env bash
# kafka-up.sh: start a real Apache Kafka (KRaft) cluster on 127.0.0.1 for tests, no Docker.
#
#   KAFKA_NODES=1|2|3   nodes, each a combined broker+controller (default 1)
#                       client ports 19092.., controller ports 19192..
#   KAFKA_SECURITY=1    also SASL_PLAINTEXT (SCRAM-SHA-512 + PLAIN) on 19095 and SSL on 19096
#                       (node 1; node N gets 19095+2(N-1) / 19096+2(N-1)); certificates under
#                       .cache/kafka/run/tls (ca.pem for python clients)
#   KAFKA_PORT_BASE     first client port (default 19092); controllers +100, SASL +3, SSL +4
#   KAFKA_VERSION       default 3.9.2 (jars from Maven Central via deploy/kafka/pom.xml,
#                       cached in .cache/kafka/<version>/lib)
#   KAFKA_HEAP_OPTS     default "-Xmx512m -Xms128m"
#   KAFKA_START_TIMEOUT seconds to wait for every node to serve (default 120)
#
# Data and logs: .cache/kafka/run/node-N/{data,logs}. Pids: .cache/kafka/run/node-N/pid.
# Idempotent: when the same cluster is already up it only prints its bootstrap again; when a
# different or half-dead cluster is found it is stopped and wiped first (kafka-down.sh).
# The last stdout line is the bootstrap address: 127.0.0.1:19092[,127.0.0.1:19093,...].
#
# Measured (2 cores, Java 17, jars cached; wall time of `make kafka-up` until every node
# answers Metadata with all brokers registered: format + JVM start + election + registration):
#   KAFKA_NODES=1                     2.2-3.2 s idle machine, 4.6-7.1 s with load average ~7
#   KAFKA_NODES=3                     7.5-11 s idle, 9.1-12.4 s loaded (3 JVMs on 2 cores)
#   KAFKA_NODES=1 KAFKA_SECURITY=1    ~9 s (keytool certificates ~6 s of it), 18.6 s loaded
#   KAFKA_NODES=3 KAFKA_SECURITY=1    ~17.5 s
#   first run: + Maven copy of 57 jars (2.6 s with a warm ~/.m2)
#   kafka-down.sh: 0.7-2.5 s for 1 node, 4.3-5.7 s for 3 (last Raft leader SIGKILLed at 5 s)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

KAFKA_VERSION="${KAFKA_VERSION:-3.9.2}"
KAFKA_NODES="${KAFKA_NODES:-1}"
KAFKA_SECURITY="${KAFKA_SECURITY:-0}"
KAFKA_HOST="127.0.0.1"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx512m -Xms128m}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
KAFKA_SASL_USER="${KAFKA_SASL_USER:-umh}"
KAFKA_SASL_PASSWORD="${KAFKA_SASL_PASSWORD:-umh-secret}"
TLS_PASSWORD="${KAFKA_TLS_PASSWORD:-umh-tls-secret}"
KAFKA_PORT_BASE="${KAFKA_PORT_BASE:-19092}"
CLIENT_PORT_BASE=$KAFKA_PORT_BASE             # 19092, 19093, 19094
CONTROLLER_PORT_BASE=$((KAFKA_PORT_BASE + 100)) # 19192, 19193, 19194
SASL_PORT_BASE=$((KAFKA_PORT_BASE + 3))         # 19095 (19097, 19099)
SSL_PORT_BASE=$((KAFKA_PORT_BASE + 4))          # 19096 (19098, 19100)

CACHE="$REPO_ROOT/.cache/kafka"
LIB="$CACHE/$KAFKA_VERSION/lib"
RUN="$CACHE/run"
PYTHON="${KAFKA_PYTHON:-$REPO_ROOT/.venv/bin/python}"

log() { echo "kafka-up: $*" >&2; }
die() { echo "kafka-up: error: $*" >&2; exit 1; }

case "$KAFKA_NODES" in 1|2|3) ;; *) die "KAFKA_NODES must be 1, 2 or 3 (got $KAFKA_NODES)";; esac
case "$KAFKA_SECURITY" in 0|1) ;; *) die "KAFKA_SECURITY must be 0 or 1";; esac
case "$KAFKA_PORT_BASE" in *[!0-9]*|"") die "KAFKA_PORT_BASE must be a port number";; esac
command -v java >/dev/null || die "java not found (Java 17 needed)"

T0=$(date +%s.%N)
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# Jars: the whole runtime dependency tree of kafka_2.13, fetched once (KAFKA_JARS_ONLY=1: only
# that, e.g. before several test processes start clusters at the same time).
fetch_jars() {
  [ -f "$LIB/kafka_2.13-$KAFKA_VERSION.jar" ] && return 0
  command -v mvn >/dev/null || die "mvn not found (needed once to fetch the Kafka jars)"
  log "fetching org.apache.kafka:kafka_2.13:$KAFKA_VERSION and dependencies with Maven"
  local tmp="$CACHE/$KAFKA_VERSION/lib.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  mvn -q -B -f "$SCRIPT_DIR/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >&2
  rm -rf "$LIB"
  mv "$tmp" "$LIB"
  log "jars ready in $LIB ($(elapsed) s)"
}
if [ "${KAFKA_JARS_ONLY:-0}" = 1 ]; then
  fetch_jars
  exit 0
fi

rf=$(( KAFKA_NODES < 3 ? KAFKA_NODES : 3 ))
min_isr=$(( KAFKA_NODES >= 3 ? 2 : 1 ))

bootstrap=""
sasl_bootstrap=""
ssl_bootstrap=""
voters=""
for n in $(seq 1 "$KAFKA_NODES"); do
  bootstrap+="${bootstrap:+,}$KAFKA_HOST:$((CLIENT_PORT_BASE + n - 1))"
  sasl_bootstrap+="${sasl_bootstrap:+,}$KAFKA_HOST:$((SASL_PORT_BASE + 2 * (n - 1)))"
  ssl_bootstrap+="${ssl_bootstrap:+,}$KAFKA_HOST:$((SSL_PORT_BASE + 2 * (n - 1)))"
  voters+="${voters:+,}$n@$KAFKA_HOST:$((CONTROLLER_PORT_BASE + n - 1))"
done
signature="version=$KAFKA_VERSION nodes=$KAFKA_NODES security=$KAFKA_SECURITY ports=$KAFKA_PORT_BASE"

# ---------------------------------------------------------------------------------------------
# Readiness: every node answers Metadata with all brokers registered (aiokafka from .venv), or,
# without a usable python, every node logged "Kafka Server started" and listens.
have_python_probe() { [ -x "$PYTHON" ] && "$PYTHON" -c 'import aiokafka' 2>/dev/null; }

pids_alive() {
  local n pid
  for n in $(seq 1 "$KAFKA_NODES"); do
    pid=$(cat "$RUN/node-$n/pid" 2>/dev/null) || return 1
    kill -0 "$pid" 2>/dev/null || return 1
  done
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_ready() {
  local timeout=$1 deadline addrs
  deadline=$(( $(date +%s) + timeout ))
  IFS=, read -r -a addrs <<<"$bootstrap"
  if have_python_probe; then
    while true; do
      pids_alive || return 1
      if "$PYTHON" "$SCRIPT_DIR/wait_ready.py" "$KAFKA_NODES" 2 "${addrs[@]}" 2>/dev/null; then
        return 0
      fi
      [ "$(date +%s)" -lt "$deadline" ] || return 1
    done
  fi
  while true; do
    pids_alive || return 1
    local ok=1 n
    for n in $(seq 1 "$KAFKA_NODES"); do
      grep -q "Kafka Server started" "$RUN/node-$n/logs/server.log" 2>/dev/null || ok=0
      port_open "$KAFKA_HOST" $((CLIENT_PORT_BASE + n - 1)) || ok=0
    done
    [ "$ok" = 1 ] && return 0
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.3
  done
}

print_result() {
  if [ "$KAFKA_SECURITY" = 1 ]; then
    log "SASL_PLAINTEXT (SCRAM-SHA-512, PLAIN; user $KAFKA_SASL_USER): $sasl_bootstrap"
    log "SSL (CA: $RUN/tls/ca.pem): $ssl_bootstrap"
  fi
  log "bootstrap (PLAINTEXT): $bootstrap  (kafka://$bootstrap)"
  echo "$bootstrap"
}

# ---------------------------------------------------------------------------------------------
# Already running with the same shape? Then nothing to do.
if [ -f "$RUN/cluster.env" ]; then
  if [ "$(grep '^signature=' "$RUN/cluster.env" | cut -d= -f2-)" = "$signature" ] && pids_alive \
     && wait_ready 10; then
    log "already running ($signature)"
    print_result
    exit 0
  fi
  log "stopping a previous cluster that is different or not healthy"
  "$SCRIPT_DIR/kafka-down.sh" >&2
elif [ -d "$RUN" ]; then
  "$SCRIPT_DIR/kafka-down.sh" >&2
fi

ports_in_use() {
  local n p busy=""
  for n in $(seq 1 "$KAFKA_NODES"); do
    local ports=($((CLIENT_PORT_BASE + n - 1)) $((CONTROLLER_PORT_BASE + n - 1)))
    [ "$KAFKA_SECURITY" = 1 ] && ports+=($((SASL_PORT_BASE + 2 * (n - 1))) $((SSL_PORT_BASE + 2 * (n - 1))))
    for p in "${ports[@]}"; do
      port_open "$KAFKA_HOST" "$p" && busy+="${busy:+ }$p"
    done
  done
  echo "$busy"
}
for _ in 1 2 3 4 5 6 7 8 9 10; do  # a broker that was just stopped may still hold its port
  busy=$(ports_in_use)
  [ -z "$busy" ] && break
  sleep 0.5
done
[ -z "$busy" ] || die "port(s) $busy on $KAFKA_HOST already in use (another Kafka running?)"

# ---------------------------------------------------------------------------------------------
# Jars (`fetch_jars` above).
fetch_jars
CP="$LIB/*"

# ---------------------------------------------------------------------------------------------
# TLS material for the SSL listener (keytool; openssl only for the optional client key PEM).
make_tls() {
  local d="$RUN/tls" pw="$TLS_PASSWORD" san="SAN=dns:localhost,ip:127.0.0.1"
  mkdir -p "$d"
  (
    cd "$d"
    keytool -genkeypair -alias ca -keyalg RSA -keysize 2048 -validity 3650 \
      -dname "CN=umh-test-ca" -ext bc:c -ext ku:c=keyCertSign,cRLSign \
      -keystore ca.p12 -storetype PKCS12 -storepass "$pw" -keypass "$pw"
    keytool -exportcert -rfc -alias ca -keystore ca.p12 -storepass "$pw" -file ca.pem
    keytool -importcert -noprompt -alias ca -file ca.pem \
      -keystore truststore.p12 -storetype PKCS12 -storepass "$pw"
    local who
    for who in broker client; do
      local dn="CN=localhost" eku="serverAuth,clientAuth"
      [ "$who" = client ] && dn="CN=$KAFKA_SASL_USER" && eku="clientAuth"
      keytool -genkeypair -alias "$who" -keyalg RSA -keysize 2048 -validity 3650 -dname "$dn" \
        -keystore "$who.p12" -storetype PKCS12 -storepass "$pw" -keypass "$pw"
      keytool -certreq -alias "$who" -keystore "$who.p12" -storepass "$pw" -file "$who.csr"
      keytool -gencert -rfc -alias ca -keystore ca.p12 -storepass "$pw" -validity 3650 \
        -infile "$who.csr" -outfile "$who.pem" -ext "$san" \
        -ext ku:c=digitalSignature,keyEncipherment -ext "eku=$eku"
      keytool -importcert -noprompt -alias ca -file ca.pem -keystore "$who.p12" -storepass "$pw"
      keytool -importcert -alias "$who" -file "$who.pem" -keystore "$who.p12" -storepass "$pw"
    done
    if command -v openssl >/dev/null; then
      # client.pem + client.key: for mutual TLS from python (UMH_KAFKA_SSL_CERTFILE/KEYFILE).
      openssl pkcs12 -in client.p12 -passin "pass:$pw" -nocerts -nodes 2>/dev/null \
        | openssl pkey -out client.key
      chmod 600 client.key
    fi
    rm -f ./*.csr
  ) >/dev/null 2>"$RUN/tls.log" || { cat "$RUN/tls.log" >&2; die "certificate generation failed"; }
}

# ---------------------------------------------------------------------------------------------
# Configuration, one file per node.
mkdir -p "$RUN"
[ "$KAFKA_SECURITY" = 1 ] && make_tls

write_config() {
  local n=$1 dir="$RUN/node-$1"
  local port=$((CLIENT_PORT_BASE + n - 1)) cport=$((CONTROLLER_PORT_BASE + n - 1))
  local listeners="PLAINTEXT://$KAFKA_HOST:$port,CONTROLLER://$KAFKA_HOST:$cport"
  local advertised="PLAINTEXT://$KAFKA_HOST:$port"
  if [ "$KAFKA_SECURITY" = 1 ]; then
    local sp=$((SASL_PORT_BASE + 2 * (n - 1))) tp=$((SSL_PORT_BASE + 2 * (n - 1)))
    listeners+=",SASL_PLAINTEXT://$KAFKA_HOST:$sp,SSL://$KAFKA_HOST:$tp"
    advertised+=",SASL_PLAINTEXT://$KAFKA_HOST:$sp,SSL://$KAFKA_HOST:$tp"
  fi
  mkdir -p "$dir/data" "$dir/logs"
  cat >"$dir/server.properties" <<EOF
# Generated by deploy/kafka/kafka-up.sh ($signature). Test cluster only.
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listeners=$listeners
advertised.listeners=$advertised
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL
log.dirs=$dir/data

num.partitions=4
default.replication.factor=$rf
min.insync.replicas=1
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$min_isr
transaction.state.log.num.partitions=10
group.initial.rebalance.delay.ms=0

num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.segment.bytes=67108864
log.cleaner.dedupe.buffer.size=16777216
log.cleaner.threads=1
EOF
  if [ "$KAFKA_SECURITY" = 1 ]; then
    cat >>"$dir/server.properties" <<EOF

# SASL_PLAINTEXT: SCRAM-SHA-512 (credentials formatted into the metadata log by StorageTool)
# and PLAIN (users in the JAAS config below).
sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.sasl_plaintext.sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$KAFKA_SASL_USER="$KAFKA_SASL_PASSWORD";

# SSL: server certificate for localhost/127.0.0.1 signed by tls/ca.pem; client certs optional.
listener.name.ssl.ssl.keystore.type=PKCS12
listener.name.ssl.ssl.keystore.location=$RUN/tls/broker.p12
listener.name.ssl.ssl.keystore.password=$TLS_PASSWORD
listener.name.ssl.ssl.key.password=$TLS_PASSWORD
listener.name.ssl.ssl.truststore.type=PKCS12
listener.name.ssl.ssl.truststore.location=$RUN/tls/truststore.p12
listener.name.ssl.ssl.truststore.password=$TLS_PASSWORD
listener.name.ssl.ssl.client.auth=requested
EOF
  fi
}

for n in $(seq 1 "$KAFKA_NODES"); do write_config "$n"; done

# Cluster id: a Kafka Uuid (16 random bytes, URL-safe base64, no padding, not starting with -).
cluster_id=""
while [ -z "$cluster_id" ] || [ "${cluster_id:0:1}" = "-" ]; do
  cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
done

format_args=(format -t "$cluster_id" --ignore-formatted)
if [ "$KAFKA_SECURITY" = 1 ]; then
  format_args+=(--add-scram "SCRAM-SHA-512=[name=$KAFKA_SASL_USER,password=$KAFKA_SASL_PASSWORD]")
fi

java_opts=(-Djava.awt.headless=true "-Dlog4j.configuration=file:$SCRIPT_DIR/log4j.properties")
server_gc_opts=(-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
  -XX:+ExplicitGCInvokesConcurrent)
# The format tool is short-lived: C1 only and the serial collector start it faster.
tool_opts=(-Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC)

# Format every node's storage (in parallel: one JVM each).
fpids=()
for n in $(seq 1 "$KAFKA_NODES"); do
  java "${tool_opts[@]}" "${java_opts[@]}" "-Dkafka.logs.dir=$RUN/node-$n/logs" -cp "$CP" \
    kafka.tools.StorageTool "${format_args[@]}" -c "$RUN/node-$n/server.properties" \
    >"$RUN/node-$n/logs/format.log" 2>&1 &
  fpids+=($!)
done
for i in "${!fpids[@]}"; do
  wait "${fpids[$i]}" || { cat "$RUN/node-$((i + 1))/logs/format.log" >&2; die "format failed"; }
done
log "storage formatted, cluster id $cluster_id ($(elapsed) s)"

# Start the nodes in the background, each in its own session so that make/pytest exiting
# does not take them down; pids recorded for kafka-down.sh.
for n in $(seq 1 "$KAFKA_NODES"); do
  # shellcheck disable=SC2086  # KAFKA_HEAP_OPTS is a list of words on purpose
  setsid nohup java $KAFKA_HEAP_OPTS "${server_gc_opts[@]}" "${java_opts[@]}" "-Dkafka.logs.dir=$RUN/node-$n/logs" \
    -cp "$CP" kafka.Kafka "$RUN/node-$n/server.properties" \
    >"$RUN/node-$n/logs/stdout.log" 2>&1 </dev/null &
  echo $! >"$RUN/node-$n/pid"
done

{
  echo "signature=$signature"
  echo "bootstrap=$bootstrap"
  echo "cluster_id=$cluster_id"
  if [ "$KAFKA_SECURITY" = 1 ]; then
    echo "sasl_bootstrap=$sasl_bootstrap"
    echo "ssl_bootstrap=$ssl_bootstrap"
    echo "sasl_user=$KAFKA_SASL_USER"
    echo "sasl_password=$KAFKA_SASL_PASSWORD"
    echo "ssl_cafile=$RUN/tls/ca.pem"
    echo "ssl_certfile=$RUN/tls/client.pem"
    echo "ssl_keyfile=$RUN/tls/client.key"
  fi
} >"$RUN/cluster.env"
echo "$bootstrap" >"$RUN/bootstrap"

if ! wait_ready "$KAFKA_START_TIMEOUT"; then
  for n in $(seq 1 "$KAFKA_NODES"); do
    echo "---- node-$n (tail of logs/server.log, logs/stdout.log)" >&2
    tail -n 30 "$RUN/node-$n/logs/server.log" >&2 2>/dev/null || true
    tail -n 10 "$RUN/node-$n/logs/stdout.log" >&2 2>/dev/null || true
  done
  log "cluster did not become ready within ${KAFKA_START_TIMEOUT}s; stopping it (logs kept)"
  KAFKA_KEEP_RUN=1 "$SCRIPT_DIR/kafka-down.sh" >&2 || true
  exit 1
fi

log "$KAFKA_NODES node(s) ready in $(elapsed) s (Kafka $KAFKA_VERSION, KRaft)"
print_result
