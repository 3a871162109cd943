#!/usr/bin/env bash
# CI: the TypeScript client in openapi/typescript. Installs it from its lock file, fails when
# src/schema.d.ts has drifted from the committed openapi/openapi.json, type-checks it with
# tsc --strict, then runs the end-to-end contract script against the real server (debug build,
# embedded SQLite in a temporary data dir, development auth, a free loopback port).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
client=openapi/typescript
bin="${CARGO_TARGET_DIR:-target}/debug/resonance"
case "$bin" in /*) ;; *) bin="$repo/$bin" ;; esac

echo "== npm ci ($client)"
(cd "$client" && npm ci --no-audit --no-fund --loglevel=error)

echo "== drift: src/schema.d.ts against openapi/openapi.json"
(cd "$client" && npm run -s drift)

echo "== tsc --strict"
(cd "$client" && npm run -s check)

echo "== build the server"
cargo build -q -p resonance-api --bin resonance

data_dir=$(mktemp -d)
server_pid=""
cleanup() {
  status=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -f "$data_dir/server.log" ]; then
    echo "-- server log (last 40 lines)"
    tail -n 40 "$data_dir/server.log" || true
  fi
  rm -rf "$data_dir"
  exit "$status"
}
trap cleanup EXIT INT TERM

port="${RESONANCE_E2E_PORT:-$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')}"
base_url="http://127.0.0.1:$port"

# Development auth only works with no Clerk verification configured, so clear any from the
# environment; CORS stays off (the e2e script is not a browser).
server_env=(
  env -u RESONANCE_CORS_ORIGINS -u RESONANCE_MIGRATION_DATABASE_URL -u RESONANCE_PUBLIC_URL
  -u CLERK_SECRET_KEY -u CLERK_PUBLISHABLE_KEY -u CLERK_JWKS_URL -u CLERK_ISSUER -u CLERK_JWT_KEY
  -u CLERK_AUTHORIZED_PARTIES -u CLERK_WEBHOOK_SECRET
  RESONANCE_ENV=development
  RESONANCE_DATA_DIR="$data_dir"
  DATABASE_URL="sqlite://$data_dir/resonance.db?mode=rwc"
  RESONANCE_BIND="127.0.0.1:$port"
  RESONANCE_WORKERS=2
  RUST_LOG=warn
)

echo "== start the server on $base_url"
"${server_env[@]}" "$bin" >"$data_dir/server.log" 2>&1 &
server_pid=$!

ready=""
for _ in $(seq 1 120); do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "the server exited before it was ready" >&2
    exit 1
  fi
  if curl -fsS --max-time 2 "$base_url/readyz" >/dev/null 2>&1; then
    ready=yes
    break
  fi
  sleep 0.5
done
[ -n "$ready" ] || { echo "the server was not ready within 60 s" >&2; exit 1; }

token=$("${server_env[@]}" "$bin" dev token --org org_ci --role admin)

echo "== contract e2e"
(cd "$client" && BASE_URL="$base_url" TOKEN="$token" timeout 120 npm run -s e2e)
