#!/usr/bin/env bash
# Prints the connection settings of the local servers as shell exports:
#   eval "$(eventstore/dev/env.sh)"; psql "$CHRONICLE_POSTGRES_URL"
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/config.sh"
echo "export CHRONICLE_POSTGRES_URL='postgres://${CHRONICLE_PG_USER}@127.0.0.1:${CHRONICLE_PG_PORT}/${CHRONICLE_PG_DB}?sslmode=disable'"
echo "export CHRONICLE_REDIS_URL='redis://127.0.0.1:${CHRONICLE_REDIS_PORT}/0'"
echo "export CHRONICLE_AMQP_URL='amqp://guest:guest@127.0.0.1:${CHRONICLE_AMQP_PORT}/%2f'"
# The offline embedder's files, unpacked by install.sh.
echo "export CHRONICLE_KNOWLEDGE_EMBEDDER_DIR='${CHRONICLE_MODELS}/wordllama-0.4.0.post1'"
# The local servers' token key and first admin's password: made once, kept in the ignored data
# folder (a real deployment sets CHRONICLE_JWT_SECRET from its secret store).
mkdir -p "$CHRONICLE_DATA"
secret_file() {
  [ -s "$1" ] || (umask 077; head -c 48 /dev/urandom | base64 | tr -d '\n/+=' > "$1")
}
secret_file "$CHRONICLE_DATA/jwt-secret"
secret_file "$CHRONICLE_DATA/admin-password"
echo "export CHRONICLE_JWT_SECRET='$(cat "$CHRONICLE_DATA/jwt-secret")'"
# The key that signs the log's checkpoints (Ed25519, 32 random bytes); `chronicle audit verify`
# checks them with it.
[ -s "$CHRONICLE_DATA/audit-signing-key" ] || (umask 077; head -c 32 /dev/urandom | base64 | tr -d '\n' > "$CHRONICLE_DATA/audit-signing-key")
echo "export CHRONICLE_AUDIT_SIGNING_KEY='$(cat "$CHRONICLE_DATA/audit-signing-key")'"
# The key that seals registered Text-to-SQL databases' credentials (AES-GCM, 32 random bytes).
[ -s "$CHRONICLE_DATA/sql-credentials-key" ] || (umask 077; head -c 32 /dev/urandom | base64 | tr -d '\n' > "$CHRONICLE_DATA/sql-credentials-key")
echo "export CHRONICLE_SQL_CREDENTIALS_KEY='$(cat "$CHRONICLE_DATA/sql-credentials-key")'"
