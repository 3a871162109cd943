#!/usr/bin/env bash
# A/B of two server binaries on the list request, alternating in one sitting so both see the
# same machine: each binary gets its own identically seeded database, and the rounds go
# A, B, A, B, … . Prints, per binary, the medians of requests/s, p50/p99 latency and the
# service's CPU per request (utime + stime from /proc over each measured run), and B / A.
#
#   bench/ab.sh OLD_BINARY NEW_BINARY              # e.g. a build of main against this tree's
#   ROUNDS=5 DURATION=10 MODE=get bench/ab.sh A B  # MODE: list (default), get, create
#   SSLMODE=require bench/ab.sh A B                # TLS to PostgreSQL (default: none, as run.sh)
#
# Needs: PostgreSQL at 127.0.0.1:5432 (trust auth, user postgres), wrk, psql, python3.
set -euo pipefail
cd "$(dirname "$0")/.."

A=$(realpath "$1")
B=$(realpath "$2")
TENANTS=${TENANTS:-100}
TASKS_PER_TENANT=${TASKS_PER_TENANT:-1000}
CONNECTIONS=${CONNECTIONS:-32}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
MODE=${MODE:-list}
PORT=${PORT:-18182}
PG=postgres://postgres@127.0.0.1:5432
export BENCH_OUT=bench/out-ab
OUT=$BENCH_OUT
BASE=http://127.0.0.1:$PORT
TICKS=$(getconf CLK_TCK)

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
rm -rf "$OUT"
mkdir -p "$OUT"

export RESONANCE_ENV=development
export RESONANCE_BIND=127.0.0.1:$PORT
export RESONANCE_DB_MAX_CONNECTIONS=${DB_CONNECTIONS:-16}
export RUST_LOG=${RUST_LOG:-warn}
unset CLERK_SECRET_KEY CLERK_PUBLISHABLE_KEY CLERK_JWKS_URL CLERK_ISSUER CLERK_JWT_KEY \
  RESONANCE_REDIS_URL RESONANCE_PLANS_FILE || true

# Both binaries sign tokens with the same development key (one data dir for the key).
python3 bench/seed.py "$TENANTS" "$TASKS_PER_TENANT" "$OUT/pairs.txt" > "$OUT/tasks.csv"
export RESONANCE_DATA_DIR=$OUT/data
for side in a b; do
  bin=$A; [ "$side" = b ] && bin=$B
  db=resonance_ab_$side
  echo "== database $db for $bin"
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
  DATABASE_URL=postgres://resonance_app@127.0.0.1:5432/$db RESONANCE_MIGRATION_DATABASE_URL=$PG/$db \
    "$bin" migrate up >/dev/null
  psql -q "$PG/$db" -c "\copy tasks(id, tenant_id, title, version, created_by_user_id, created_at, updated_at) FROM '$OUT/tasks.csv' CSV" \
    -c "VACUUM (ANALYZE) tasks" -c "CHECKPOINT"
done
: > "$OUT/tokens.txt"
for i in $(seq 1 "$TENANTS"); do
  "$A" dev token --org "org_bench_$i" --role admin --ttl 7200 >> "$OUT/tokens.txt"
done

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# One measured run of one binary: "rps p50 p99 cpu_us_per_request errors".
measure() {
  local side=$1 bin=$2
  DATABASE_URL="postgres://resonance_app@127.0.0.1:5432/resonance_ab_$side?sslmode=${SSLMODE:-disable}" \
    RESONANCE_MIGRATION_DATABASE_URL=$PG/resonance_ab_$side "$bin" serve > "$OUT/server-$side.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
  while read -r token; do curl -sf -o /dev/null -H "authorization: Bearer $token" "$BASE/v1/tasks?limit=1"; done < "$OUT/tokens.txt"
  MODE=$MODE wrk -t2 -c"$CONNECTIONS" -d2s -s bench/wrk.lua "$BASE" >/dev/null
  local before after
  before=$(cpu_ticks "$pid")
  MODE=$MODE wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/wrk.lua "$BASE" > "$OUT/wrk-$side.txt"
  after=$(cpu_ticks "$pid")
  local rss
  rss=$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  awk -v ticks=$((after - before)) -v hz="$TICKS" -v rss="$rss" '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /^ +[0-9]+ requests in/ { n = $1 }
    /Requests\/sec/ { rps = $2 }
    $1 == "50.000%" || $1 == "50%" { p50 = ms($2) }
    $1 == "99.000%" || $1 == "99%" { p99 = ms($2) }
    /non-2xx/ { bad = $2 }
    END { printf "%.0f %.2f %.2f %.1f %d %d\n", rps, p50, p99, ticks / hz * 1e6 / n, bad + 0, rss / 1024 }' "$OUT/wrk-$side.txt"
}

echo "== $MODE: $CONNECTIONS connections, ${DURATION}s a run, $ROUNDS rounds of A then B"
: > "$OUT/a.txt"; : > "$OUT/b.txt"
for round in $(seq 1 "$ROUNDS"); do
  measure a "$A" | tee -a "$OUT/a.txt" | sed "s/^/round $round A: /"
  measure b "$B" | tee -a "$OUT/b.txt" | sed "s/^/round $round B: /"
done

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
col() { awk -v c="$2" '{ print $c }' "$OUT/$1.txt" | median; }
echo
echo "Medians of $ROUNDS runs ($MODE, $TENANTS tenants x $TASKS_PER_TENANT tasks, $(nproc) cores)"
printf "%-4s %10s %8s %8s %14s %8s %9s\n" "" "req/s" "p50 ms" "p99 ms" "CPU us/req" "errors" "RSS MiB"
for side in a b; do
  printf "%-4s %10s %8s %8s %14s %8s %9s\n" "$(echo $side | tr ab AB)" "$(col $side 1)" "$(col $side 2)" "$(col $side 3)" "$(col $side 4)" \
    "$(awk '{ s += $5 } END { print s }' "$OUT/$side.txt")" "$(col $side 6)"
done
awk -v a="$(col a 1)" -v b="$(col b 1)" -v ca="$(col a 4)" -v cb="$(col b 4)" \
  'BEGIN { printf "B / A: throughput %.3f, CPU per request %.3f\n", b / a, cb / ca }'
