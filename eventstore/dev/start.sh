#!/usr/bin/env bash
# Starts throwaway Postgres, Redis and RabbitMQ instances on loopback, data under $CHRONICLE_DATA.
# Safe to run again: a server whose pid file names a live process that answers is reused.
# Name services to start only those (tests start private brokers this way, on their own ports
# and data folder, through the CHRONICLE_* variables of config.sh).
# Works as root (CI, these machines: Postgres runs as the postgres user) and as a normal user.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/config.sh"
mkdir -p "$CHRONICLE_DATA/log"
LOG="$CHRONICLE_DATA/log"

say() { echo "dev: $*" >&2; }
die() { echo "dev: error: $*" >&2; exit 1; }
alive() { [ -f "$1" ] && kill -0 "$(head -n1 "$1")" 2>/dev/null; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Runs a long-lived daemon with no descriptor of ours but stdio: a parent that waits on a pipe
# (Foundation's Process does) must not wait for the daemon too.
detached() {
  (
    for fd in /proc/self/fd/*; do
      fd=${fd##*/}
      case "$fd" in 0|1|2) ;; *) eval "exec ${fd}>&-" 2>/dev/null ;; esac
    done
    exec "$@" </dev/null
  )
}

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Why a running server no longer matches the binaries on disk, or nothing. Installing a Debian
# package can upgrade postgresql-15 under a running server (postgresql-doc-15 took 15.18 to 15.20),
# which then fails to load plpgsql.so on every new connection that touches a PL/pgSQL trigger.
postgres_outdated() {
  local pid exe installed running
  pid=$(head -n1 "$1/postmaster.pid")
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  if [[ "$exe" == *"(deleted)"* ]]; then echo "its binary was replaced on disk"; return; fi
  installed=$("$PG_BIN/postgres" -V 2>/dev/null | awk '{print $3}')
  # Over TCP as the dev user (trust): no user switch, which a private umask would defeat.
  running=$("$PG_BIN/psql" -h 127.0.0.1 -p "$CHRONICLE_PG_PORT" -U "$CHRONICLE_PG_USER" -d postgres -tAc 'SHOW server_version' 2>/dev/null | awk '{print $1}')
  if [ -n "$installed" ] && [ -n "$running" ] && [ "$installed" != "$running" ]; then
    echo "it runs $running but $installed is installed"
  fi
}

start_postgres() {
  local dir="$CHRONICLE_DATA/pg" sock="$CHRONICLE_DATA/pg-socket"
  if alive "$dir/postmaster.pid" && as_pg "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$CHRONICLE_PG_PORT"; then
    local outdated
    outdated=$(postgres_outdated "$dir")
    if [ -z "$outdated" ]; then
      say "postgres already up on 127.0.0.1:$CHRONICLE_PG_PORT"; return
    fi
    say "postgres on 127.0.0.1:$CHRONICLE_PG_PORT is outdated ($outdated): restarting it"
    as_pg "$PG_BIN/pg_ctl" -D "$dir" -m fast -w -t 60 stop >/dev/null || die "could not stop the outdated postgres; see $dir/postgres.log"
  fi
  port_open "$CHRONICLE_PG_PORT" && die "port $CHRONICLE_PG_PORT is taken by another process; set CHRONICLE_PG_PORT"
  mkdir -p "$dir" "$sock"
  if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$dir" "$sock"; chmod 700 "$dir"; fi
  if [ ! -f "$dir/PG_VERSION" ]; then
    as_pg "$PG_BIN/initdb" -D "$dir" -U "$CHRONICLE_PG_USER" --auth=trust -E UTF8 --no-locale >"$LOG/initdb.log" 2>&1 \
      || die "initdb failed; see $LOG/initdb.log"
  fi
  # Throwaway instance: durability off for speed, unless CHRONICLE_PG_DURABLE=1 (the benchmark's
  # own server, whose append figures must be paid for with fsync). `chronicle bench` reports these.
  local durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  [ "${CHRONICLE_PG_DURABLE:-0}" = 1 ] && durability="-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
  as_pg "$PG_BIN/pg_ctl" -D "$dir" -l "$dir/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $CHRONICLE_PG_PORT -k $sock $durability -c max_connections=500 -c shared_buffers=256MB" \
    start >/dev/null || die "postgres did not start; see $dir/postgres.log"
  as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$CHRONICLE_PG_PORT" -U "$CHRONICLE_PG_USER" -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$CHRONICLE_PG_DB'" | grep -q 1 \
    || as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$CHRONICLE_PG_PORT" -U "$CHRONICLE_PG_USER" "$CHRONICLE_PG_DB"
  say "postgres up on 127.0.0.1:$CHRONICLE_PG_PORT"
}

