#!/usr/bin/env bash
# Installs what Chronicle needs and a fresh machine may lack, from Debian's packages.
# Idempotent: it asks dpkg first and runs apt-get only for what is missing.
set -euo pipefail

packages=(redis-server rabbitmq-server libhiredis-dev librabbitmq-dev libseccomp-dev libcurl4-openssl-dev libpg-query-dev wrk poppler-utils python3-doc)
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
# NumPy (PyPI, pinned): the peer `make bench` measures Knowledge's exact vector search beside.
NUMPY_VERSION=2.2.6
if ! "$venv/bin/python" -c "import numpy, sys; sys.exit(numpy.__version__ != '$NUMPY_VERSION')" 2>/dev/null; then
  echo "install: NumPy $NUMPY_VERSION into $venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "numpy==$NUMPY_VERSION"
fi
# bm25s (PyPI, pinned, with SciPy): the peer `make bench` measures Knowledge's keyword search beside.
BM25S_VERSION=0.2.14
if ! "$venv/bin/python" -c "import bm25s, sys; sys.exit(bm25s.__version__ != '$BM25S_VERSION')" 2>/dev/null; then
  echo "install: bm25s $BM25S_VERSION into $venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "bm25s==$BM25S_VERSION" "scipy==1.18.1"
fi
# The offline embedder's files (Knowledge): WordLlama's token embeddings and BPE tokenizer (MIT,
# Lee Miller 2024), unpacked from the pinned wheel on PyPI into the data folder. Only data files
# are used, so the x86_64 CPython 3.11 wheel serves every machine. ($CHRONICLE_MODELS: config.sh.)
WORDLLAMA_VERSION=0.4.0.post1
WORDLLAMA_SHA256=42c2c88907ace0b0681ac6f9092d6a300a6409a5d2d61071a3fb5e7159370c97
models="$CHRONICLE_MODELS/wordllama-$WORDLLAMA_VERSION"
if [ ! -f "$models/.complete" ]; then
  echo "install: wordllama $WORDLLAMA_VERSION's embeddings and tokenizer into $models" >&2
  wheels=$(mktemp -d)
  "$venv/bin/pip" download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform manylinux2014_x86_64 --python-version 3.11 --implementation cp -d "$wheels" "wordllama==$WORDLLAMA_VERSION"
  wheel=$(ls "$wheels"/wordllama-*.whl)
  echo "$WORDLLAMA_SHA256  $wheel" | sha256sum -c --quiet - || { echo "install: wordllama wheel checksum mismatch" >&2; exit 1; }
  rm -rf "$models" && mkdir -p "$models"
  "$venv/bin/python" - "$wheel" "$models" <<'PY'
import sys, zipfile, os
wheel, out = sys.argv[1], sys.argv[2]
wanted = {
    "wordllama/tokenizers/l2_supercat_tokenizer_config.json": "l2_supercat_tokenizer_config.json",
    "wordllama/weights/l2_supercat_256.safetensors": "l2_supercat_256.safetensors",
    "wordllama-0.4.0.post1.dist-info/licenses/LICENSE": "LICENSE",
}
with zipfile.ZipFile(wheel) as z:
    for name, target in wanted.items():
        with z.open(name) as src, open(os.path.join(out, target), "wb") as dst:
            dst.write(src.read())
PY
  touch "$models/.complete"
  rm -rf "$wheels"
fi
