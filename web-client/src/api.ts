// The bridge's REST API as the pages use it, with the session cookie. Every call resolves,
// never throws: a value, or an `ApiFailure` (status 0 when the server could not be reached) for
// the page to show.

/** A refused or failed request, as the page shows it. */
export interface ApiFailure {
  /** HTTP status; 0 when the server could not be reached. */
  status: number;
  code: string;
  message: string;
}

/** The server's `{code, message}` error, or what can be said of a body that is not one. */
export function parseApiFailure(status: number, text: string): ApiFailure {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === 'object' && value !== null) {
      const { code, message } = value as Record<string, unknown>;
      if (typeof code === 'string' && typeof message === 'string') return { status, code, message };
    }
  } catch {
    // Not JSON: a proxy's page, or a body-size refusal in plain text.
  }
  return { status, code: status === 413 ? 'too_large' : `http_${status}`, message: text.trim().slice(0, 300) };
}

export type ApiResult<T> = { ok: true; value: T } | { ok: false; error: ApiFailure };

/** A body: JSON (any value), or a file's bytes as they are (a CSV file) with their content type. */
export type Body = { json: unknown } | { blob: Blob; type: string };

/** Called when a request finds the session gone (401), so the page can ask to log in again. */
let onUnauthorized: () => void = () => {};

export function whenUnauthorized(handler: () => void): void {
  onUnauthorized = handler;
}

export async function call<T>(method: string, path: string, body?: Body): Promise<ApiResult<T>> {
  const init: RequestInit = { method, credentials: 'same-origin', headers: { accept: 'application/json' } };
  if (body !== undefined) {
    const json = 'json' in body;
    init.headers = { accept: 'application/json', 'content-type': json ? 'application/json' : body.type };
    init.body = json ? JSON.stringify(body.json) : body.blob;
  }
  let response: Response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    return { ok: false, error: { status: 0, code: 'network', message: e instanceof Error ? e.message : String(e) } };
  }
  const text = await response.text().catch(() => '');
  if (!response.ok) {
    const error = parseApiFailure(response.status, text);
    if (response.status === 401 && path !== '/api/login') onUnauthorized();
    return { ok: false, error };
  }
  if (text === '') return { ok: true, value: undefined as T };
  try {
    const value: unknown = JSON.parse(text);
    return { ok: true, value: value as T };
  } catch {
    return { ok: false, error: { status: response.status, code: 'bad_response', message: text.slice(0, 200) } };
  }
}

export const get = <T>(path: string): Promise<ApiResult<T>> => call<T>('GET', path);
export const post = <T>(path: string, json: unknown): Promise<ApiResult<T>> => call<T>('POST', path, { json });
export const put = <T>(path: string, json: unknown): Promise<ApiResult<T>> => call<T>('PUT', path, { json });

/** A person, as `/api/me` describes them. */
export interface Person {
  id: number;
  username: string;
  display_name: string;
  role: 'administrator' | 'chair' | 'technician' | 'participant';
  site_id: number | null;
}

/** Who is logged in: a person, or nobody (null; also for a room terminal's session). */
export async function whoAmI(): Promise<Person | null> {
  const r = await get<{ person: Person | null }>('/api/me');
  return r.ok ? r.value.person : null;
}
