# Sourced by the other dev scripts: where the throwaway local servers live and listen.
# Every value can be overridden from the environment. Ports are off the system defaults so that a
# machine's own Postgres, Redis or RabbitMQ never clashes with these.
CHRONICLE_ROOT="${CHRONICLE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
CHRONICLE_DATA="${CHRONICLE_DATA:-$CHRONICLE_ROOT/.chronicle}"
CHRONICLE_PG_PORT="${CHRONICLE_PG_PORT:-55432}"
CHRONICLE_REDIS_PORT="${CHRONICLE_REDIS_PORT:-56379}"
CHRONICLE_AMQP_PORT="${CHRONICLE_AMQP_PORT:-55672}"
CHRONICLE_AMQP_DIST_PORT="${CHRONICLE_AMQP_DIST_PORT:-55673}"
CHRONICLE_EPMD_PORT="${CHRONICLE_EPMD_PORT:-54369}"
CHRONICLE_PG_DB="${CHRONICLE_PG_DB:-chronicle}"
# The Python tools' virtualenv (schemathesis); tests' private servers share the main one.
CHRONICLE_VENV="${CHRONICLE_VENV:-$CHRONICLE_DATA/venv}"
# Model files (the offline embedder's); likewise shared with tests' private servers.
CHRONICLE_MODELS="${CHRONICLE_MODELS:-$CHRONICLE_DATA/models}"
CHRONICLE_PG_USER="${CHRONICLE_PG_USER:-chronicle}"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
RABBITMQ_BIN="${RABBITMQ_BIN:-/usr/lib/rabbitmq/bin}"
