/**
 * Binds the WebSocket to the app: one StreamClient per login; account frames invalidate or
 * patch the TanStack Query caches and raise toasts; quote hooks for prices.
 */
import { createContext, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { useQueryClient, type QueryClient } from "@tanstack/react-query";
import { useAuth } from "../auth/AuthContext";
import { getTokens, onTokens, refreshTokens } from "../api/tokens";
import { keys, type Order, type Trade, type Wallet } from "../api/queries";
import { useToast, type ToastKind } from "../components/Toasts";
import { formatPrice, formatQty } from "../lib/format";
import { alertToastKind, parseAlertFrame, pushAlert, type AlertItem } from "./alerts";
import { StreamClient, streamUrl, type Frame, type StreamState } from "./client";
import { applyJobFrame, applyMlJobFrame } from "./jobs";
import { orderToast } from "./orders";

export interface Quote {
  symbol: string;
  last: string;
  bid: string;
  ask: string;
  volume: number;
  ts: string;
}

const StreamContext = createContext<StreamClient | null>(null);
const AlertsContext = createContext<AlertItem[]>([]);
const ACCOUNT_CHANNELS = ["orders", "trades", "positions", "wallet"] as const;

export function StreamProvider({ children, WebSocketImpl }: { children: ReactNode; WebSocketImpl?: typeof WebSocket }) {
  const { tokens } = useAuth();
  const loggedIn = !!tokens;
  const queryClient = useQueryClient();
  const toast = useToast();
  const [client, setClient] = useState<StreamClient | null>(null);
  const [alerts, setAlerts] = useState<AlertItem[]>([]);

  useEffect(() => {
    if (!loggedIn) return;
    const stream = new StreamClient({
      url: () => {
        const t = getTokens();
        return t ? streamUrl(t.access_token) : null;
      },
      WebSocketImpl,
      onAuthError: async () => !!(await refreshTokens(getTokens()?.access_token)),
      onResync: () => resync(queryClient),
    });
    const offs = ACCOUNT_CHANNELS.map((channel) =>
      stream.subscribe(channel, (frame) => applyAccountFrame(queryClient, frame, toast)),
    );
    offs.push(
      stream.subscribe("alerts", (frame) => {
        const alert = parseAlertFrame(frame);
        if (!alert) return;
        setAlerts((list) => pushAlert(list, alert));
        const kind = alertToastKind(alert.severity);
        if (kind) toast(kind, `${alert.severity === "critical" ? "Critical alert" : "Alert"}: ${alert.title}`);
      }),
    );
    offs.push(
      stream.subscribe("jobs", (frame) => {
        const event = applyJobFrame(queryClient, frame);
        if (event?.status === "succeeded") toast("success", "Backtest finished");
        else if (event?.status === "failed") toast("error", `Backtest failed: ${event.error?.message ?? "see its page"}`);
        const ml = applyMlJobFrame(queryClient, frame);
        if (ml?.status === "succeeded") {
          const r = ml.result;
          toast("success", r?.model_name ? `Training finished: ${r.model_name} v${r.version ?? "?"}` : "Training finished");
        } else if (ml?.status === "failed") {
          toast("error", `Training failed: ${ml.error ? `${ml.error.message} [${ml.error.code}]` : "see its page"}`);
        }
      }),
    );
    offs.push(onTokens((t) => t && stream.reauthenticate(t.access_token)));
    offs.push(
      stream.onFrame((frame) => {
        if (frame.type === "error" && frame.code && !frame.code.startsWith("AUTH_")) {
          toast("error", `Stream: ${frame.message ?? frame.code}`);
        }
      }),
    );
    stream.start();
    setClient(stream);
    return () => {
      offs.forEach((off) => off());
      stream.stop();
      setClient(null);
      setAlerts([]);
    };
  }, [loggedIn, queryClient, toast, WebSocketImpl]);

  return (
    <StreamContext.Provider value={client}>
      <AlertsContext.Provider value={alerts}>{children}</AlertsContext.Provider>
    </StreamContext.Provider>
  );
}

function resync(queryClient: QueryClient): void {
  for (const key of [keys.orders, keys.trades, keys.positions, keys.wallet, keys.risk, ["ledger"], keys.backtests, keys.deployments, keys.ml, keys.alerts]) {
    void queryClient.invalidateQueries({ queryKey: key });
  }
}

type Push = (kind: ToastKind, text: string) => void;

export function applyAccountFrame(queryClient: QueryClient, frame: Frame, toast: Push): void {
  switch (frame.channel) {
    case "wallet": {
      const data = frame.data as Partial<Wallet> | undefined;
      if (data?.balances) {
        queryClient.setQueryData<Wallet>(keys.wallet, (old) => ({
          user_id: data.user_id ?? old?.user_id ?? 0,
          balances: data.balances!,
        }));
      } else {
        void queryClient.invalidateQueries({ queryKey: keys.wallet });
      }
      void queryClient.invalidateQueries({ queryKey: ["ledger"] });
      return;
    }
    case "orders": {
      const order = frame.data as Order | undefined;
      void queryClient.invalidateQueries({ queryKey: keys.orders });
      if (order?.client_order_id?.startsWith("dep-")) void queryClient.invalidateQueries({ queryKey: keys.deployments });
      // a kill switch or a halt cancels orders: the risk state may have changed with them
      void queryClient.invalidateQueries({ queryKey: keys.risk });
      const ended = orderToast(order);
      if (ended) toast(ended.kind, ended.text);
      return;
    }
    case "trades": {
      const trade = frame.data as Trade | undefined;
      void queryClient.invalidateQueries({ queryKey: keys.trades });
      // a deployment's activity (fills, P&L) follows its fills
      void queryClient.invalidateQueries({ queryKey: ["deployments", "activity"] });
      if (trade?.symbol) {
        toast(
          "success",
          `Filled: ${trade.side} ${formatQty(trade.quantity)} ${trade.symbol} @ ${formatPrice(trade.price)}`,
        );
      }
      return;
    }
    case "positions":
      void queryClient.invalidateQueries({ queryKey: keys.positions });
      return;
  }
}

export function useStream(): StreamClient | null {
  return useContext(StreamContext);
}

/** This session's live alerts from the `alerts` channel, newest first (AlertsCard merges them into the stored ones). */
export function useAlerts(): AlertItem[] {
  return useContext(AlertsContext);
}

export function useStreamState(): StreamState {
  const client = useStream();
  const [state, setState] = useState<StreamState>(client?.state ?? "idle");
  useEffect(() => {
    if (!client) return;
    setState(client.state);
    return client.onState(setState);
  }, [client]);
  return state;
}

/** Latest quote per symbol from `quotes:<symbol>` channels (snapshot on subscribe, then live). */
export function useQuotes(symbols: string[]): Record<string, Quote> {
  const client = useStream();
  const [quotes, setQuotes] = useState<Record<string, Quote>>({});
  const list = useMemo(() => [...new Set(symbols)].sort(), [symbols]);
  const joined = list.join(",");
  useEffect(() => {
    if (!client || !joined) return;
    const offs = joined.split(",").map((symbol) =>
      client.subscribe(`quotes:${symbol}`, (frame) => {
        const quote = frame.data as Quote | undefined;
        if (frame.type === "quote" && quote) setQuotes((q) => ({ ...q, [quote.symbol]: quote }));
      }),
    );
    return () => offs.forEach((off) => off());
  }, [client, joined]);
  return quotes;
}
