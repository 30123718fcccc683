#!/usr/bin/env bash
# Prints an access token from a running server: the first admin's by default.
#   TOKEN=$(eventstore/dev/token.sh)                      # admin@localhost
#   TOKEN=$(eventstore/dev/token.sh ada@example.com 'pw')  # any user
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/config.sh"
user="${1:-admin@localhost}"
password="${2:-$(cat "$CHRONICLE_DATA/admin-password")}"
url="http://${CHRONICLE_HOST:-127.0.0.1}:${CHRONICLE_PORT:-8080}/api/v1/auth/token"
reply=$(curl -s -X POST "$url" --data-urlencode grant_type=password --data-urlencode "username=$user" --data-urlencode "password=$password")
token=$(printf '%s' "$reply" | sed -nE 's/.*"access_token":"([^"]+)".*/\1/p')
[ -n "$token" ] || { echo "token: no token from $url: $reply" >&2; exit 1; }
printf '%s\n' "$token"
