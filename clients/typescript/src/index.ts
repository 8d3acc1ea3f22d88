// The Fast Track API client: openapi-fetch over the types openapi-typescript
// generates from the served OpenAPI document (src/schema.d.ts; `npm run
// generate`, never edited by hand). Every path, parameter, body and answer is
// typed; what follows only adds the bearer token and the ETag helpers.
import createClient, { type Client, type ClientOptions } from "openapi-fetch";
import type { components, paths } from "./schema.js";

export type { components, operations, paths } from "./schema.js";
/** The document's named schemas: `Schemas["Progress"]`, `Schemas["Error"]`, ... */
export type Schemas = components["schemas"];
/** The body of every 4xx and 5xx: `{ error: { code, message, details, request_id } }`. */
export type ApiError = Schemas["Error"];
/**
 * Answers typed as their JSON: the roster's `text/csv` (`Accept: text/csv`)
 * is left out of `data`; read it with `parseAs: "text"`.
 */
export type FastTrackClient = Client<paths, "application/json">;

export interface FastTrackOptions extends ClientOptions {
  /** The API's root, e.g. `https://api.example.com` or `http://127.0.0.1:3000`. */
  baseUrl: string;
  /**
   * The bearer token from `POST /sessions`, or a function returning the
   * current one (read before every request; none sent when it returns
   * nothing).
   */
  token?: string | (() => string | null | undefined);
}

/** A client of the API at `baseUrl`, sending `Authorization: Bearer <token>`. */
export function createFastTrackClient(options: FastTrackOptions): FastTrackClient {
  const { token, ...rest } = options;
  const client = createClient<paths, "application/json">(rest);
  if (token !== undefined) {
    client.use({
      onRequest({ request }) {
        const current = typeof token === "function" ? token() : token;
        if (current) request.headers.set("Authorization", `Bearer ${current}`);
        return request;
      },
    });
  }
  return client;
}

/**
 * The `ETag` of an answer (a submission's `"<version>"`), to send back as
 * `If-Match` on the next save; null when the answer has none. A browser reads
 * it only because the API exposes it (`Access-Control-Expose-Headers`).
 */
export function etagOf(response: Response): string | null {
  return response.headers.get("etag");
}

/** Whether the answer is the replay of an earlier request with the same `Idempotency-Key`. */
export function isReplay(response: Response): boolean {
  return response.headers.get("idempotent-replayed") === "true";
}
