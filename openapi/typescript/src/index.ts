// Typed client for the Resonance API. `schema.d.ts` is generated from ../openapi.json by
// `npm run generate`; never edit it by hand (`npm run drift` fails when it is stale).
import createClient, { type Client, type ClientOptions, type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema.js";

export type * from "./schema.js";

/** RFC 9457 problem details: the body of every error response. */
export type Problem = components["schemas"]["ProblemDetails"];
export type FieldError = components["schemas"]["FieldError"];
export type Project = components["schemas"]["Project"];
export type Task = components["schemas"]["Task"];
export type Voice = components["schemas"]["Voice"];
export type Generation = components["schemas"]["Generation"];
export type Member = components["schemas"]["Member"];

export type ResonanceClient = Client<paths>;

/**
 * The `data` of an event of `GET /v1/events` (`streamEvents`, Server-Sent Events; see "Live
 * events" in the README). `EventSource` cannot send `Authorization`: read the stream with a
 * fetch-based reader such as `@microsoft/fetch-event-source`, and reconnect with a fresh token
 * and `Last-Event-ID` when it ends. `event: resync` (data `{}`) means events were missed:
 * refetch.
 */
export interface ResourceEventData<T = Task | Project | Voice | Generation> {
  /** The resource's id. */
  id: string;
  tenant_id: string;
  /** The resource's version after the change; null for deletes. */
  version: number | null;
  /** The resource as the REST API returns it; absent for deletes. */
  resource?: T;
}

export interface ResonanceClientOptions extends Omit<ClientOptions, "baseUrl"> {
  /** The API's origin, e.g. `https://api.example.com` (no trailing `/v1`). */
  baseUrl: string;
  /**
   * The bearer token: a string, or a function called before every request (for a Clerk
   * session, `() => clerk.session?.getToken()`, which refreshes the short-lived JWT).
   */
  token?: string | null | (() => string | null | undefined | Promise<string | null | undefined>);
}

/** A client for every operation of the contract, sending `Authorization: Bearer <token>`. */
export function createResonanceClient({ token, ...options }: ResonanceClientOptions): ResonanceClient {
  const client = createClient<paths>(options);
  const auth: Middleware = {
    async onRequest({ request }) {
      const value = typeof token === "function" ? await token() : token;
      if (value && !request.headers.has("Authorization")) {
        request.headers.set("Authorization", `Bearer ${value}`);
      }
      return request;
    },
  };
  client.use(auth);
  return client;
}

/** True when `value` is a problem+json body (what `error` holds for a 4xx/5xx answer). */
export function isProblem(value: unknown): value is Problem {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { status?: unknown }).status === "number" &&
    typeof (value as { code?: unknown }).code === "string"
  );
}
