#!/usr/bin/env bash
# Installs what Chronicle needs and a fresh machine may lack, from Debian's packages.
# Idempotent: it asks dpkg first and runs apt-get only for what is missing.
set -euo pipefail

packages=(redis-server rabbitmq-server libhiredis-dev librabbitmq-dev libseccomp-dev libcurl4-openssl-dev libpg-query-dev wrk)
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
venv="$CHRONICLE_VENV"
# The newest CPython at hand: 3.11's ast module has a recursion-depth bug (gh-106905) that
# crashes schemathesis's deeper generators now and then.
python=python3
for candidate in "$HOME"/.pyenv/versions/3.13*/bin/python3 "$HOME"/.pyenv/versions/3.12*/bin/python3 /usr/bin/python3.13 /usr/bin/python3.12; do
  if [ -x "$candidate" ]; then python="$candidate"; break; fi
done
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION" \
   || [ "$(cat "$venv/.python" 2>/dev/null)" != "$python" ]; then
  echo "install: schemathesis $SCHEMATHESIS_VERSION into $venv ($python)" >&2
  mkdir -p "$CHRONICLE_DATA"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  echo "$python" > "$venv/.python"
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
# Jinja2 (PyPI, pinned): the peer `make bench` renders the Personas seed template with.
JINJA2_VERSION=3.1.6
if ! "$venv/bin/python" -c "import jinja2, sys; sys.exit(jinja2.__version__ != '$JINJA2_VERSION')" 2>/dev/null; then
  echo "install: Jinja2 $JINJA2_VERSION into $venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "Jinja2==$JINJA2_VERSION"
fi
