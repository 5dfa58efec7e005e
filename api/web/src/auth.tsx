// Who is signed in: the key (session storage) and what the API says about it
// (`GET /keys/me`: role and department), which decides the screens shown.
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { api, SIGNED_OUT_EVENT, unwrap, type Schemas } from './api/client';
import { clearKey, getKey, setKey } from './api/keyStore';

export type Me = Schemas['KeyOut'];
export type Role = Schemas['KeyRole'];

interface AuthState {
  me: Me | null;
  /** True while a stored key is being checked at start-up. */
  checking: boolean;
  signIn: (key: string) => Promise<void>;
  signOut: () => void;
}

const AuthContext = createContext<AuthState | null>(null);

export async function fetchMe(): Promise<Me> {
  return unwrap(api.GET('/keys/me'));
}

export function AuthProvider({ children }: { children: ReactNode }) {
  const [me, setMe] = useState<Me | null>(null);
  const [checking, setChecking] = useState(() => getKey() !== null);

  // A key revoked while in use: every screen would fail, so sign out.
  useEffect(() => {
    const onRefused = () => setMe(null);
    window.addEventListener(SIGNED_OUT_EVENT, onRefused);
    return () => window.removeEventListener(SIGNED_OUT_EVENT, onRefused);
  }, []);

  useEffect(() => {
    if (getKey() === null) return;
    fetchMe()
      .then(setMe)
      .catch(() => clearKey())
      .finally(() => setChecking(false));
  }, []);

  const signIn = useCallback(async (key: string) => {
    setKey(key.trim());
    try {
      setMe(await fetchMe());
    } catch (e) {
      clearKey();
      throw e;
    }
  }, []);

  const signOut = useCallback(() => {
    clearKey();
    setMe(null);
    window.location.hash = '#/';
  }, []);

  const value = useMemo(() => ({ me, checking, signIn, signOut }), [me, checking, signIn, signOut]);
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthState {
  const ctx = useContext(AuthContext);
  if (!ctx) throw new Error('useAuth outside AuthProvider');
  return ctx;
}

/** The signed-in key (screens are only rendered once signed in). */
export function useMe(): Me {
  const { me } = useAuth();
  if (!me) throw new Error('not signed in');
  return me;
}

/** Admins and department admins manage classes, keys, webhooks and deletions. */
export function isManager(role: Role): boolean {
  return role === 'admin' || role === 'department_admin';
}

export function roleLabel(role: Role): string {
  switch (role) {
    case 'admin':
      return 'Admin';
    case 'department_admin':
      return 'Department admin';
    case 'teacher':
      return 'Teacher';
  }
}
