#!/usr/bin/env bash
# Installs what Chronicle needs and a fresh machine may lack, from Debian's packages.
# Idempotent: it asks dpkg first and runs apt-get only for what is missing.
set -euo pipefail

packages=(redis-server rabbitmq-server libhiredis-dev librabbitmq-dev libseccomp-dev libcurl4-openssl-dev wrk)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# apt does not start services on this kind of machine, but policy-rc.d makes sure of it elsewhere.
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
