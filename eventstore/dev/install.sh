#!/usr/bin/env bash
# Installs what Chronicle needs and a fresh machine may lack, from Debian's packages.
# Idempotent: it asks dpkg first and runs apt-get only for what is missing.
set -euo pipefail

packages=(redis-server rabbitmq-server libhiredis-dev librabbitmq-dev libseccomp-dev libcurl4-openssl-dev wrk)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  # apt does not start services on this kind of machine, but policy-rc.d makes sure of it elsewhere.
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# schemathesis (PyPI, pinned) for the API tests' fuzzing, in a virtualenv of the data folder.
. "$(dirname "${BASH_SOURCE[0]}")/config.sh"
SCHEMATHESIS_VERSION=4.32.5
venv="$CHRONICLE_DATA/venv"
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "install: schemathesis $SCHEMATHESIS_VERSION into $venv" >&2
  mkdir -p "$CHRONICLE_DATA"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
