-- What GET /v1/tasks?limit=50 executes, as the API role under row-level security.
\set t random(1, :tenants)
BEGIN;
SELECT set_config('app.tenant_id', 'org_bench_' || :t, true);
SELECT id, tenant_id, project_id, title, description, due_at, completed_at, assignee_user_id, version, created_by_user_id, created_at, updated_at FROM tasks WHERE tenant_id = 'org_bench_' || :t ORDER BY id DESC LIMIT 51;
COMMIT;
