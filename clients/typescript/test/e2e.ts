// End to end through the client, against a local server with the demo data
// (scripts/client.sh starts one on a fresh database): Bob launches, reads his
// progress, saves his WOOP draft with If-Match, loses a stale save to a 412,
// submits, reads what the next tool gets from it, and his guru reads the
// roster. Every answer is checked; any mismatch exits non-zero.
//
//   FASTTRACK_API=http://127.0.0.1:3000 FASTTRACK_LAUNCH="$(fasttrack launch ...)" \
//   FASTTRACK_GURU_TOKEN=... node dist/test/e2e.js
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";

import { createFastTrackClient, etagOf, isReplay, type Schemas } from "../src/index.js";

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const baseUrl = env("FASTTRACK_API");
const launch = JSON.parse(env("FASTTRACK_LAUNCH")) as Schemas["Launch"];
const guruToken = env("FASTTRACK_GURU_TOKEN");

let checks = 0;
function step(name: string): void {
  checks += 1;
  console.log(`ok ${checks} - ${name}`);
}

async function main(): Promise<void> {
  // 1. Launch → token. No token yet: POST /sessions is the one open route.
  let token: string | undefined;
  const api = createFastTrackClient({ baseUrl, token: () => token });
  const session = await api.POST("/sessions", { body: launch });
  assert.equal(session.response.status, 200, JSON.stringify(session.error));
  assert.ok(session.data);
  token = session.data.token;
  assert.equal(session.data.token_type, "Bearer");
  assert.equal(session.data.user.email, "bob@demo.fasttrack.test");
  assert.equal(session.data.user.role, "user");
  assert.ok(session.data.user.organization_id, "Bob is a member of the demo organization");
  step("POST /sessions: a launch gives Bob a bearer token");

  // 2. Progress: 31 tools, the WOOP in progress (the demo saved a draft).
  const progress = await api.GET("/progress");
  assert.equal(progress.response.status, 200, JSON.stringify(progress.error));
  assert.ok(progress.data);
  assert.equal(progress.data.user_id, session.data.user.id);
  assert.equal(progress.data.tools.length, 31);
  assert.equal(progress.data.summary.total, 31);
  const woop = progress.data.tools.find((t) => t.slug === "woop");
  assert.equal(woop?.status, "in_progress");
  assert.equal(progress.data.tools.find((t) => t.slug === "know-thyself")?.status, "locked");
  step("GET /progress: 31 tools, the WOOP in progress, Know Thyself locked");

  // 3. Read the draft and its ETag, then save over it with If-Match.
  const read = await api.GET("/tools/woop/submission");
  assert.equal(read.response.status, 200, JSON.stringify(read.error));
  const first = etagOf(read.response);
  assert.equal(first, '"1"');
  assert.equal(read.data?.submission?.version, 1);
  const draft = { wish: "Open a second workshop", outcome: ["Two workshops full every week"] };
  const key = randomUUID();
  const saved = await api.PUT("/tools/woop/submission", {
    params: { header: { "If-Match": first, "Idempotency-Key": key } },
    body: { data: draft, status: "draft" },
  });
  assert.equal(saved.response.status, 200, JSON.stringify(saved.error));
  assert.equal(etagOf(saved.response), '"2"');
  assert.equal(saved.data?.submission.version, 2);
  assert.equal(saved.data?.submission.status, "draft");
  assert.deepEqual(saved.data?.submission.data, draft);
  assert.equal(isReplay(saved.response), false);
  step('PUT /tools/woop/submission with If-Match "1": version 2');

  // The same key again: the first answer, replayed, nothing written.
  const replay = await api.PUT("/tools/woop/submission", {
    params: { header: { "If-Match": first, "Idempotency-Key": key } },
    body: { data: draft, status: "draft" },
  });
  assert.equal(replay.response.status, 200, JSON.stringify(replay.error));
  assert.equal(isReplay(replay.response), true);
  assert.equal(etagOf(replay.response), '"2"');
  step("the same Idempotency-Key again: the first answer, Idempotent-Replayed: true");

  // 4. A stale save (another tab still on version 1): 412, nothing written.
  const stale = await api.PUT("/tools/woop/submission", {
    params: { header: { "If-Match": first, "Idempotency-Key": randomUUID() } },
    body: { data: { wish: "An older idea" }, status: "draft" },
  });
  assert.equal(stale.response.status, 412);
  assert.equal(stale.data, undefined);
  assert.equal(stale.error?.error.code, "precondition_failed");
  assert.deepEqual(stale.error?.error.details, { current_version: 2 });
  assert.equal(stale.error?.error.request_id, stale.response.headers.get("x-request-id"));
  const after = await api.GET("/tools/woop/submission");
  assert.equal(after.data?.submission?.version, 2);
  assert.deepEqual(after.data?.submission?.data, draft);
  step("a stale If-Match: 412 precondition_failed with current_version 2, nothing written");

  // 5. Submit with the current ETag: the WOOP completes, Know Thyself opens.
  const woopData = {
    wish: "Open a second workshop",
    outcome: ["Two workshops full every week"],
    obstacle: [{ problem: "I answer every customer email myself" }],
    plan: "If an email can wait, I answer them all at five",
  };
  const submitted = await api.PUT("/tools/woop/submission", {
    params: { header: { "If-Match": etagOf(after.response) ?? "", "Idempotency-Key": randomUUID() } },
    body: { data: woopData, status: "submitted" },
  });
  assert.equal(submitted.response.status, 200, JSON.stringify(submitted.error));
  assert.equal(etagOf(submitted.response), '"3"');
  assert.equal(submitted.data?.submission.status, "submitted");
  assert.equal(submitted.data?.progress.status, "completed");
  assert.ok(submitted.data?.unlocked_tools.includes("know-thyself"), JSON.stringify(submitted.data?.unlocked_tools));
  step("a submit with the current ETag: the WOOP completed, Know Thyself unlocked");

  // 6. What Know Thyself gets from the WOOP.
  const deps = await api.GET("/tools/{slug}/dependencies", { params: { path: { slug: "know-thyself" } } });
  assert.equal(deps.response.status, 200, JSON.stringify(deps.error));
  assert.equal(deps.data?.status, "unlocked");
  assert.equal(deps.data?.unlocked, true);
  assert.deepEqual(deps.data?.missing_required, []);
  const wish = deps.data?.dependencies.find((d) => d.field_id === "intro.woop.wish");
  assert.equal(wish?.available, true);
  assert.equal(wish?.source_tool, "woop");
  assert.equal(wish?.value, woopData.wish);
  step("GET /tools/know-thyself/dependencies: the WOOP's wish, as submitted");

  // 7. The guru's roster: Bob's row shows the WOOP completed.
  const guru = createFastTrackClient({ baseUrl, token: guruToken });
  const orgs = await guru.GET("/organizations");
  assert.equal(orgs.response.status, 200, JSON.stringify(orgs.error));
  assert.deepEqual(
    orgs.data?.items.map((o) => o.id),
    [session.data.user.organization_id],
    "a guru sees their own organization only",
  );
  const roster = await guru.GET("/organizations/{organization_id}/members", {
    params: { path: { organization_id: session.data.user.organization_id }, query: { sort: "name" } },
  });
  assert.equal(roster.response.status, 200, JSON.stringify(roster.error));
  assert.ok(roster.data);
  assert.equal(roster.data.tools.length, 31);
  assert.deepEqual(
    roster.data.items.map((m) => m.email),
    ["admin@demo.fasttrack.test", "alice@demo.fasttrack.test", "bob@demo.fasttrack.test", "guru@demo.fasttrack.test"],
  );
  const bob = roster.data.items.find((m) => m.email === "bob@demo.fasttrack.test");
  assert.equal(bob?.statuses.slice(0, 2), "CU");
  assert.equal(bob?.completed, 1);
  assert.equal(bob?.current_tool, "know-thyself");
  assert.ok(bob?.last_login_at, "the launch is Bob's last login");
  step("GET /organizations/{id}/members as the guru: Bob's WOOP completed, Know Thyself next");

  // And a participant may not read it.
  const refused = await api.GET("/organizations/{organization_id}/members", {
    params: { path: { organization_id: session.data.user.organization_id } },
  });
  assert.equal(refused.response.status, 404);
  assert.equal(refused.error?.error.code, "organization_not_found");
  step("the roster as Bob: 404 organization_not_found");

  console.log(`${checks} passed, 0 failed`);
}

main().catch((error: unknown) => {
  console.error(error);
  console.log(`${checks} passed, 1 failed`);
  process.exit(1);
});
