#!/usr/bin/env bash
# CI: validate the committed contract, openapi/openapi.json, against the OpenAPI 3.1 schema
# (structure, $refs, parameters, unique operation ids) with the pinned openapi-spec-validator.
# The Python tools of openapi/requirements.txt go into a virtualenv (the active one if any,
# else $OPENAPI_VENV, default $TMPDIR/resonance-openapi-venv), never into the system Python.
set -euo pipefail
cd "$(dirname "$0")/.."

. .ci/python-tools.sh
"$venv/bin/openapi-spec-validator" openapi/openapi.json
