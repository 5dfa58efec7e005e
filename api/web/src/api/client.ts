// The typed API client: `openapi-fetch` over the types generated from the API's own
// OpenAPI document (`schema.d.ts`, from api/tests/snapshots/openapi.json), so a call
// that does not match the API fails to type-check.
import createClient, { type Middleware } from 'openapi-fetch';
import type { components, paths } from './schema';
import { ApiError, errorFromBody } from './errors';
import { clearKey, getKey } from './keyStore';

export type Schemas = components['schemas'];

/** The API's origin and path prefix; empty: the page's own origin. */
export const API_BASE: string = (import.meta.env.VITE_API_BASE ?? '').replace(/\/+$/, '');

/** An absolute URL for an API path (which starts with `/`). */
export function apiUrl(path: string): string {
  return `${API_BASE}${path}`;
}

export function authHeaders(): Record<string, string> {
  const key = getKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** Fired when the API refuses the stored key (revoked meanwhile): back to sign-in. */
export const SIGNED_OUT_EVENT = 'attendance:key-refused';

const auth: Middleware = {
  onRequest({ request }) {
    const key = getKey();
    if (key) request.headers.set('Authorization', `Bearer ${key}`);
    return request;
  },
  onResponse({ response }) {
    if (response.status === 401 && getKey()) {
      clearKey();
      window.dispatchEvent(new Event(SIGNED_OUT_EVENT));
    }
    return response;
  },
};

export const api = createClient<paths>({ baseUrl: API_BASE || window.location.origin });
api.use(auth);

/** The data of an openapi-fetch answer, or an [`ApiError`] carrying the API's message. */
export async function unwrap<T>(
  call: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  let answer;
  try {
    answer = await call;
  } catch (e) {
    throw ApiError.network(e);
  }
  const { data, error, response } = answer;
  if (!response.ok) throw errorFromBody(response.status, error);
  return data as T;
}

/** Fetches a binary resource (a photo, a face crop, an export) with the key. */
export async function fetchBlob(path: string): Promise<{ blob: Blob; fileName: string | null }> {
  let response: Response;
  try {
    response = await fetch(apiUrl(path), { headers: authHeaders() });
  } catch (e) {
    throw ApiError.network(e);
  }
  if (!response.ok) {
    const body = await response.json().catch(() => undefined);
    throw errorFromBody(response.status, body);
  }
  const disposition = response.headers.get('Content-Disposition');
  return { blob: await response.blob(), fileName: fileNameFromDisposition(disposition) };
}

/** The file name of a `Content-Disposition: attachment; filename="…"` header. */
export function fileNameFromDisposition(header: string | null): string | null {
  if (!header) return null;
  const star = /filename\*=UTF-8''([^;]+)/i.exec(header);
  if (star) {
    try {
      return decodeURIComponent(star[1].trim());
    } catch {
      // fall through to the plain name
    }
  }
  const plain = /filename="([^"]*)"/i.exec(header) ?? /filename=([^;]+)/i.exec(header);
  return plain ? plain[1].trim() : null;
}

/** Downloads an API file (exports, reports) under the name the API suggests. */
export async function download(path: string, fallbackName: string): Promise<void> {
  const { blob, fileName } = await fetchBlob(path);
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = fileName ?? fallbackName;
  document.body.append(a);
  a.click();
  a.remove();
  // Late enough for the browser to have started the download.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
