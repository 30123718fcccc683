#!/usr/bin/env bash
# Stops the local servers that start.sh started, by their pid files. Leaves the data in place.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/config.sh"
say() { echo "dev: $*" >&2; }

stop_pid() { # name pidfile
  local pid
  [ -f "$2" ] || return 0
  pid=$(head -n1 "$2")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    say "$1 stopped"
  fi
  rm -f "$2"
}

# Usage: stop.sh [postgres] [redis] [rabbitmq]   (no argument: all three)
services=" ${*:-postgres redis rabbitmq} "

if [[ "$services" == *" postgres "* ]] && [ -f "$CHRONICLE_DATA/pg/postmaster.pid" ]; then
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$CHRONICLE_DATA/pg" -m fast -w stop >/dev/null 2>&1 && say "postgres stopped"
  else
    "$PG_BIN/pg_ctl" -D "$CHRONICLE_DATA/pg" -m fast -w stop >/dev/null 2>&1 && say "postgres stopped"
  fi
fi
[[ "$services" == *" redis "* ]] && stop_pid redis "$CHRONICLE_DATA/redis/redis.pid"
if [[ "$services" == *" rabbitmq "* ]]; then
  stop_pid rabbitmq "$CHRONICLE_DATA/rabbitmq/rabbitmq.pid"
  rm -f "$CHRONICLE_DATA/rabbitmq/launcher.pid"
  # Our epmd listens on a private port, so no other node depends on it.
  if ERL_EPMD_PORT="$CHRONICLE_EPMD_PORT" epmd -names >/dev/null 2>&1; then
    ERL_EPMD_PORT="$CHRONICLE_EPMD_PORT" epmd -kill >/dev/null 2>&1 && say "epmd stopped"
  fi
fi
exit 0
