// The reference app: plain TypeScript over the generated client, no framework.
// A participant arrives with LearnWorlds' signed launch, sees the program's
// tools and why each locked one is locked, opens a tool whose form is built
// from GET /tools/{slug}, and saves drafts and submits with If-Match; the
// session refreshes itself underneath (session.ts). README.md ("The reference
// app") says how to run it; test/app.ts drives it in Chromium.
import { etagOf, type paths, type Schemas } from "../src/index.js";
import { el, fieldFor, inputsPanel, type Field } from "./form.js";
import { Session, SessionEnded } from "./session.js";

type JsonObject = Schemas["JsonObject"];
type ApiError = Schemas["Error"]["error"];
/** Any tool's submission path (the spec has one per tool, each typed with that tool's fields). */
type SavePath = Extract<keyof paths, `/tools/${string}/submission`>;
/**
 * A save's body as the form builds it. The form is made at run time from
 * GET /tools/{slug}, so the per-tool types (which would make a submit missing
 * a field a type error) cannot apply: the server checks a submit (422).
 */
type FormSave = { data: JsonObject; status: "draft" };

const params = new URLSearchParams(location.search);
/** The API's root: `?api=`, else the local server of `make run`. */
const baseUrl = params.get("api") ?? "http://127.0.0.1:3000";
const session = new Session(baseUrl);
const api = session.api;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = $("status");
const main = $("main");

/** What the open form stands on: its tool, fields, and the ETag the next save sends as If-Match. */
let open: { slug: string; fields: Field[]; etag: string | null } | null = null;
let names = new Map<string, string>(); // slug → name, for lock reasons

function say(message: string, kind: "info" | "ok" | "error" = "info"): void {
  status.textContent = message;
  status.dataset["kind"] = kind;
}

function problem(error: ApiError | undefined, response: Response): string {
  if (!error) return `The server answered ${response.status}.`;
  return `${error.message} (${error.code}, request ${error.request_id})`;
}

// ——— signing in ———

function launchFromLink(): Schemas["Launch"] | null {
  // LearnWorlds' link carries the launch in the fragment, which no server
  // sees; it is dropped from the address at once (it is good once anyway).
  const match = /^#launch=(.+)$/.exec(location.hash);
  if (!match?.[1]) return null;
  history.replaceState(null, "", location.pathname + location.search);
  return JSON.parse(decodeURIComponent(match[1])) as Schemas["Launch"];
}

async function signIn(launch: Schemas["Launch"]): Promise<void> {
  say("Signing in…");
  const user = await session.signIn(launch);
  showSignedIn(user.full_name);
}

async function start(): Promise<void> {
  session.onEnded = (message) => {
    open = null;
    $("who").textContent = "";
    $("signin").hidden = false;
    $("signedin").hidden = true;
    main.replaceChildren();
    const again = /LearnWorlds/.test(message) ? "" : " Open the tool from LearnWorlds again.";
    say(`Your session has ended: ${message}.${again}`, "error");
  };
  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $<HTMLTextAreaElement>("launch").value;
    let launch: Schemas["Launch"];
    try {
      launch = JSON.parse(text) as Schemas["Launch"];
    } catch {
      say("That is not a launch: paste the JSON `fasttrack launch` prints.", "error");
      return;
    }
    signIn(launch).catch(failed);
  });
  $("logout").addEventListener("click", () => {
    session.logout().finally(() => location.reload());
  });
  const launch = launchFromLink();
  if (launch) return signIn(launch);
  if (session.resumable) {
    say("Resuming your session…");
    await session.resume();
    const me = await api.GET("/me");
    if (me.error) throw new Error(problem(me.error.error, me.response));
    return showSignedIn(me.data.name);
  }
  $("signin").hidden = false;
  say("Open a tool from LearnWorlds, or paste a launch below.");
}

function showSignedIn(name: string): void {
  $("signin").hidden = true;
  $("signedin").hidden = false;
  $("who").textContent = name;
  say("Signed in.", "ok");
  void showTools().catch(failed);
}

// ——— the tools, and why each locked one is locked ———

