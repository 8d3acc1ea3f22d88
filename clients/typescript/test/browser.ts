// A real browser against the local server: headless Chromium (Debian's
// `chromium`, through puppeteer-core) opens test/page.html from an origin the
// API allows and from one it does not, and the page calls the API through the
// compiled client. What the page saw is checked here, not what a tool like
// curl would see: the bearer token crossing origins, the ETag and the replay
// marker read from JavaScript (Access-Control-Expose-Headers), a save's real
// preflight (If-Match and Idempotency-Key are not CORS-safelisted), a 412's
// JSON error, and the browser refusing the other origin's answer.
//
//   FASTTRACK_API=http://127.0.0.1:3000 FASTTRACK_TOKEN=... FASTTRACK_PAGE_PORT=5173 \
//   node dist/test/browser.js          # the API must allow http://localhost:5173
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import puppeteer from "puppeteer-core";

function env(name: string, fallback?: string): string {
  const value = process.env[name] ?? fallback;
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const api = env("FASTTRACK_API");
const token = env("FASTTRACK_TOKEN");
const pagePort = Number(env("FASTTRACK_PAGE_PORT", "5173"));
const chromium = env("CHROMIUM", "/usr/bin/chromium");

// dist/test/browser.js → the package's root.
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const files: Record<string, [string, string]> = {
  "/": [join(root, "test", "page.html"), "text/html; charset=utf-8"],
  "/client/index.js": [join(root, "dist", "src", "index.js"), "text/javascript; charset=utf-8"],
  "/openapi-fetch.js": [join(root, "node_modules", "openapi-fetch", "dist", "index.mjs"), "text/javascript; charset=utf-8"],
};

// The page's static server, on the allowed port and on any free one.
function serve(port: number): Promise<Server> {
  const server = createServer((request, response) => {
    const file = files[new URL(request.url ?? "/", "http://page").pathname];
    if (!file) {
      response.writeHead(404).end();
      return;
    }
    readFile(file[0]).then(
      (body) => response.writeHead(200, { "content-type": file[1] }).end(body),
      () => response.writeHead(500).end(),
    );
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

let checks = 0;
function step(name: string): void {
  checks += 1;
  console.log(`ok ${checks} - ${name}`);
}

async function main(): Promise<void> {
  const allowedServer = await serve(pagePort);
  const refusedServer = await serve(0);
  const allowed = `http://localhost:${pagePort}`;
  const refused = `http://127.0.0.1:${(refusedServer.address() as AddressInfo).port}`;
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    // Chromium's sandbox needs user namespaces a root shell in a container may
    // lack; a container's /dev/shm may be too small for its shared memory.
    args: [...(process.getuid?.() === 0 ? ["--no-sandbox"] : []), "--disable-dev-shm-usage"],
  });
  try {
    const page = await browser.newPage();
    // What went over the wire, as DevTools shows it: preflights included.
    const cdp = await page.createCDPSession();
    await cdp.send("Network.enable");
    const preflights: { url: string; method: string; origin?: string; requestMethod?: string; requestHeaders?: string }[] = [];
    cdp.on("Network.requestWillBeSent", (event) => {
      if (event.type === "Preflight" || event.request.method === "OPTIONS") {
        const headers = event.request.headers as Record<string, string>;
        preflights.push({
          url: event.request.url,
          method: event.request.method,
          origin: headers["Origin"] ?? headers["origin"],
          requestMethod: headers["Access-Control-Request-Method"] ?? headers["access-control-request-method"],
          requestHeaders: headers["Access-Control-Request-Headers"] ?? headers["access-control-request-headers"],
        });
      }
    });
    await page.goto(`${allowed}/`, { waitUntil: "load" });
    await page.waitForFunction("window.pageReady === true");
    const seen = (await page.evaluate(
      (base: string, bearer: string) => (window as any).runChecks(base, bearer),
      api,
      token,
    )) as any;
    console.log(`the page at ${allowed} saw: ${JSON.stringify(seen)}`);

    assert.equal(seen.origin, allowed);
    assert.equal(seen.progress.status, 200);
    assert.equal(seen.progress.total, 31);
    assert.equal(seen.progress.tools, 31);
    assert.match(seen.progress.request_id ?? "", /\S/, "X-Request-Id is exposed");
    step("GET /progress with a bearer token from another origin: 200, 31 tools, X-Request-Id readable");

    assert.equal(seen.read.status, 200);
    assert.equal(seen.read.etag, '"1"', "ETag is exposed to the page");
    assert.equal(seen.read.version, 1);
    step('GET /tools/know-thyself/submission: the page reads ETag "1"');

    assert.equal(seen.save.status, 200);
    assert.equal(seen.save.etag, '"2"');
    assert.equal(seen.save.version, 2);
    assert.equal(seen.save.replayed, false);
    const savePreflights = preflights.filter(
      (p) => p.url.endsWith("/tools/know-thyself/submission") && p.requestMethod === "PUT",
    );
    assert.ok(savePreflights.length >= 1, `a preflight before the save: ${JSON.stringify(preflights)}`);
    for (const preflight of savePreflights) {
      assert.equal(preflight.method, "OPTIONS");
      assert.equal(preflight.origin, allowed);
      const asked = (preflight.requestHeaders ?? "").split(",").map((h) => h.trim().toLowerCase());
      for (const header of ["authorization", "if-match", "idempotency-key"]) {
        assert.ok(asked.includes(header), `the preflight asks for ${header}: ${preflight.requestHeaders}`);
      }
    }
    step("PUT with If-Match and Idempotency-Key: a real preflight, then version 2");

    assert.equal(seen.replay.status, 200);
    assert.equal(seen.replay.replayed, true, "Idempotent-Replayed is exposed to the page");
    assert.equal(seen.replay.replayed_header, "true");
    assert.equal(seen.replay.etag, '"2"');
    step("the same Idempotency-Key again: the page sees Idempotent-Replayed: true and the same ETag");

    assert.equal(seen.stale.status, 412);
    assert.match(seen.stale.content_type ?? "", /^application\/json/);
    assert.equal(seen.stale.code, "precondition_failed");
    assert.equal(seen.stale.current_version, 2);
    assert.match(seen.stale.request_id ?? "", /\S/);
    assert.equal(seen.stale.request_id, seen.stale.request_id_header);
    step("a stale If-Match: the page reads the 412's JSON error, precondition_failed, current_version 2");

    // The same page from an origin the API does not list.
    const other = await browser.newPage();
    await other.goto(`${refused}/`, { waitUntil: "load" });
    await other.waitForFunction("window.pageReady === true");
    const refusal = (await other.evaluate(
      (base: string, bearer: string) => (window as any).tryRefused(base, bearer),
      api,
      token,
    )) as any;
    console.log(`the page at ${refused} saw: ${JSON.stringify(refusal)}`);
    assert.equal(refusal.origin, refused);
    assert.equal(refusal.rejected, true, "the browser refuses the answer");
    assert.equal(refusal.name, "TypeError");
    step("from an origin that is not allowed: the browser refuses, fetch rejects with a TypeError");
  } finally {
    await browser.close();
    allowedServer.close();
    refusedServer.close();
  }
  console.log(`${checks} passed, 0 failed`);
}

main().catch((error: unknown) => {
  console.error(error);
  console.log(`${checks} passed, 1 failed`);
  process.exit(1);
});