start_redis() {
  local dir="$CHRONICLE_DATA/redis"
  if alive "$dir/redis.pid" && redis-cli -p "$CHRONICLE_REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
    say "redis already up on 127.0.0.1:$CHRONICLE_REDIS_PORT"; return
  fi
  port_open "$CHRONICLE_REDIS_PORT" && die "port $CHRONICLE_REDIS_PORT is taken by another process; set CHRONICLE_REDIS_PORT"
  mkdir -p "$dir"
  detached redis-server --port "$CHRONICLE_REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --pidfile "$dir/redis.pid" --dir "$dir" --logfile "$LOG/redis.log" \
    || die "redis did not start; see $LOG/redis.log"
  for _ in $(seq 1 100); do
    redis-cli -p "$CHRONICLE_REDIS_PORT" ping 2>/dev/null | grep -q PONG && { say "redis up on 127.0.0.1:$CHRONICLE_REDIS_PORT"; return; }
    sleep 0.1
  done
  die "redis did not answer PING; see $LOG/redis.log"
}

# True once the broker answers the AMQP 0-9-1 protocol header with a frame (connection.start),
# which is later than the port opening: the pid alone says nothing.
amqp_ready() {
  timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$CHRONICLE_AMQP_PORT; printf 'AMQP\x00\x00\x09\x01' >&3; head -c 1 <&3 | od -An -tx1 | grep -q 01" 2>/dev/null
}

rabbit_env() {
  local dir="$CHRONICLE_DATA/rabbitmq"
  export HOME="$dir"
  export RABBITMQ_NODENAME="chronicle@localhost"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT="$CHRONICLE_AMQP_PORT"
  export RABBITMQ_DIST_PORT="$CHRONICLE_AMQP_DIST_PORT"
  export ERL_EPMD_PORT="$CHRONICLE_EPMD_PORT"
  export ERL_EPMD_ADDRESS=127.0.0.1
  export RABBITMQ_MNESIA_BASE="$dir/mnesia"
  export RABBITMQ_LOG_BASE="$LOG/rabbitmq"
  export RABBITMQ_PID_FILE="$dir/rabbitmq.pid"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
  export RABBITMQ_CONFIG_FILE="$dir/rabbitmq"
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

start_rabbitmq() {
  local dir="$CHRONICLE_DATA/rabbitmq"
  rabbit_env
  if alive "$RABBITMQ_PID_FILE" && amqp_ready; then
    say "rabbitmq already up on 127.0.0.1:$CHRONICLE_AMQP_PORT"; return
  fi
  port_open "$CHRONICLE_AMQP_PORT" && die "port $CHRONICLE_AMQP_PORT is taken by another process; set CHRONICLE_AMQP_PORT"
  mkdir -p "$dir" "$RABBITMQ_LOG_BASE"
  echo '[].' >"$RABBITMQ_ENABLED_PLUGINS_FILE"
  # Loopback only; the default guest user may connect from loopback.
  printf 'listeners.tcp.default = 127.0.0.1:%s\nloopback_users.guest = true\n' "$CHRONICLE_AMQP_PORT" >"$dir/rabbitmq.conf"
  # A private epmd port: this epmd is ours alone, so `make stop` may stop it.
  detached epmd -port "$CHRONICLE_EPMD_PORT" -address 127.0.0.1 -daemon
  # Started from its data folder: Erlang writes crash dumps (MnesiaCore.*) to its working directory.
  pushd "$dir" >/dev/null
  detached nohup "$RABBITMQ_BIN/rabbitmq-server" >"$LOG/rabbitmq.out" 2>&1 &
  echo $! >"$dir/launcher.pid"
  popd >/dev/null
  say "rabbitmq starting (takes 10-20 s)..."
  # 10-20 s on a quiet machine; a 2-core one also running the test suite's servers has taken
  # past a minute, so it gets three.
  for _ in $(seq 1 360); do
    amqp_ready && { say "rabbitmq up on 127.0.0.1:$CHRONICLE_AMQP_PORT"; return; }
    kill -0 "$(cat "$dir/launcher.pid")" 2>/dev/null || die "rabbitmq exited; see $LOG/rabbitmq.out"
    sleep 0.5
  done
  die "rabbitmq did not answer AMQP within 180 s; see $LOG/rabbitmq.out"
}

# Usage: start.sh [postgres] [redis] [rabbitmq]   (no argument: all three)
"$(dirname "${BASH_SOURCE[0]}")/install.sh"
services=("$@")
[ ${#services[@]} -gt 0 ] || services=(postgres redis rabbitmq)
for service in "${services[@]}"; do
  case "$service" in
    postgres) start_postgres ;;
    redis) start_redis ;;
    rabbitmq) start_rabbitmq ;;
    *) die "unknown service '$service' (postgres, redis, rabbitmq)" ;;
  esac
done