async function showTools(): Promise<void> {
  const { data, error, response } = await api.GET("/progress");
  if (error) throw new Error(problem(error.error, response));
  names = new Map(data.tools.map((tool) => [tool.slug, tool.name]));
  const { summary } = data;
  $("summary").textContent = `${summary.completed} of ${summary.total} tools completed (${summary.percentage}%)`;
  const items = data.tools.map((tool) => {
    const button = el("button", { type: "button", class: "tool" }, tool.name);
    button.disabled = tool.status === "locked";
    button.addEventListener("click", () => openTool(tool.slug).catch(failed));
    const item = el(
      "li",
      { "data-slug": tool.slug, "data-status": tool.status },
      button,
      " ",
      el("span", { class: `badge ${tool.status}` }, tool.status.replace("_", " ")),
      ...(tool.status === "in_progress" ? [` ${tool.percentage}%`] : []),
    );
    if (tool.status === "locked") item.append(lockReasons(tool.missing ?? []));
    return item;
  });
  $("tools").replaceChildren(...items);
}

function lockReasons(missing: NonNullable<Schemas["ToolProgress"]["missing"]>): HTMLElement {
  if (!missing.length) return el("p", { class: "reasons" }, "Everything it needs is there: it unlocks shortly.");
  return el(
    "ul",
    { class: "reasons" },
    ...missing.map((m) =>
      el("li", { "data-field": m.field }, `Needs “${m.label}” from ${names.get(m.from_tool) ?? m.from_tool}`),
    ),
  );
}

// ——— a tool's form ———

async function openTool(slug: string): Promise<void> {
  say("Opening…");
  // Three reads at once: the form, the saved work (and its ETag), and the values of earlier tools.
  const [tool, saved, inputs] = await Promise.all([
    api.GET("/tools/{slug}", { params: { path: { slug } } }),
    api.GET(`/tools/${slug}/submission` as SavePath),
    api.GET("/tools/{slug}/dependencies", { params: { path: { slug } } }),
  ]);
  if (tool.error) throw new Error(problem(tool.error.error, tool.response));
  if (saved.error) throw new Error(problem(saved.error.error, saved.response));
  if (inputs.error) throw new Error(problem(inputs.error.error, inputs.response));
  const submission = saved.data.submission;
  const data: JsonObject = submission?.data ?? {};
  const fields = tool.data.outputs.map((output) => fieldFor(output, data[output.key]));
  open = { slug, fields, etag: etagOf(saved.response) };

  const draftButton = el("button", { type: "button", id: "save-draft" }, "Save draft");
  const submitButton = el("button", { type: "button", id: "submit", class: "primary" }, "Submit");
  draftButton.addEventListener("click", () => save("draft").catch(failed));
  submitButton.addEventListener("click", () => save("submitted").catch(failed));
  main.replaceChildren(
    el(
      "article",
      { id: "form", "data-slug": slug },
      el("h2", {}, tool.data.name),
      el("p", { class: "meta" }, `Sprint ${tool.data.sprint} · ${tool.data.module.name}`),
      el("p", { class: "description" }, tool.data.description),
      inputsPanel(tool.data.inputs, inputs.data.dependencies),
      el("div", { id: "conflict", role: "alert", hidden: "" }),
      ...fields.map((field) => field.element),
      el("p", { class: "actions" }, draftButton, " ", submitButton),
      el("p", { id: "version" }, versionLine(submission)),
    ),
  );
  say(`${tool.data.name} is open.`);
}

function versionLine(submission: Schemas["Submission"] | null): string {
  if (!submission) return "Not saved yet.";
  const submitted = submission.submitted_at ? `, last submitted ${new Date(submission.submitted_at).toLocaleString()}` : "";
  return `Version ${submission.version}: ${submission.status}${submitted}.`;
}

function collect(fields: Field[]): JsonObject {
  const data: JsonObject = {};
  for (const field of fields) {
    const value = field.editor.read();
    if (value !== undefined) data[field.output.key] = value;
  }
  return data;
}

