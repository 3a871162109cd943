#!/usr/bin/env bash
# Tasks API benchmark on PostgreSQL, with pgbench running the same SQL as the baseline in the
# same run. Prints requests/s, p50/p99 latency, CPU per request of the server and of
# PostgreSQL, the server's peak RSS, and ratios.
#
#   bench/run.sh                      # 100 tenants x 1000 tasks, 32 connections, 15 s a run
#   TENANTS=20 TASKS_PER_TENANT=500 DURATION=5 bench/run.sh
#   BIN=/tmp/resonance-old bench/run.sh   # a binary built earlier, e.g. from another commit
#   SSLMODE=require bench/run.sh          # TLS between the service (and pgbench) and PostgreSQL
#
# Needs: PostgreSQL at 127.0.0.1:5432 (trust auth, user postgres), wrk, pgbench, psql.
set -euo pipefail
cd "$(dirname "$0")/.."

TENANTS=${TENANTS:-100}
TASKS_PER_TENANT=${TASKS_PER_TENANT:-1000}
CONNECTIONS=${CONNECTIONS:-32}
DURATION=${DURATION:-15}
PORT=${PORT:-18181}
PG=postgres://postgres@127.0.0.1:5432
DB=resonance_bench
export BENCH_OUT=bench/out
OUT=$BENCH_OUT
BASE=http://127.0.0.1:$PORT

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
mkdir -p "$OUT"
rm -rf "$OUT/data"

# BIN=path benchmarks a binary built earlier (e.g. another commit's) instead of building one.
if [ -z "${BIN:-}" ]; then
  echo "== building (release)"
  cargo build --release -q -p resonance-api --bin resonance
  BIN=target/release/resonance
fi
# The open-loop load generator (bench/loadgen.rs), built before anything is measured.
cargo build --release -q --example loadgen

echo "== database $DB: $TENANTS tenants x $TASKS_PER_TENANT tasks"
psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
export RESONANCE_ENV=development
export RESONANCE_DATA_DIR=$OUT/data
# TLS to PostgreSQL, for the service and pgbench alike. Both sit on one host here, so the
# default is none (a server with ssl=on would otherwise be spoken to over TLS by both: about a
# seventh of the service's CPU per list request, a fifth of pgbench's throughput);
# SSLMODE=require measures it.
SSLMODE=${SSLMODE:-disable}
export PGSSLMODE=$SSLMODE
export DATABASE_URL="postgres://resonance_app@127.0.0.1:5432/$DB?sslmode=$SSLMODE"
export RESONANCE_MIGRATION_DATABASE_URL=$PG/$DB
export RESONANCE_BIND=127.0.0.1:$PORT
# The service's default pool size (16); DB_CONNECTIONS overrides it.
export RESONANCE_DB_MAX_CONNECTIONS=${DB_CONNECTIONS:-16}
export RUST_LOG=${RUST_LOG:-warn}
# The benchmark signs its own tokens with the development key: no Clerk settings.
unset CLERK_SECRET_KEY CLERK_PUBLISHABLE_KEY CLERK_JWKS_URL CLERK_ISSUER CLERK_JWT_KEY || true
$BIN migrate up >/dev/null
python3 bench/seed.py "$TENANTS" "$TASKS_PER_TENANT" "$OUT/pairs.txt" > "$OUT/tasks.csv"
# VACUUM sets the hint bits and visibility map of the copied rows and CHECKPOINT writes them
# out, so neither happens in the middle of a measured run.
psql -q "$PG/$DB" -c "\copy tasks(id, tenant_id, title, version, created_by_user_id, created_at, updated_at) FROM '$OUT/tasks.csv' CSV" -c "VACUUM (ANALYZE) tasks" -c "CHECKPOINT"

echo "== minting $TENANTS tokens"
: > "$OUT/tokens.txt"
for i in $(seq 1 "$TENANTS"); do
  $BIN dev token --org "org_bench_$i" --role admin --ttl 7200 >> "$OUT/tokens.txt"
