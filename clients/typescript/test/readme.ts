// The README's three calls, type-checked by `tsc --noEmit` (scripts/client.sh)
// so that they cannot drift from the generated types. Not run: test/e2e.ts
// runs the same calls against a server.
import { createFastTrackClient, etagOf, isReplay, type paths, type Schemas } from "../src/index.js";

let token: string | undefined;
const api = createFastTrackClient({ baseUrl: "https://api.example.com", token: () => token });

// 1. Launch → token.
export async function signIn(launchFromLearnWorlds: Schemas["Launch"]) {
  const launch = await api.POST("/sessions", { body: launchFromLearnWorlds });
  if (launch.error) throw new Error(`${launch.error.error.code}: ${launch.error.error.message}`); // 401, 409, 422
  token = launch.data.token; // 15 minutes: then POST /sessions/refresh (app/session.ts)
  return launch.data.user; // id, email, full_name, role, organization_id
}

// 2. Read progress.
export async function showProgress() {
  const { data, error } = await api.GET("/progress");
  if (error) throw new Error(error.error.code); // 401 invalid_token: launch again
  for (const tool of data.tools) {
    console.log(tool.sprint, tool.name, tool.status, tool.percentage, tool.missing ?? []);
  }
  return data.summary; // total, completed, percentage, current_tool, next_tool
}

// 3. Save with If-Match and an Idempotency-Key, handling a 412.
let etag: string | null = null; // the ETag of the last read or save: the next save's If-Match

export async function openWoop() {
  const read = await api.GET("/tools/woop/submission");
  etag = etagOf(read.response); // '"3"', or null before the first save
  return read.data?.submission;
}

export async function saveWoopDraft(data: Schemas["JsonObject"]) {
  const key = crypto.randomUUID(); // one per user action, reused only by its retries
  const save = () =>
    api.PUT("/tools/woop/submission", {
      params: { header: { "If-Match": etag ?? undefined, "Idempotency-Key": key } },
      body: { data, status: "draft" },
    });
  const result = await save().catch(() => save()); // a network failure: the same key again
  if (result.response.status === 412) {
    // Saved elsewhere first (another tab or device): show both, let the participant merge.
    const current = await api.GET("/tools/woop/submission");
    etag = etagOf(current.response);
    return { conflict: current.data?.submission, theirs: result.error?.error.details };
  }
  if (result.error) throw new Error(`${result.error.error.code}: ${result.error.error.message}`);
  etag = etagOf(result.response);
  return { saved: result.data.submission, replayed: isReplay(result.response) };
}

// A form for any tool: the path's slug as a value.
type SavePath = Extract<keyof paths, `/tools/${string}/submission`>;

export async function saveDraftOf(slug: string, data: Schemas["JsonObject"], ifMatch?: string) {
  const path = `/tools/${slug}/submission` as SavePath;
  return api.PUT(path, { params: { header: { "If-Match": ifMatch } }, body: { data, status: "draft" } });
}
