// End-to-end contract check: drives a REAL running Resonance API through the generated client and
// asserts every response (status, body, headers). Needs BASE_URL (e.g. http://127.0.0.1:18080)
// and TOKEN (a bearer token for a workspace with tasks and projects write access).
//
//   npm run e2e          # compiles with tsc --strict, then runs build/e2e/contract.e2e.js
//
// Exits 1 when any step fails; the last line is `contract e2e: N passed, M failed`.
import { createResonanceClient, isProblem, type Problem, type Project, type Task } from "../src/index.js";

const baseUrl = requireEnv("BASE_URL");
const token = requireEnv("TOKEN");
const REQUEST_TIMEOUT_MS = 10_000;

// Every request is bounded, so a hung server fails the run instead of stalling CI.
const boundedFetch = (input: Request): Promise<Response> =>
  fetch(input, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });

const api = createResonanceClient({ baseUrl, token, fetch: boundedFetch });
const anonymous = createResonanceClient({ baseUrl, fetch: boundedFetch });

// ---- tiny harness ---------------------------------------------------------------------------

class AssertionFailed extends Error {}

function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionFailed(message);
}

function assertEqual<T>(actual: T, expected: T, what: string): void {
  if (actual !== expected) {
    throw new AssertionFailed(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

/** Asserts the status and, for an error, that the body is problem+json carrying the same status. */
function assertStatus(response: Response, expected: number, body: unknown): void {
  if (response.status !== expected) {
    throw new AssertionFailed(
      `${response.url}: expected HTTP ${expected}, got ${response.status} ${JSON.stringify(body)}`,
    );
  }
}

function assertProblem(response: Response, error: unknown, status: number, code: string): Problem {
  assertStatus(response, status, error);
  assertEqual(response.headers.get("content-type"), "application/problem+json", "problem content-type");
  assert(isProblem(error), `problem+json body expected, got ${JSON.stringify(error)}`);
  assertEqual(error.status, status, "problem.status");
  assertEqual(error.code, code, "problem.code");
  assertEqual(error.type, `/problems/${code}`, "problem.type");
  assert(error.detail.length > 0, "problem.detail is empty");
  assertEqual(error.request_id, response.headers.get("x-request-id"), "problem.request_id vs x-request-id");
  return error;
}

function header(response: Response, name: string): string {
  const value = response.headers.get(name);
  assert(value !== null, `${response.url}: missing ${name} header`);
  return value;
}

/** A strong ETag of a single resource: `"<version>"`. */
function strongEtag(response: Response): string {
  const etag = header(response, "etag");
  assert(/^"[^"]+"$/.test(etag), `strong ETag expected, got ${etag}`);
  return etag;
}

let passed = 0;
let failed = 0;

async function step(name: string, run: () => Promise<void>): Promise<void> {
  try {
    await run();
    passed += 1;
    console.log(`ok   ${name}`);
  } catch (err) {
    failed += 1;
    const reason = err instanceof AssertionFailed ? err.message : err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    console.log(`FAIL ${name}\n     ${reason}`);
  }
}

function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new AssertionFailed(`skipped: ${what} was not created by an earlier step`);
  return value;
}

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) {
    console.error(`contract e2e: set ${name}`);
    process.exit(2);
  }
  return value;
}

// ---- the scenario ---------------------------------------------------------------------------

const suffix = new Date().toISOString();
let project: Project | undefined;
let task: Task | undefined;
let taskEtag: string | undefined;
let staleEtag: string | undefined;

await step("GET /v1/me without a token answers 401 problem+json with WWW-Authenticate", async () => {
  const { error, response } = await anonymous.GET("/v1/me");
  assertProblem(response, error, 401, "unauthorized");
  assert(header(response, "www-authenticate").startsWith("Bearer"), "WWW-Authenticate must offer Bearer");
});

await step("POST /v1/projects creates a project (201, Location, ETag)", async () => {
  const name = `Contract e2e ${suffix}`;
  const { data, error, response } = await api.POST("/v1/projects", { body: { name } });
  assertStatus(response, 201, error);
  assert(data, "created project body");
  assertEqual(data.name, name, "project.name");
  assertEqual(header(response, "location"), `/v1/projects/${data.id}`, "Location");
  assertEqual(header(response, "content-type"), "application/json", "content-type");
  strongEtag(response);
  project = data;
});

await step("POST /v1/tasks creates a task in the project (201, Location, ETag)", async () => {
  const p = need(project, "project");
  const title = `  Write the announcement ${suffix}  `;
  const { data, error, response } = await api.POST("/v1/tasks", {
    body: { title, project_id: p.id, due_at: "2030-12-01T09:00:00Z" },
  });
  assertStatus(response, 201, error);
  assert(data, "created task body");
  assertEqual(data.title, title.trim(), "task.title (stored trimmed)");
  assertEqual(data.project_id, p.id, "task.project_id");
  assertEqual(data.completed, false, "task.completed");
  assertEqual(data.completed_at ?? null, null, "task.completed_at");
  assertEqual(data.due_at && new Date(data.due_at).toISOString(), "2030-12-01T09:00:00.000Z", "task.due_at");
  assertEqual(header(response, "location"), `/v1/tasks/${data.id}`, "Location");
  task = data;
  taskEtag = strongEtag(response);

  // An inbox task the project filter below must leave out.
  const inbox = await api.POST("/v1/tasks", { body: { title: `Inbox ${suffix}` } });
  assertStatus(inbox.response, 201, inbox.error);
  assertEqual(inbox.data?.project_id ?? null, null, "inbox task.project_id");
});

