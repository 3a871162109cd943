#!/usr/bin/env bash
# CI: a real browser calls the API cross-origin. Starts the real binary with one allowed
# origin, serves .ci/browser-cors.html from that origin (another port), and has headless
# Chromium run it: fetch() must read successes, errors (412, 422, 401, 404, 405) and the
# exposed headers. Fails unless every check on the page passed.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  echo "installing: chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# Built by the test step; built here only when absent.
bin="${CARGO_TARGET_DIR:-target}/debug/resonance"
if [ ! -x "$bin" ]; then
  cargo build -q -p resonance-api --bin resonance
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
api_port=$(free_port)
page_port=$(free_port)
while [ "$page_port" = "$api_port" ]; do page_port=$(free_port); done
api="http://127.0.0.1:$api_port"
page_origin="http://127.0.0.1:$page_port"

# The API: development auth (no Clerk), its own data directory, the page's origin allowed.
mkdir -p "$work/data" "$work/page" "$work/profile"
export RESONANCE_ENV=development RESONANCE_DATA_DIR="$work/data"
export DATABASE_URL="sqlite://$work/data/resonance.db?mode=rwc"
unset RESONANCE_MIGRATION_DATABASE_URL RESONANCE_PUBLIC_URL CLERK_SECRET_KEY \
  CLERK_PUBLISHABLE_KEY CLERK_JWKS_URL CLERK_ISSUER CLERK_JWT_KEY CLERK_AUTHORIZED_PARTIES
RESONANCE_BIND="127.0.0.1:$api_port" RESONANCE_CORS_ORIGINS="$page_origin" RESONANCE_WORKERS=1 \
  RUST_LOG=warn "$bin" >"$work/api.log" 2>&1 &
pids+=($!)

# The page, from another origin.
cp .ci/browser-cors.html "$work/page/index.html"
python3 -m http.server "$page_port" --bind 127.0.0.1 --directory "$work/page" \
  >"$work/page.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 60); do
  if curl -fs "$api/healthz" >/dev/null && curl -fs "$page_origin/index.html" >/dev/null; then
    break
  fi
  sleep 0.5
done
if ! curl -fs "$api/healthz" >/dev/null; then
  echo "the API did not start:" >&2
  cat "$work/api.log" >&2
  exit 1
fi

token=$("$bin" dev token --org org_ci --role admin)

dom="$work/dom.html"
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$work/profile" --virtual-time-budget=30000 \
  --dump-dom "$page_origin/index.html#api=$api&token=$token" >"$dom" 2>"$work/chromium.log" || {
  echo "chromium failed:" >&2
  cat "$work/chromium.log" >&2
  exit 1
}

summary=$(grep -o 'browser cors: [0-9]* passed, [0-9]* failed' "$dom" || true)
if [ -z "$summary" ]; then
  echo "the page did not finish; DOM:" >&2
  cat "$dom" >&2
  echo "API log:" >&2
  tail -n 50 "$work/api.log" >&2
  exit 1
fi
if ! grep -q 'browser cors: [1-9][0-9]* passed, 0 failed' "$dom"; then
  sed -n '/<pre id="result">/,/<\/pre>/p' "$dom" >&2
  echo "$summary" >&2
  exit 1
fi
echo "$summary"