done

$BIN serve > "$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.2; done
# Warm up: every token once (verification cache, tenant registration), then a short burst.
while read -r token; do curl -sf -o /dev/null -H "authorization: Bearer $token" "$BASE/v1/tasks?limit=1"; done < "$OUT/tokens.txt"
MODE=list wrk -t2 -c"$CONNECTIONS" -d3s -s bench/wrk.lua "$BASE" >/dev/null

# CPU time (utime + stime, clock ticks) of the server, and of PostgreSQL: every live postgres
# process plus what the postmaster collected from backends that have exited (cutime + cstime),
# so pgbench's short-lived backends are counted too.
TICKS=$(getconf CLK_TCK)
server_ticks() { awk '{ print $14 + $15 }' "/proc/$SERVER/stat"; }
pg_ticks() {
  local postmaster
  postmaster=$(pgrep -o -x postgres)
  { for pid in $(pgrep -x postgres); do awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null; done
    awk '{ print $16 + $17 }' "/proc/$postmaster/stat"; } | awk '{ s += $1 } END { print s }'
}
# microseconds of CPU per request: per_request TICKS REQUESTS
per_request() { awk -v t="$1" -v n="$2" -v hz="$TICKS" 'BEGIN { printf "%.0f", t / hz * 1e6 / n }'; }

# wrk → "rps p50 p99 errors api_us pg_us" (latencies in ms; CPU in µs per request)
run_wrk() {
  local api0 pg0 api1 pg1
  api0=$(server_ticks); pg0=$(pg_ticks)
  MODE=$1 wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/wrk.lua "$BASE" > "$OUT/wrk-$1.txt"
  api1=$(server_ticks); pg1=$(pg_ticks)
  local n
  n=$(awk '/ requests in / { print $1 }' "$OUT/wrk-$1.txt")
  awk -v api="$(per_request $((api1 - api0)) "$n")" -v pg="$(per_request $((pg1 - pg0)) "$n")" '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /Requests\/sec/ { rps = $2 }
    $1 == "50.000%" || $1 == "50%" { p50 = ms($2) }
    $1 == "99.000%" || $1 == "99%" { p99 = ms($2) }
    /non-2xx/ { bad = $2 }
    END { printf "%.0f %.2f %.2f %d %s %s\n", rps, p50, p99, bad + 0, api, pg }' "$OUT/wrk-$1.txt"
}

