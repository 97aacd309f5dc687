/**
 * Who is logged in: the in-memory access token, the current user (GET /auth/me) and
 * login/logout. The refresh token is an HttpOnly cookie the page never sees (see api/tokens.ts):
 * on load, a session cookie is exchanged for an access token before the app renders, so a
 * reload keeps the user logged in.
 */
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { api, unwrap } from "../api/client";
import { useMe, type User } from "../api/queries";
import {
  announce,
  clearLegacyStorage,
  followOtherTabs,
  forgetSessionCookie,
  fromResponse,
  getTokens,
  hasSessionCookie,
  onTokens,
  refreshTokens,
  setTokens,
  type AccessToken,
} from "../api/tokens";
import { Loading } from "../components/States";

interface AuthValue {
  tokens: AccessToken | null;
  user: User | undefined;
  userError: unknown;
  loadingUser: boolean;
  /** trader and admin may trade; a viewer sees the read-only UI */
  canTrade: boolean;
  isAdmin: boolean;
  login: (username: string, password: string) => Promise<void>;
  logout: () => Promise<void>;
}

const AuthContext = createContext<AuthValue | null>(null);

export function AuthProvider({ children }: { children: ReactNode }) {
  const [tokens, setState] = useState<AccessToken | null>(getTokens);
  // A reload: the access token is gone with the page, the cookie session is not.
  const [restoring, setRestoring] = useState(() => !getTokens() && hasSessionCookie());
  const queryClient = useQueryClient();
  const me = useMe(!!tokens);

  useEffect(() => {
    clearLegacyStorage();
    followOtherTabs();
    return onTokens(setState);
  }, []);

  useEffect(() => {
    if (!restoring) return;
    let live = true;
    void refreshTokens().finally(() => live && setRestoring(false));
    return () => {
      live = false;
    };
  }, [restoring]);

  // Refresh a minute before the access token expires, so REST and the WebSocket stay valid.
  useEffect(() => {
    if (!tokens) return;
    const wait = Math.max(5_000, tokens.expires_at - Date.now() - 60_000);
    const timer = setTimeout(() => void refreshTokens(tokens.access_token), wait);
    return () => clearTimeout(timer);
  }, [tokens]);

  // Logged out (here, in another tab, or the session was revoked): forget cached data.
  useEffect(() => {
    if (!tokens) queryClient.clear();
  }, [tokens, queryClient]);

  const login = useCallback(async (username: string, password: string) => {
    // The refresh token stays in the HttpOnly cookie: the body's is null.
    const body = { username, password, refresh_token_in_body: false };
    const pair = await unwrap(api.POST("/api/v1/auth/login", { body }));
    queryClient.clear();
    setTokens(fromResponse(pair));
    announce("login");
  }, [queryClient]);

  const logout = useCallback(async () => {
    try {
      // Revokes the session and deletes the cookies.
      await api.POST("/api/v1/auth/logout");
    } finally {
      forgetSessionCookie();
      setTokens(null);
      announce("logout");
    }
  }, []);

  const value = useMemo<AuthValue>(() => {
    const role = me.data?.role;
    return {
      tokens,
      user: me.data,
      userError: me.error,
      loadingUser: me.isPending && !!tokens,
      canTrade: role === "trader" || role === "admin",
      isAdmin: role === "admin",
      login,
      logout,
    };
  }, [tokens, me.data, me.error, me.isPending, login, logout]);

  if (restoring) return <Loading what="Restoring your session" />;
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthValue {
  const value = useContext(AuthContext);
  if (!value) throw new Error("useAuth outside AuthProvider");
  return value;
}
