// The API key lives in this tab's sessionStorage only: gone when the tab closes, never in a
// URL (so never in history, a Referer or a server log) and never in a cookie or localStorage.

const STORAGE_KEY = "events-console.api-key";

export function storedKey(): string | null {
  try {
    return sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return null; // storage disabled: the key stays in memory only
  }
}

export function storeKey(key: string): void {
  try {
    sessionStorage.setItem(STORAGE_KEY, key);
  } catch {
    // storage disabled: signed in for this page's lifetime only
  }
}

export function forgetKey(): void {
  try {
    sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // nothing stored
  }
}
