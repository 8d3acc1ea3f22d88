// The reference app's static server: app/index.html and the compiled modules,
// nothing else. Locally, beside `make run`:
//
//   npm run build && node dist/app/serve.js     # http://localhost:5173
//
// 5173 is the origin the local server allows by default (CORS_ALLOWED_ORIGINS);
// FASTTRACK_APP_PORT picks another. test/app.ts serves it the same way.
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

// dist/app/serve.js → the package's root.
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const js = "text/javascript; charset=utf-8";
const files: Record<string, [string, string]> = {
  "/": [join(root, "app", "index.html"), "text/html; charset=utf-8"],
  "/app.js": [join(root, "dist", "app", "app.js"), js],
  "/form.js": [join(root, "dist", "app", "form.js"), js],
  "/session.js": [join(root, "dist", "app", "session.js"), js],
  "/src/index.js": [join(root, "dist", "src", "index.js"), js],
  "/openapi-fetch.js": [join(root, "node_modules", "openapi-fetch", "dist", "index.mjs"), js],
};

/**
 * The page runs its own modules and its import map, nothing else (no inline
 * script, no third party: the defence docs/sessions.md counts on, since a
 * script in the page could use its tokens), and talks to any API origin.
 */
function contentSecurityPolicy(html: string): string {
  const importMap = /<script type="importmap">([\s\S]*?)<\/script>/.exec(html)?.[1] ?? "";
  const hash = createHash("sha256").update(importMap).digest("base64");
  return `default-src 'self'; script-src 'self' 'sha256-${hash}'; style-src 'self' 'unsafe-inline'; connect-src *; frame-ancestors *`;
}

/** Serves the app on 127.0.0.1:`port` (0: any free port). */
export function serveApp(port: number): Promise<Server> {
  const server = createServer((request, response) => {
    const file = files[new URL(request.url ?? "/", "http://app").pathname];
    if (!file) {
      response.writeHead(404).end();
      return;
    }
    readFile(file[0]).then(
      (body) => {
        const headers: Record<string, string> = { "content-type": file[1], "cache-control": "no-store" };
        if (file[1].startsWith("text/html")) headers["content-security-policy"] = contentSecurityPolicy(body.toString());
        response.writeHead(200, headers).end(body);
      },
      () => response.writeHead(500).end(),
    );
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const port = Number(process.env["FASTTRACK_APP_PORT"] ?? 5173);
  await serveApp(port);
  console.log(`the app: http://localhost:${port}/ (the API: ?api=, default http://127.0.0.1:3000)`);
}
