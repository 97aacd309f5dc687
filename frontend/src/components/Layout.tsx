/** The app shell: navigation, stream status, theme toggle, user menu. */
import { useState } from "react";
import { NavLink, Outlet } from "react-router";
import { useAuth } from "../auth/AuthContext";
import { useStreamState } from "../ws/StreamProvider";
import { applyTheme, initialTheme, type Theme } from "../lib/theme";

export function Layout() {
  const { user, isAdmin, logout } = useAuth();
  const [theme, setTheme] = useState<Theme>(() => {
    const t = initialTheme();
    applyTheme(t);
    return t;
  });
  const toggle = () => {
    const next = theme === "dark" ? "light" : "dark";
    applyTheme(next, true);
    setTheme(next);
  };
  return (
    <div className="shell">
      <header className="topbar">
        <span className="brand">QuantDesk</span>
        <nav aria-label="Main">
          <NavLink to="/" end>Dashboard</NavLink>
          <NavLink to="/orders">Orders</NavLink>
          <NavLink to="/positions">Positions</NavLink>
          <NavLink to="/wallet">Wallet</NavLink>
          <NavLink to="/charts">Charts</NavLink>
          <NavLink to="/strategies">Strategies</NavLink>
          <NavLink to="/backtests">Backtests</NavLink>
          <NavLink to="/models">Models</NavLink>
          <NavLink to="/deployments">Deployments</NavLink>
          {isAdmin && <NavLink to="/admin">Admin</NavLink>}
        </nav>
        <span className="spacer" />
        <StreamBadge />
        <button type="button" className="ghost" onClick={toggle} aria-label={`Switch to ${theme === "dark" ? "light" : "dark"} theme`}>
          {theme === "dark" ? "☀" : "☾"}
        </button>
        {user && (
          <span className="user" title={`role: ${user.role}`}>
            {user.username} <span className="badge">{user.role}</span>
          </span>
        )}
        <button type="button" className="ghost" onClick={() => void logout()}>
          Log out
        </button>
      </header>
      <main className="content">
        <Outlet />
      </main>
    </div>
  );
}

/** Live / reconnecting: when the stream is down, the numbers on screen may be stale. */
export function StreamBadge() {
  const state = useStreamState();
  if (state === "live") return <span className="stream live" title="Live stream connected">● Live</span>;
  return (
    <span className="stream stale" role="status" title="The live stream is down: data on screen may be stale. Reconnecting…">
      ● {state === "connecting" ? "Connecting…" : "Stale data — reconnecting"}
    </span>
  );
}
