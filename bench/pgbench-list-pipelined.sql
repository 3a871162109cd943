-- The same statements as pgbench-list.sql, written in one pipeline (one round trip), as the
-- service's pipelined reads send them. Needs the extended protocol:
--   pgbench -n -h 127.0.0.1 -U resonance_app -c 32 -j 2 -T 10 -M prepared -D tenants=100 \
--     -f bench/pgbench-list-pipelined.sql resonance_bench
\set t random(1, :tenants)
\startpipeline
BEGIN;
SELECT set_config('app.tenant_id', 'org_bench_' || :t, true);
SELECT id, tenant_id, project_id, title, description, due_at, completed_at, assignee_user_id, version, created_by_user_id, created_at, updated_at FROM tasks WHERE tenant_id = 'org_bench_' || :t ORDER BY id DESC LIMIT 51;
COMMIT;
\endpipeline
