#!/usr/bin/env bash
# tools/lock.sh PYTHON OUT PIP-INSTALL-ARGS...
# Resolves PIP-INSTALL-ARGS anew in a scratch virtualenv (no constraints but the machine's own)
# and freezes the result into OUT, the constraints file `make` installs that virtualenv with.
set -euo pipefail
python=$1 out=$2
shift 2
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
echo "lock: resolving $* -> $out"
"$python" -m venv "$scratch/venv"
"$scratch/venv/bin/python" -m pip install -q -U pip
"$scratch/venv/bin/python" -m pip install -q "$@"
{
  echo "# The exact versions \`make test\` last passed with; refreshed by \`make lock\`."
  echo "# Used as a pip constraints file (-c): it pins, it does not install."
  "$scratch/venv/bin/python" -m pip freeze --exclude-editable | grep -v '^hitl-agent'
} > "$out"
echo "lock: $(grep -vc '^#' "$out") packages in $out"
