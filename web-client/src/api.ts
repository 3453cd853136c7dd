// The bridge's REST API as the pages use it: JSON in, JSON out, the session cookie along.

/** An API call's outcome: the parsed body, or the server's error code and message. */
export type ApiResult<T> = { ok: true; value: T } | { ok: false; status: number; code: string; message: string };

export async function api<T>(method: string, path: string, body?: unknown): Promise<ApiResult<T>> {
  let res: Response;
  try {
    const init: RequestInit = { method, credentials: 'same-origin' };
    if (body !== undefined) {
      init.headers = { 'content-type': 'application/json' };
      init.body = JSON.stringify(body);
    }
    res = await fetch(new URL(path.replace(/^\//, ''), document.baseURI), init);
  } catch (err) {
    return { ok: false, status: 0, code: 'network', message: err instanceof Error ? err.message : String(err) };
  }
  const text = await res.text();
  let parsed: unknown = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (res.ok) return { ok: true, value: parsed as T };
  const err = (parsed ?? {}) as { code?: unknown; message?: unknown };
  return {
    ok: false,
    status: res.status,
    code: typeof err.code === 'string' ? err.code : `http_${res.status}`,
    message: typeof err.message === 'string' ? err.message : text.slice(0, 200) || `HTTP ${res.status}`,
  };
}

/** A person, as `/api/me` describes them. */
export interface Person {
  id: number;
  username: string;
  display_name: string;
  role: 'administrator' | 'chair' | 'technician' | 'participant';
  site_id: number | null;
}

/** Who is logged in: a person, a room terminal's site, or nobody (null). */
export async function whoAmI(): Promise<Person | null> {
  const r = await api<{ person: Person | null }>('GET', '/api/me');
  return r.ok ? r.value.person : null;
}
