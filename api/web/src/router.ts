// Hash routing (`/#/students?class=…`): the API owns every real path, so the app lives
// behind the `#`. Routes are a closed list, parsed and written in one place.
import { useEffect, useState } from 'react';

export type Route =
  | { name: 'attendance' }
  | { name: 'sessions'; query: URLSearchParams }
  | { name: 'session'; id: string }
  | { name: 'students'; query: URLSearchParams }
  | { name: 'student-new' }
  | { name: 'student'; id: string }
  | { name: 'batch'; id?: string }
  | { name: 'classes' }
  | { name: 'class'; id: string }
  | { name: 'analytics'; query: URLSearchParams }
  | { name: 'settings' }
  | { name: 'not-found'; path: string };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The route of a location hash such as `#/sessions/…?x=y` (or `''`). */
export function parseHash(hash: string): Route {
  const raw = hash.replace(/^#/, '') || '/';
  const [pathPart, queryPart = ''] = raw.split('?', 2);
  const query = new URLSearchParams(queryPart);
  const parts = pathPart.split('/').filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  const [first, second, third] = parts;
  const id = (s: string | undefined) => (s && UUID.test(s) ? s : undefined);
  if (parts.length === 0) return { name: 'attendance' };
  switch (first) {
    case 'sessions':
      if (parts.length === 1) return { name: 'sessions', query };
      if (parts.length === 2 && id(second)) return { name: 'session', id: second };
      break;
    case 'students':
      if (parts.length === 1) return { name: 'students', query };
      if (parts.length === 2 && second === 'new') return { name: 'student-new' };
      if (second === 'batches' && parts.length === 2) return { name: 'batch' };
      if (second === 'batches' && parts.length === 3 && id(third)) return { name: 'batch', id: third };
      if (parts.length === 2 && id(second)) return { name: 'student', id: second };
      break;
    case 'classes':
      if (parts.length === 1) return { name: 'classes' };
      if (parts.length === 2 && id(second)) return { name: 'class', id: second };
      break;
    case 'analytics':
      if (parts.length === 1) return { name: 'analytics', query };
      break;
    case 'settings':
      if (parts.length === 1) return { name: 'settings' };
      break;
  }
  return { name: 'not-found', path: pathPart };
}

/** The hash (with `#`) for a path and optional query; empty query values are left out. */
export function href(path: string, query: Record<string, string | undefined | null> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v) q.set(k, v);
  const s = q.toString();
  return `#${path}${s ? `?${s}` : ''}`;
}

export function navigate(path: string, query: Record<string, string | undefined | null> = {}): void {
  window.location.hash = href(path, query);
}

/** The current route, updated on every hash change. */
export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(window.location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseHash(window.location.hash));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}
