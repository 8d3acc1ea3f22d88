// The session, as docs/sessions.md describes it: the bearer token in memory,
// the refresh token in sessionStorage (it survives a reload and dies with the
// tab), and a refresh through POST /sessions/refresh
//   - before a call, when the bearer token ends within a minute;
//   - after a call answered 401 `invalid_token` (expired while the laptop
//     slept, or signed by a key rotated out): the call is sent again, once,
//     with the new token.
// One refresh at a time: calls that need one while it runs wait for it, since
// a refresh token sent twice ends the session (reuse detection).
import { createFastTrackClient, type FastTrackClient, type Schemas } from "../src/index.js";

const REFRESH_TOKEN_KEY = "fasttrack.refresh_token";
/** Refresh this long before the bearer token's `expires_at`. */
const EARLY_SECONDS = 60;

/** The session is over (a refresh answered 401): the participant opens the tool from LearnWorlds again. */
export class SessionEnded extends Error {
  override name = "SessionEnded";
}

type Tokens = Pick<Schemas["RefreshedSession"], "token" | "expires_at" | "refresh_token">;

export class Session {
  /** Calls with the bearer token, refreshed as above. */
  readonly api: FastTrackClient;
  /** Calls without a token, for the session routes themselves. */
  private readonly open: FastTrackClient;
  private token: string | null = null;
  private expiresAt = 0;
  private refreshing: Promise<void> | null = null;
  /** Told once when the session ends. */
  onEnded: (message: string) => void = () => {};

  constructor(baseUrl: string, private readonly storage: Storage = sessionStorage) {
    this.open = createFastTrackClient({ baseUrl });
    this.api = createFastTrackClient({ baseUrl, fetch: (request) => this.send(request) });
  }

  /** Whether a refresh token from earlier in this tab is kept (a reload). */
  get resumable(): boolean {
    return this.storage.getItem(REFRESH_TOKEN_KEY) !== null;
  }

  /** Trades LearnWorlds' signed launch for a session. */
  async signIn(launch: Schemas["Launch"]): Promise<Schemas["User"]> {
    const { data, error } = await this.open.POST("/sessions", { body: launch });
    if (error) throw new Error(`${error.error.code}: ${error.error.message}`);
    this.keep(data);
    return data.user;
  }

  /** After a reload: a bearer token from the kept refresh token. */
  async resume(): Promise<void> {
    await this.refresh();
  }

  async logout(): Promise<void> {
    const refreshToken = this.storage.getItem(REFRESH_TOKEN_KEY);
    this.forget();
    if (refreshToken) await this.open.POST("/sessions/logout", { body: { refresh_token: refreshToken } });
  }

  /**
   * For the browser test (test/app.ts) and for trying the refresh by hand:
   * the bearer token the next calls send, and when the app believes it ends.
   */
  replaceAccessToken(token: string, expiresAt = this.expiresAt): void {
    this.token = token;
    this.expiresAt = expiresAt;
  }

  private keep(tokens: Tokens): void {
    this.token = tokens.token;
    this.expiresAt = tokens.expires_at;
    this.storage.setItem(REFRESH_TOKEN_KEY, tokens.refresh_token);
  }

  private forget(): void {
    this.token = null;
    this.expiresAt = 0;
    this.storage.removeItem(REFRESH_TOKEN_KEY);
  }

  /** The one refresh in flight, or a new one. */
  private refresh(): Promise<void> {
    this.refreshing ??= this.exchange().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async exchange(): Promise<void> {
    const refreshToken = this.storage.getItem(REFRESH_TOKEN_KEY);
    if (!refreshToken) throw this.end("there is no session in this tab");
    const { data, error, response } = await this.open.POST("/sessions/refresh", {
      body: { refresh_token: refreshToken },
    });
    if (data) return this.keep(data);
    // 401 invalid_refresh_token: used before, logged out, past its lifetime,
    // or the person's role or organization changed. Nothing brings it back.
    if (response.status === 401) throw this.end(error?.error.message ?? "the session has ended");
    throw new Error(`refreshing the session: ${response.status} ${error?.error.code ?? ""}`);
  }

  private end(message: string): SessionEnded {
    this.forget();
    this.onEnded(message);
    return new SessionEnded(message);
  }

  /** Every call of `api` goes through here (openapi-fetch's `fetch` option). */
  private async send(request: Request): Promise<Response> {
    if (this.token === null || this.expiresAt - EARLY_SECONDS <= Date.now() / 1000) await this.refresh();
    const again = request.clone(); // the body, for a second send
    const sent = this.token;
    const response = await fetch(withToken(request, sent));
    if (response.status !== 401 || (await codeOf(response)) !== "invalid_token") return response;
    // Another call may have refreshed while this one was out: use its token.
    if (this.token === sent) await this.refresh();
    return fetch(withToken(again, this.token));
  }
}

function withToken(request: Request, token: string | null): Request {
  if (token) request.headers.set("Authorization", `Bearer ${token}`);
  return request;
}

async function codeOf(response: Response): Promise<string | undefined> {
  try {
    const body = (await response.clone().json()) as Schemas["Error"];
    return body.error.code;
  } catch {
    return undefined;
  }
}
