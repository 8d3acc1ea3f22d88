// The reference app (app/) in a real browser against the local server:
// headless Chromium opens it from an origin the API allows, with Carol's
// signed launch in the link, and a participant's whole flow is driven through
// the page: the lock reasons, the WOOP's form built from GET /tools/woop, a
// draft, another tab's save and the 412 it causes, a draft over it, a submit
// refused (422) then accepted, the next tool's "from earlier tools", a reload.
// The bearer token is made stale twice on the way (replaced by one that
// really expired, minted by `fasttrack token --expired`: the server answers
// 401 invalid_token) and once about to expire: each time one refresh goes out
// and the flow carries on. What is checked is the page's DOM, the requests it
// sent, and the server's state read through the client.
//
//   FASTTRACK_API=http://127.0.0.1:3000 FASTTRACK_APP_PORT=5173 FASTTRACK_LAUNCH="$(fasttrack launch ...)" \
//   FASTTRACK_TOKEN=... FASTTRACK_EXPIRED_TOKEN=... node dist/test/app.js
import assert from "node:assert/strict";

import puppeteer, { type Page } from "puppeteer-core";

import { serveApp } from "../app/serve.js";
import { createFastTrackClient, etagOf, type Schemas } from "../src/index.js";

function env(name: string, fallback?: string): string {
  const value = process.env[name] ?? fallback;
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const api = env("FASTTRACK_API");
const launch = env("FASTTRACK_LAUNCH");
const token = env("FASTTRACK_TOKEN"); // Carol's: "another tab", and the server's state
const expired = env("FASTTRACK_EXPIRED_TOKEN"); // Carol's, expired an hour ago
const appPort = Number(env("FASTTRACK_APP_PORT", "5173"));
const chromium = env("CHROMIUM", "/usr/bin/chromium");
const server = createFastTrackClient({ baseUrl: api, token });

let checks = 0;
function step(name: string): void {
  checks += 1;
  console.log(`ok ${checks} - ${name}`);
}

/** A request the page sent to the API (no preflights), with the answer's status. */
interface Sent {
  method: string;
  path: string;
  status: number;
  ifMatch?: string;
  key?: string;
  /** Which bearer token it carried: never the token itself, which a failure would print. */
  bearer?: "expired" | "another";
}

async function submissionOnServer(): Promise<Schemas["SubmissionView"]> {
  const read = await server.GET("/tools/woop/submission");
  assert.equal(read.response.status, 200, JSON.stringify(read.error));
  assert.ok(read.data);
  return read.data;
}

async function text(page: Page, selector: string): Promise<string> {
  return page.$eval(selector, (e) => (e.textContent ?? "").replace(/\s+/g, " ").trim());
}

async function statusSays(page: Page, pattern: RegExp): Promise<string> {
  await page.waitForFunction(
    (source: string) => new RegExp(source).test(document.getElementById("status")?.textContent ?? ""),
    { timeout: 10_000 },
    pattern.source,
  );
  return text(page, "#status");
}

/** Types into the field with `key`: its nth text box or text area (cells and items in order). */
async function type(page: Page, key: string, nth: number, value: string): Promise<void> {
  const boxes = await page.$$(`.field[data-key="${key}"] textarea, .field[data-key="${key}"] input`);
  const box = boxes[nth];
  assert.ok(box, `${key} has a box #${nth}`);
  await box.click({ count: 3 });
  await box.evaluate((e) => {
    (e as HTMLInputElement).value = "";
  });
  if (value) await box.type(value);
}

async function main(): Promise<void> {
  const appServer = await serveApp(appPort);
  const origin = `http://localhost:${appPort}`;
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: [...(process.getuid?.() === 0 ? ["--no-sandbox"] : []), "--disable-dev-shm-usage"],
  });
  const sent: Sent[] = [];
  const page = await browser.newPage();
  page.setDefaultTimeout(10_000);
  try {
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(String(error)));
    page.on("response", (response) => {
      const request = response.request();
      if (!request.url().startsWith(api) || request.method() === "OPTIONS") return;
      const headers = request.headers();
      sent.push({
        method: request.method(),
        path: new URL(request.url()).pathname,
        status: response.status(),
        ifMatch: headers["if-match"],
        key: headers["idempotency-key"],
        bearer: headers["authorization"] ? (headers["authorization"] === `Bearer ${expired}` ? "expired" : "another") : undefined,
      });
    });
    const since = (mark: number) => sent.slice(mark);
    const refreshes = (list: Sent[]) => list.filter((s) => s.path === "/sessions/refresh");

    // 1. LearnWorlds' link: the launch in the fragment.
    await page.goto(`${origin}/?api=${encodeURIComponent(api)}#launch=${encodeURIComponent(launch)}`);
    await page.waitForSelector('#tools li[data-slug="know-thyself"]');
    assert.equal(await text(page, "#who"), "Carol Northwind");
    assert.equal(await page.evaluate(() => location.hash), "", "the launch leaves the address bar");
    assert.deepEqual(
      sent.map((s) => `${s.method} ${s.path} ${s.status}`),
      ["POST /sessions 200", "GET /progress 200"],
    );
    const kept = await page.evaluate(() => sessionStorage.getItem("fasttrack.refresh_token"));
    assert.ok(/^[A-Za-z0-9_-]{43}$/.test(kept ?? ""), "the refresh token is kept in sessionStorage");
    step("the app signs in from the launch in the link, drops it from the address, lists the tools");

    // 2. Why Know Thyself is locked, as /progress says in the same answer.
    const progress = await server.GET("/progress");
    const lockedTool = progress.data?.tools.find((t) => t.slug === "know-thyself");
    assert.equal(lockedTool?.status, "locked");
    assert.ok(lockedTool?.missing?.length, "Know Thyself misses inputs");
    assert.equal(await page.$eval('#tools li[data-slug="know-thyself"] button', (b) => b.disabled), true);
    const reasons = await page.$$eval('#tools li[data-slug="know-thyself"] .reasons li', (items) =>
      items.map((li) => ({ field: li.getAttribute("data-field"), text: li.textContent })),
    );
    assert.deepEqual(
      reasons,
      lockedTool.missing.map((m) => ({ field: m.field, text: `Needs “${m.label}” from WOOP` })),
    );
    assert.equal(await page.$$eval('#tools li[data-slug="woop"] .reasons', (r) => r.length), 0);
    step(`a locked tool shows its reasons: Know Thyself ${JSON.stringify(reasons.map((r) => r.text))}`);

    // 3. The bearer token expires unseen; the next click opens the WOOP: three
    // reads at once, each refused, one refresh, each sent again.
    let mark = sent.length;
    await page.evaluate((t: string) => (window as any).fasttrackApp.session.replaceAccessToken(t), expired);
    await page.click('#tools li[data-slug="woop"] button');
    await page.waitForSelector('#form[data-slug="woop"]');
    let flow = since(mark);
    assert.equal(refreshes(flow).length, 1, `one refresh: ${JSON.stringify(flow)}`);
    assert.equal(refreshes(flow)[0]?.status, 200);
    for (const path of ["/tools/woop", "/tools/woop/submission", "/tools/woop/dependencies"]) {
      const reads = flow.filter((s) => s.path === path);
      assert.deepEqual(reads.map((s) => s.status), [401, 200], path);
      assert.deepEqual(reads.map((s) => s.bearer), ["expired", "another"], path);
    }
    step("an expired token under three reads at once: one refresh, each read sent again, the form opens");

    // 4. The form, from GET /tools/woop: a field per output, by shape.
    const description = await server.GET("/tools/{slug}", { params: { path: { slug: "woop" } } });
    assert.ok(description.data);
    const fields = await page.$$eval("#form .field", (found) =>
      found.map((f) => ({
        key: f.getAttribute("data-key"),
        shape: f.getAttribute("data-shape"),
        label: f.querySelector("h3")?.textContent,
        columns: [...f.querySelectorAll("thead th")].map((th) => th.textContent).filter(Boolean),
        textareas: f.querySelectorAll("textarea").length,
      })),
    );
    assert.deepEqual(
      fields,
      description.data.outputs.map((o) => ({
        key: o.key,
        shape: o.shape.type,
        label: o.label,
        columns: o.shape.type === "table" ? o.shape.columns.map((c) => c.label) : [],
        textareas: o.shape.type === "long_text" ? 1 : 0,
      })),
    );
    assert.match(await text(page, "#form .inputs"), /uses nothing from earlier tools/);
    assert.equal(await text(page, "#version"), "Not saved yet.");
    step(`the WOOP's form is its description: ${fields.map((f) => `${f.key} (${f.shape})`).join(", ")}`);

    // 5. A first draft: no If-Match (there is nothing yet), then version 1.
    await type(page, "wish", 0, "Three bakeries by next spring");
    await type(page, "outcome", 0, "Second shop signed");
    await page.click('.field[data-key="outcome"] button.add');
    await type(page, "outcome", 1, "Head baker hired");
    await type(page, "obstacle", 0, "I do every job myself");
    await type(page, "obstacle", 1, "I open the till");
    mark = sent.length;
    await page.click("#save-draft");
    await statusSays(page, /Draft saved \(version 1\)/);
    flow = since(mark).filter((s) => s.method === "PUT");
    assert.deepEqual(flow.map((s) => [s.status, s.ifMatch ?? null]), [[201, null]]);
    let stored = await submissionOnServer();
    assert.equal(stored.submission?.version, 1);
    assert.equal(stored.submission?.status, "draft");
    assert.deepEqual(stored.submission?.data, {
      wish: "Three bakeries by next spring",
      outcome: ["Second shop signed", "Head baker hired"],
      obstacle: [{ problem: "I do every job myself", ifTrigger: "I open the till" }],
    });
    step("Save draft: 201, version 1 on the server, holding what was typed (the list's two items, the table's row)");

    // 6. Another tab saves over version 1; this one's save is then a 412.
    const other = await server.PUT("/tools/woop/submission", {
      params: { header: { "If-Match": '"1"' } },
      body: { data: { wish: "From the other tab", outcome: ["Saved elsewhere"] }, status: "draft" },
    });
    assert.equal(etagOf(other.response), '"2"', JSON.stringify(other.error));
    await type(page, "plan", 0, "Hand over a task a day");
    mark = sent.length;
    await page.click("#save-draft");
    await page.waitForSelector("#conflict:not([hidden])");
    assert.match(await text(page, "#conflict"), /saved elsewhere .* version 2\. Your changes are not saved yet\./);
    assert.deepEqual(since(mark).filter((s) => s.method === "PUT").map((s) => [s.status, s.ifMatch]), [[412, '"1"']]);
    stored = await submissionOnServer();
    assert.equal(stored.submission?.version, 2);
    assert.equal(stored.submission?.data["wish"], "From the other tab", "nothing of the stale save was written");
    await page.click("#reload");
    await page.waitForFunction(() => document.querySelector("#conflict") === null || (document.querySelector("#conflict") as HTMLElement).hidden);
    assert.equal(await page.$eval('.field[data-key="wish"] textarea', (t) => t.value), "From the other tab");
    assert.match(await text(page, "#version"), /^Version 2: draft/);
    step("another tab's save first: the app's save is a 412, shown with version 2; Load the saved version shows it");

    // Again, and this time the participant keeps their changes: the app
    // reads the new ETag and saves over it, knowingly.
    const third = await server.PUT("/tools/woop/submission", {
      params: { header: { "If-Match": '"2"' } },
      body: { data: { wish: "From the other tab", outcome: ["Saved elsewhere"], plan: "Their plan" }, status: "draft" },
    });
    assert.equal(etagOf(third.response), '"3"', JSON.stringify(third.error));
    await type(page, "plan", 0, "My plan");
    await page.click("#save-draft");
    await page.waitForSelector("#conflict:not([hidden])");
    mark = sent.length;
    await page.click("#overwrite");
    await statusSays(page, /Draft saved \(version 4\)/);
    assert.deepEqual(
      since(mark).filter((s) => s.path === "/tools/woop/submission").map((s) => `${s.method} ${s.status} ${s.ifMatch ?? ""}`),
      ["GET 200 ", 'PUT 200 "3"'],
    );
    stored = await submissionOnServer();
    assert.equal(stored.submission?.version, 4);
    assert.equal(stored.submission?.data["plan"], "My plan");
    step("a second conflict, and Keep my changes: the new ETag read, the save over version 3 is version 4");

    // 7. The token expires again, under a save: the PUT is refused, one
    // refresh, the same PUT again (same If-Match, same Idempotency-Key).
    await page.evaluate((t: string) => (window as any).fasttrackApp.session.replaceAccessToken(t), expired);
    await type(page, "wish", 0, "Three bakeries by next spring");
    await type(page, "obstacle", 0, "I do every job myself");
    mark = sent.length;
    await page.click("#save-draft");
    await statusSays(page, /Draft saved \(version 5\)/);
    flow = since(mark);
    const puts = flow.filter((s) => s.method === "PUT");
    assert.deepEqual(puts.map((s) => [s.status, s.ifMatch]), [[401, '"4"'], [200, '"4"']]);
    assert.ok(puts[0]?.key && puts[0].key === puts[1]?.key, "the retry keeps its Idempotency-Key");
    assert.equal(refreshes(flow).length, 1);
    stored = await submissionOnServer();
    assert.equal(stored.submission?.version, 5);
    assert.equal(stored.submission?.data["wish"], "Three bakeries by next spring");
    assert.deepEqual(stored.submission?.data["outcome"], ["Saved elsewhere"]);
    assert.equal(await page.$$eval(".field-error:not([hidden])", (e) => e.length), 0);
    step("an expired token under a save: 401, one refresh, the same save again: version 5 on the server");

    // 8. A submit without the plan: 422 missing_fields, shown at the plan.
    await type(page, "plan", 0, "");
    mark = sent.length;
    await page.click("#submit");
    await statusSays(page, /need attention/);
    assert.deepEqual(since(mark).filter((s) => s.method === "PUT").map((s) => s.status), [422]);
    const shown = await page.$$eval(".field-error:not([hidden])", (e) =>
      e.map((p) => [p.closest(".field")?.getAttribute("data-key"), p.textContent]),
    );
    assert.deepEqual(shown, [["plan", "Needed to submit: fill this in."]]);
    stored = await submissionOnServer();
    assert.equal(stored.submission?.version, 5);
    assert.equal(stored.submission?.status, "draft");
    step("a submit without the plan: 422 missing_fields, the error next to the plan only, nothing written");

    // 9. The token about to end (the app's clock says so): a refresh first,
    // no 401 at all; the submit goes through.
    await page.evaluate(
      (t: string) => (window as any).fasttrackApp.session.replaceAccessToken(t, Math.floor(Date.now() / 1000) + 5),
      token,
    );
    await type(page, "plan", 0, "Hand over a task a day");
    mark = sent.length;
    await page.click("#submit");
    await statusSays(page, /Submitted \(version 6\)\. Unlocked: Know Thyself/);
    flow = since(mark);
    assert.deepEqual(
      flow.filter((s) => s.path !== "/progress").map((s) => `${s.method} ${s.path} ${s.status}`),
      ["POST /sessions/refresh 200", "PUT /tools/woop/submission 200"],
    );
    assert.equal(await page.$$eval(".field-error:not([hidden])", (e) => e.length), 0);
    stored = await submissionOnServer();
    assert.equal(stored.submission?.status, "submitted");
    assert.equal(stored.submission?.version, 6);
    assert.equal(stored.progress.status, "completed");
    assert.deepEqual(stored.submission?.submitted_data, {
      wish: "Three bakeries by next spring",
      outcome: ["Saved elsewhere"],
      obstacle: [{ problem: "I do every job myself" }],
      plan: "Hand over a task a day",
    });
    step("a token about to end: refreshed before the submit (no 401); submitted, version 6, WOOP completed");

    // 10. The list follows; Know Thyself opens with the WOOP's values.
    await page.waitForSelector('#tools li[data-slug="know-thyself"][data-status="unlocked"]');
    assert.equal(await page.$$eval('#tools li[data-slug="know-thyself"] .reasons', (r) => r.length), 0);
    assert.equal(await page.$eval('#tools li[data-slug="woop"]', (li) => li.getAttribute("data-status")), "completed");
    await page.click('#tools li[data-slug="know-thyself"] button');
    await page.waitForSelector('#form[data-slug="know-thyself"]');
    const next = await server.GET("/tools/{slug}", { params: { path: { slug: "know-thyself" } } });
    const fromWoop = next.data?.inputs.find((i) => i.from_tool.slug === "woop");
    assert.ok(fromWoop, "Know Thyself reads the WOOP");
    const panel = await page.$eval(
      `.inputs dt[data-field="${fromWoop.field}"]`,
      (dt) => [dt.textContent, dt.nextElementSibling?.textContent],
    );
    const submitted = (stored.submission?.submitted_data as Schemas["JsonObject"] | undefined)?.[fromWoop.from_key];
    assert.equal(panel[0], `${fromWoop.label} from WOOP`);
    assert.ok(
      JSON.stringify(panel[1]).includes(String(Array.isArray(submitted) ? submitted[0] : submitted)),
      `the panel shows what was submitted: ${JSON.stringify(panel)}`,
    );
    step(`Know Thyself unlocked; its "from earlier tools" shows the WOOP's ${fromWoop.from_key} under "${fromWoop.label}"`);

    const screenshot = process.env["FASTTRACK_APP_SCREENSHOT"]; // a PNG of this screen, to look at
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });

    // 11. A reload: the bearer token is gone, the refresh token is not.
    mark = sent.length;
    await page.reload();
    await page.waitForSelector('#tools li[data-slug="woop"][data-status="completed"]');
    assert.equal(await text(page, "#who"), "Carol Northwind");
    assert.deepEqual(
      since(mark).map((s) => `${s.method} ${s.path} ${s.status}`),
      ["POST /sessions/refresh 200", "GET /me 200", "GET /progress 200"],
    );
    step("a reload resumes the session from sessionStorage: one refresh, no launch");

    assert.deepEqual(errors, [], "no error in the page");
    console.log(`requests the app sent: ${sent.length}, refreshes: ${refreshes(sent).length}`);
  } catch (error) {
    // What the participant would have seen, and what went over the wire.
    console.error(`the app said: ${await text(page, "#status").catch(() => "(nothing)")}`);
    console.error(`it sent: ${sent.map((s) => `${s.method} ${s.path} ${s.status}`).join(", ")}`);
    throw error;
  } finally {
    await browser.close();
    appServer.close();
  }
  console.log(`${checks} passed, 0 failed`);
}

main().catch((error: unknown) => {
  console.error(error);
  console.log(`${checks} passed, 1 failed`);
  process.exit(1);
});
