#!/usr/bin/env bash
# Speech output: bytes per minute of audio for each format, and time to first byte of a
# 4 990-character generation streamed (`"stream": true`) vs not, on espeak-ng.
#   bash bench/speech.sh              # builds the release binary
#   BIN=target/debug/resonance bash bench/speech.sh
# Medians of RUNS (default 5) runs; the non-streamed answer is the baseline, same run.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-18282}
OUT=bench/out-speech
if [ -z "${BIN:-}" ]; then
  echo "== building (release)"
  cargo build --release -q -p resonance-api --bin resonance
  BIN=target/release/resonance
fi
rm -rf "$OUT" && mkdir -p "$OUT"
export RESONANCE_ENV=development RESONANCE_DATA_DIR=$OUT/data RESONANCE_BIND=127.0.0.1:$PORT
export RESONANCE_TTS_PROVIDER=espeak RUST_LOG=warn
unset DATABASE_URL CLERK_SECRET_KEY CLERK_PUBLISHABLE_KEY CLERK_JWKS_URL CLERK_ISSUER CLERK_JWT_KEY || true
"$BIN" > "$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
# Without RESONANCE_PLANS_FILE the built-in plan is generous enough for the dozen 5 000-
# character generations made here.
TOKEN=$("$BIN" dev token --org org_speech_bench --role admin --ttl 3600)
BIN="$BIN" BASE="http://127.0.0.1:$PORT" TOKEN="$TOKEN" RUNS="${RUNS:-5}" python3 bench/speech.py