await step("GET /v1/tasks/{id} reads it back with the same ETag; If-None-Match answers 304", async () => {
  const t = need(task, "task");
  const { data, error, response } = await api.GET("/v1/tasks/{id}", { params: { path: { id: t.id } } });
  assertStatus(response, 200, error);
  assertEqual(JSON.stringify(data), JSON.stringify(t), "task read back");
  assertEqual(strongEtag(response), taskEtag, "ETag of the read");

  const again = await api.GET("/v1/tasks/{id}", {
    params: { path: { id: t.id }, header: { "If-None-Match": need(taskEtag, "ETag") } },
  });
  assertStatus(again.response, 304, again.error);
});

await step("GET /v1/tasks?project_id= lists only the project's tasks (weak page ETag, 304 on repeat)", async () => {
  const t = need(task, "task");
  const p = need(project, "project");
  const { data, error, response } = await api.GET("/v1/tasks", {
    params: { query: { project_id: p.id, limit: 10 } },
  });
  assertStatus(response, 200, error);
  assert(data, "page body");
  assertEqual(data.data.length, 1, "tasks in the project");
  assertEqual(data.data[0]?.id, t.id, "the listed task");
  assert(data.data.every((row) => row.project_id === p.id), "every row belongs to the project");
  assertEqual(data.next_cursor ?? null, null, "next_cursor of the only page");
  const pageEtag = header(response, "etag");
  assert(pageEtag.startsWith('W/"'), `weak page ETag expected, got ${pageEtag}`);

  const again = await api.GET("/v1/tasks", {
    params: { query: { project_id: p.id, limit: 10 }, header: { "If-None-Match": pageEtag } },
  });
  assertStatus(again.response, 304, again.error);
});

await step("PATCH /v1/tasks/{id} with If-Match completes the task (200, new ETag)", async () => {
  const t = need(task, "task");
  const ifMatch = need(taskEtag, "ETag");
  const { data, error, response } = await api.PATCH("/v1/tasks/{id}", {
    params: { path: { id: t.id }, header: { "If-Match": ifMatch } },
    body: { completed: true },
  });
  assertStatus(response, 200, error);
  assert(data, "updated task body");
  assertEqual(data.completed, true, "task.completed");
  assert(data.completed_at, "task.completed_at is set");
  assertEqual(data.title, t.title, "task.title unchanged");
  const etag = strongEtag(response);
  assert(etag !== ifMatch, `ETag must change on update (still ${etag})`);
  staleEtag = ifMatch;
  taskEtag = etag;
});

await step("PATCH /v1/tasks/{id} with the stale ETag answers 412 problem+json", async () => {
  const t = need(task, "task");
  const { data, error, response } = await api.PATCH("/v1/tasks/{id}", {
    params: { path: { id: t.id }, header: { "If-Match": need(staleEtag, "stale ETag") } },
    body: { completed: false },
  });
  assertEqual(data, undefined, "no success body");
  assertProblem(response, error, 412, "precondition_failed");

  // The refused write left the task as it was.
  const read = await api.GET("/v1/tasks/{id}", { params: { path: { id: t.id } } });
  assertStatus(read.response, 200, read.error);
  assertEqual(read.data?.completed, true, "task.completed after the refused PATCH");
  assertEqual(strongEtag(read.response), taskEtag, "ETag after the refused PATCH");
});

await step("DELETE /v1/tasks/{id} answers 204; the task is then 404", async () => {
  const t = need(task, "task");
  const { data, error, response } = await api.DELETE("/v1/tasks/{id}", {
    params: { path: { id: t.id }, header: { "If-Match": need(taskEtag, "ETag") } },
  });
  assertStatus(response, 204, error);
  assertEqual(data, undefined, "no body");

  const read = await api.GET("/v1/tasks/{id}", { params: { path: { id: t.id } } });
  assertProblem(read.response, read.error, 404, "not_found");
});

await step("POST /v1/tasks with an empty title answers 422 problem+json with errors[]", async () => {
  const { data, error, response } = await api.POST("/v1/tasks", { body: { title: "" } });
  assertEqual(data, undefined, "no success body");
  const problem = assertProblem(response, error, 422, "validation_failed");
  assert(Array.isArray(problem.errors) && problem.errors.length > 0, "errors[] is a non-empty array");
  assertEqual(problem.errors[0]?.field, "title", "errors[0].field");
  assert((problem.errors[0]?.message ?? "").length > 0, "errors[0].message is empty");
});

console.log(`contract e2e: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