# pgbench → "tps pg_us"
pgbench_tps() {
  local pg0 pg1
  pg0=$(pg_ticks)
  pgbench -n -h 127.0.0.1 -U resonance_app -c "$CONNECTIONS" -j 2 -T "$DURATION" -M prepared \
    -D tenants="$TENANTS" -f bench/pgbench-list.sql "$DB" > "$OUT/pgbench.txt" 2>&1
  pg1=$(pg_ticks)
  local n
  n=$(awk '/number of transactions actually processed/ { split($NF, a, "/"); print a[1] }' "$OUT/pgbench.txt")
  echo "$(awk '/^tps/ { print int($3) }' "$OUT/pgbench.txt") $(per_request $((pg1 - pg0)) "$n")"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "== load: $CONNECTIONS connections, ${DURATION}s a run; list and pgbench alternate 3 times"
: > "$OUT/list-runs.txt"; : > "$OUT/pgbench-runs.txt"
for round in 1 2 3; do
  run_wrk list >> "$OUT/list-runs.txt"
  pgbench_tps >> "$OUT/pgbench-runs.txt"
done
LIST_RPS=$(awk '{ print $1 }' "$OUT/list-runs.txt" | median)
LIST_P50=$(awk '{ print $2 }' "$OUT/list-runs.txt" | median)
LIST_P99=$(awk '{ print $3 }' "$OUT/list-runs.txt" | median)
LIST_BAD=$(awk '{ s += $4 } END { print s }' "$OUT/list-runs.txt")
LIST_API_US=$(awk '{ print $5 }' "$OUT/list-runs.txt" | median)
LIST_PG_US=$(awk '{ print $6 }' "$OUT/list-runs.txt" | median)
PG_TPS=$(awk '{ print $1 }' "$OUT/pgbench-runs.txt" | median)
PG_PG_US=$(awk '{ print $2 }' "$OUT/pgbench-runs.txt" | median)
echo "== p99 at half of peak list throughput (open loop, constant rate, 3 runs)"
HALF=$(( LIST_RPS / 2 ))
awk -v base="$BASE" '{ printf "GET\t%s/v1/tasks?limit=50\t%s\n", base, $0 }' "$OUT/tokens.txt" > "$OUT/loadgen-list.tsv"
: > "$OUT/half-runs.txt"
for round in 1 2 3; do
  target/release/examples/loadgen "$OUT/loadgen-list.tsv" "$HALF" "$DURATION" 2 | tee -a "$OUT/half-runs.txt"
done
HALF_P50=$(sed -E 's/.* p50=([0-9.]+)ms.*/\1/' "$OUT/half-runs.txt" | median)
HALF_P99=$(sed -E 's/.* p99=([0-9.]+)ms.*/\1/' "$OUT/half-runs.txt" | median)
# Writes last: the rows they add (and the autovacuum they set off) must not disturb the list
# figures above.
read -r GET_RPS GET_P50 GET_P99 GET_BAD GET_API_US GET_PG_US < <(run_wrk get)
read -r POST_RPS POST_P50 POST_P99 POST_BAD POST_API_US POST_PG_US < <(run_wrk create)

PEAK_RSS_KB=$(awk '/VmHWM/ { print $2 }' /proc/$SERVER/status)
kill $SERVER; wait $SERVER 2>/dev/null || true
trap - EXIT

echo
echo "Results ($TENANTS tenants x $TASKS_PER_TENANT tasks, $CONNECTIONS connections, ${DURATION}s runs, $(nproc) cores, sslmode=$SSLMODE; list and pgbench: medians of 3)"
printf "%-28s %10s %10s %10s %8s %12s %12s\n" "endpoint" "req/s" "p50 ms" "p99 ms" "errors" "API CPU us" "PG CPU us"
printf "%-28s %10s %10s %10s %8s %12s %12s\n" "GET /v1/tasks?limit=50" "$LIST_RPS" "$LIST_P50" "$LIST_P99" "$LIST_BAD" "$LIST_API_US" "$LIST_PG_US"
printf "%-28s %10s %10s %10s %8s %12s %12s\n" "GET /v1/tasks/{id}" "$GET_RPS" "$GET_P50" "$GET_P99" "$GET_BAD" "$GET_API_US" "$GET_PG_US"
printf "%-28s %10s %10s %10s %8s %12s %12s\n" "POST /v1/tasks" "$POST_RPS" "$POST_P50" "$POST_P99" "$POST_BAD" "$POST_API_US" "$POST_PG_US"
printf "%-28s %10s %10s %10s %8s %12s %12s\n" "pgbench (list SQL)" "$PG_TPS" "" "" "" "" "$PG_PG_US"
echo "(CPU: utime + stime per request, in microseconds, medians for list and pgbench)"
echo "list / pgbench ratio:        $(awk -v a="$LIST_RPS" -v b="$PG_TPS" 'BEGIN { printf "%.2f (target >= 0.80)", a / b }')"
echo "list service CPU:            $LIST_API_US us per request (target <= 60 us)"
echo "list at half peak ($HALF/s): median p50 ${HALF_P50} ms, median p99 ${HALF_P99} ms (target p99 <= 5 ms)"
echo "server peak RSS:             $(( PEAK_RSS_KB / 1024 )) MiB (target <= 64 MiB)"
