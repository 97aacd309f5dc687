/** Who is logged in: the token pair, the current user (GET /auth/me) and login/logout. */
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { api, unwrap } from "../api/client";
import { useMe, type User } from "../api/queries";
import { fromResponse, getTokens, onTokens, refreshTokens, setTokens, type TokenPair } from "../api/tokens";

interface AuthValue {
  tokens: TokenPair | null;
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
  const [tokens, setState] = useState<TokenPair | null>(getTokens);
  const queryClient = useQueryClient();
  const me = useMe(!!tokens);

  useEffect(() => onTokens(setState), []);

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
    const pair = await unwrap(api.POST("/api/v1/auth/login", { body: { username, password } }));
    queryClient.clear();
    setTokens(fromResponse(pair));
  }, [queryClient]);

  const logout = useCallback(async () => {
    try {
      await api.POST("/api/v1/auth/logout");
    } finally {
      setTokens(null);
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

  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthValue {
  const value = useContext(AuthContext);
  if (!value) throw new Error("useAuth outside AuthProvider");
  return value;
}
