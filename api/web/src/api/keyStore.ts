// The API key lives in session storage: gone when the tab closes, never in a cookie
// (so no CSRF), and each tab may sign in with another key.
const STORAGE_KEY = 'attendance.apiKey';

export function getKey(): string | null {
  try {
    return sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

export function setKey(key: string): void {
  sessionStorage.setItem(STORAGE_KEY, key);
}

export function clearKey(): void {
  sessionStorage.removeItem(STORAGE_KEY);
}
