#!/usr/bin/env bash
# kafka-down.sh: stop the test cluster started by kafka-up.sh and remove its data.
#
# SIGTERM to every node (controlled shutdown), SIGKILL to whatever is still alive after
# KAFKA_STOP_TIMEOUT seconds, then `rm -rf .cache/kafka/run` (the jar cache in
# .cache/kafka/<version>/lib stays). KAFKA_KEEP_RUN=1 keeps the run directory (logs).
# Default timeout 5 s when the data is deleted anyway (a 3-node cluster stopped all at once
# spends 5 s in the last Raft leader's graceful-shutdown timeout), 20 s with KAFKA_KEEP_RUN=1.
# Only pids recorded by kafka-up.sh whose command line names this run directory are signalled.
# Idempotent: with nothing running it just cleans up and exits 0.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
RUN="$REPO_ROOT/.cache/kafka/run"
if [ "${KAFKA_KEEP_RUN:-0}" = 1 ]; then
  KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-20}"
else
  KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-5}"
fi

log() { echo "kafka-down: $*" >&2; }

alive() {  # running (a zombie waiting for its parent to reap it counts as gone)
  kill -0 "$1" 2>/dev/null || return 1
  [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != "Z" ]
}

ours() {  # pid is alive and is the broker of node dir $2
  local pid=$1 dir=$2
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$dir/server.properties"
}

pids=()
if [ -d "$RUN" ]; then
  for pidfile in "$RUN"/node-*/pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if ours "$pid" "$(dirname "$pidfile")"; then
      pids+=("$pid")
    fi
  done
fi

if [ "${#pids[@]}" -gt 0 ]; then
  log "stopping ${#pids[@]} node(s): ${pids[*]}"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  deadline=$(( $(date +%s) + KAFKA_STOP_TIMEOUT ))
  killed=0
  while :; do
    left=()
    for pid in "${pids[@]}"; do
      alive "$pid" && left+=("$pid")
    done
    [ "${#left[@]}" -eq 0 ] && break
    if [ "$killed" = 0 ] && [ "$(date +%s)" -ge "$deadline" ]; then
      log "still alive after ${KAFKA_STOP_TIMEOUT}s, sending SIGKILL: ${left[*]}"
      kill -KILL "${left[@]}" 2>/dev/null || true
      killed=1
      deadline=$(( $(date +%s) + 10 ))
    elif [ "$killed" = 1 ] && [ "$(date +%s)" -ge "$deadline" ]; then
      log "error: still alive after SIGKILL: ${left[*]}"
      exit 1
    fi
    sleep 0.1
  done
fi

if [ "${KAFKA_KEEP_RUN:-0}" = 1 ]; then
  rm -f "$RUN"/node-*/pid "$RUN/cluster.env"
  log "stopped; run directory kept: $RUN"
else
  rm -rf "$RUN"
  log "stopped; removed $RUN"
fi
