#!/usr/bin/env bash
# CI: validate the committed contract, openapi/openapi.json, against the OpenAPI 3.1 schema
# (structure, $refs, parameters, unique operation ids) with the pinned openapi-spec-validator.
# The Python tools of openapi/requirements.txt go into a virtualenv (the active one if any,
# else $OPENAPI_VENV, default $TMPDIR/resonance-openapi-venv), never into the system Python.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${VIRTUAL_ENV:-${OPENAPI_VENV:-${TMPDIR:-/tmp}/resonance-openapi-venv}}"
if [ ! -x "$venv/bin/python" ]; then
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    # Debian's python3 has no venv module without this package.
    command -v apt-get >/dev/null 2>&1 || { echo "python3 -m venv is unavailable" >&2; exit 1; }
    echo "installing: python3-venv"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$venv"
    python3 -m venv "$venv"
  fi
fi

"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r openapi/requirements.txt
"$venv/bin/openapi-spec-validator" openapi/openapi.json
