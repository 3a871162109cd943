#!/usr/bin/env bash
# CI: fuzz the real server against its own contract with schemathesis, every check on.
#
# Starts the `resonance` binary on a loopback port with a throw-away data directory (embedded
# SQLite, development environment, development auth), mints an admin token for one workspace,
# and runs every schemathesis phase (examples, coverage, fuzzing, stateful: the stateful phase
# follows the OpenAPI `links` from each 201 to the created resource's get/update/delete) with a
# fixed seed and a bounded number of examples, so a run is reproducible and takes a few
# minutes at most on two cores. Any failure fails the step. The server is always stopped.
# Extra arguments go to `st run` (e.g. `--include-operation-id updateTask`).
#
# Speech: espeak-ng (`.ci/run` installs it), so generations are really synthesized and the
# stateful phase reaches their get/delete/audio. Without a provider every creation would answer
# 503 (documented, but `not_a_server_error` fails any 5xx), so the script requires it.
set -euo pipefail
cd "$(dirname "$0")/.."

SEED="${SCHEMATHESIS_SEED:-20251125}"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-100}"
BIN="${CARGO_TARGET_DIR:-target}/debug/resonance"

. .ci/python-tools.sh

# Always (a no-op when the binary is current): fuzzing a stale binary would test old code.
cargo build -q -p resonance-api --bin resonance
if ! command -v espeak-ng >/dev/null 2>&1; then
  echo "espeak-ng is required (apt-get install espeak-ng): see the note at the top" >&2
  exit 1
fi

DATA_DIR="$(mktemp -d)"
LOG="$DATA_DIR/server.log"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$DATA_DIR"
}
trap cleanup EXIT

# A free loopback port, chosen by the kernel.
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"

export RESONANCE_DATA_DIR="$DATA_DIR"
export DATABASE_URL="sqlite://$DATA_DIR/resonance.db?mode=rwc"
export RESONANCE_ENV=development
export RESONANCE_TTS_PROVIDER=espeak
export RUST_LOG=warn
# A webhook secret, so POST /webhooks/clerk verifies signatures (400) instead of answering 503
# "not configured"; nothing else of Clerk, so development tokens are accepted.
export CLERK_WEBHOOK_SECRET="whsec_$(head -c 24 /dev/urandom | base64)"
# Billing on, so its endpoints answer as in production instead of 503 `billing_not_configured`
# (documented, but `not_a_server_error` fails any 5xx). The built-in plan catalogue lists no
# Polar products, so no checkout is valid (422) and no workspace has a billing account (the
# portal answers 404): the Polar API is never called, and the URL below, where nothing
# listens, only makes sure of it. Polar webhooks are verified (400) as Clerk's are.
export POLAR_ACCESS_TOKEN="polar_oat_fuzz_$(head -c 12 /dev/urandom | base64 | tr -dc 'a-zA-Z0-9')"
export POLAR_API_URL="http://127.0.0.1:9"
export POLAR_WEBHOOK_SECRET="polar_whs_$(head -c 24 /dev/urandom | base64 | tr -dc 'a-zA-Z0-9')"
unset RESONANCE_MIGRATION_DATABASE_URL CLERK_SECRET_KEY CLERK_PUBLISHABLE_KEY CLERK_JWKS_URL \
  CLERK_ISSUER CLERK_JWT_KEY RESONANCE_STORAGE_URL

RESONANCE_BIND="127.0.0.1:$PORT" "$BIN" serve >"$LOG" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  curl -fsS "$BASE/readyz" >/dev/null 2>&1 && break
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    cat "$LOG"
    echo "the server exited before it was ready" >&2
    exit 1
  fi
  sleep 0.2
done
curl -fsS "$BASE/readyz" >/dev/null
echo "server ready on $BASE"

TOKEN="$("$BIN" dev token --org org_fuzz --role admin)"

status=0
# Every check is on. Statuses a generator cannot be expected to avoid (a stale If-Match, a
# project id of no project, a sample that is no audio) are allowed per operation, each with
# its reason, in openapi/schemathesis.toml.
# One worker: hypothesis describes strategies with `ast.parse`, and CPython 3.11's AST
# constructor keeps its recursion depth in interpreter-wide state, so two worker threads
# parsing at once fail at random with "SystemError: AST constructor recursion depth mismatch".
# (The work is Python-bound anyway: a second worker saves little on two cores.)
# A fresh Idempotency-Key for each generated request (see the hooks file for why).
SCHEMATHESIS_HOOKS=openapi/schemathesis_hooks.py \
"$venv/bin/python" -m schemathesis.cli --config-file openapi/schemathesis.toml run "$BASE/openapi.json" \
  -H "Authorization: Bearer $TOKEN" \
  --checks all \
  --phases examples,coverage,fuzzing,stateful \
  --seed "$SEED" \
  --max-examples "$MAX_EXAMPLES" \
  --workers 1 \
  --request-timeout 30 \
  --no-color \
  "$@" \
  || status=$?

if [ "$status" -ne 0 ]; then
  echo "== server log (warnings and errors)"
  tail -n 100 "$LOG"
fi
exit "$status"