async function save(status: "draft" | "submitted", ifMatch?: string): Promise<void> {
  if (!open) return;
  const form = open;
  for (const field of form.fields) field.showError(null);
  $("conflict").hidden = true;
  say(status === "draft" ? "Saving…" : "Submitting…");
  const key = crypto.randomUUID(); // one per click, reused only by its retry
  const put = () =>
    api.PUT(`/tools/${form.slug}/submission` as SavePath, {
      params: { header: { "If-Match": ifMatch ?? form.etag ?? undefined, "Idempotency-Key": key } },
      body: { data: collect(form.fields), status } as FormSave,
    });
  // A network failure: the same request again, which the key makes safe.
  const { data, error, response } = await put().catch((e: unknown) => {
    if (e instanceof SessionEnded) throw e;
    return put();
  });
  if (data) {
    form.etag = etagOf(response);
    $("version").textContent = versionLine(data.submission);
    const unlocked = data.unlocked_tools.map((slug) => names.get(slug) ?? slug);
    say(
      (status === "draft" ? `Draft saved (version ${data.submission.version}).` : `Submitted (version ${data.submission.version}).`) +
        (unlocked.length ? ` Unlocked: ${unlocked.join(", ")}.` : ""),
      "ok",
    );
    await showTools();
    return;
  }
  const failure = error?.error;
  if (response.status === 412 || response.status === 428) return conflict(failure, status);
  if (response.status === 422 && failure && markFields(form.fields, failure)) {
    say("Some fields need attention before this can be submitted: see below.", "error");
    return;
  }
  if (response.status === 429) {
    say(`Saving too fast: try again in ${response.headers.get("retry-after") ?? "a few"} seconds.`, "error");
    return;
  }
  say(`Not saved: ${problem(failure, response)}`, "error");
}

/** 422 `missing_fields` and `invalid_shape`, next to their fields; whether any was placed. */
function markFields(fields: Field[], failure: ApiError): boolean {
  const details = (failure.details ?? {}) as {
    missing?: string[];
    invalid?: { key: string; expected: string }[];
  };
  const problems = new Map<string, string>();
  if (failure.code === "missing_fields") {
    for (const key of details.missing ?? []) problems.set(key, "Needed to submit: fill this in.");
  } else if (failure.code === "invalid_shape") {
    for (const { key, expected } of details.invalid ?? []) problems.set(key, `This must be ${expected}.`);
  }
  let placed = false;
  for (const field of fields) {
    const message = problems.get(field.output.key);
    if (message) {
      field.showError(message);
      placed = true;
    }
  }
  fields.find((field) => problems.has(field.output.key))?.element.scrollIntoView({ block: "center" });
  return placed;
}

/** 412 (or 428): saved elsewhere since this form was read. Nothing of this form was written. */
function conflict(failure: ApiError | undefined, status: "draft" | "submitted"): void {
  const current = (failure?.details as { current_version?: number } | null)?.current_version;
  const reload = el("button", { type: "button", id: "reload" }, "Load the saved version");
  const overwrite = el("button", { type: "button", id: "overwrite" }, "Keep my changes");
  reload.addEventListener("click", () => {
    if (open) openTool(open.slug).catch(failed);
  });
  overwrite.addEventListener("click", () => {
    // Deliberately over the newer version: its ETag, read now, becomes the If-Match.
    if (!open) return;
    api
      .GET(`/tools/${open.slug}/submission` as SavePath)
      .then(({ response }) => save(status, etagOf(response) ?? undefined))
      .catch(failed);
  });
  const box = $("conflict");
  box.replaceChildren(
    el(
      "p",
      {},
      `This tool was saved elsewhere (another tab or device) since you opened it` +
        (current ? `: it is now at version ${current}` : "") +
        ". Your changes are not saved yet.",
    ),
    reload,
    " ",
    overwrite,
  );
  box.hidden = false;
  say("Not saved: a newer version exists.", "error");
}

function failed(error: unknown): void {
  if (error instanceof SessionEnded) return; // onEnded has said so
  say(error instanceof Error ? error.message : String(error), "error");
}

// For the browser test and for trying a refresh by hand, from the console:
// fasttrackApp.session.replaceAccessToken(expiredToken).
(window as unknown as { fasttrackApp: unknown }).fasttrackApp = { session };
start().catch(failed);
