/** Open positions with P&L marked to live quotes, and the square-off action. */
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Link } from "react-router";
import { api, unwrap } from "../api/client";
import { errorMessage } from "../api/errors";
import { keys, type Position } from "../api/queries";
import { useAuth } from "../auth/AuthContext";
import { formatINR, formatPrice, formatQty, signClass } from "../lib/format";
import { newClientOrderId } from "../lib/orderRules";
import { markToLive } from "../lib/summary";
import { useQuotes, type Quote } from "../ws/StreamProvider";
import { useToast } from "./Toasts";

/** Unrealised P&L at the live quote, exactly: (last - average) x quantity (negative for shorts). */
export function liveUnrealised(position: Position, quote: Quote | undefined): string | null {
  return markToLive(position, quote?.last).unrealised_pnl;
}

export function PositionsTable({ positions, compact = false }: { positions: Position[]; compact?: boolean }) {
  const { canTrade } = useAuth();
  const quotes = useQuotes(positions.filter((p) => p.quantity !== 0).map((p) => p.symbol));
  const queryClient = useQueryClient();
  const toast = useToast();
  const squareOff = useMutation({
    mutationFn: (p: Position) =>
      unwrap(
        api.POST("/api/v1/orders", {
          body: {
            client_order_id: newClientOrderId(),
            symbol: p.symbol,
            side: p.quantity > 0 ? "SELL" : "BUY",
            quantity: Math.abs(p.quantity),
            order_type: "MARKET",
            product: p.product as "CNC" | "MIS",
            time_in_force: "DAY",
          },
        }),
      ),
    onSuccess: (order) => {
      toast("success", `Square-off order ${order.status.toLowerCase()}: ${order.side} ${order.quantity} ${order.symbol}`);
      void queryClient.invalidateQueries({ queryKey: keys.orders });
    },
    onError: (error) => toast("error", `Square-off refused: ${errorMessage(error)}`),
  });

  return (
    <div className="table-wrap">
      <table>
        <thead>
          <tr>
            <th>Symbol</th>
            <th>Product</th>
            <th className="num">Qty</th>
            <th className="num">Avg</th>
            <th className="num">LTP</th>
            <th className="num">Unrealised</th>
            {!compact && <th className="num">Realised (net)</th>}
            <th className="num">Day P&amp;L</th>
            {!compact && <th className="num">Margin</th>}
            {canTrade && <th />}
          </tr>
        </thead>
        <tbody>
          {positions.map((p) => {
            const quote = quotes[p.symbol];
            // the same live re-marking as the summary strip (lib/summary.ts markToLive)
            const live = markToLive(p, quote?.last);
            const unrealised = live.unrealised_pnl;
            return (
              <tr key={`${p.symbol}-${p.product}`}>
                <td>
                  <Link to={`/charts/${encodeURIComponent(p.symbol)}`}>{p.symbol}</Link>
                </td>
                <td>{p.product}</td>
                <td className={`num ${p.quantity < 0 ? "neg" : ""}`}>{formatQty(p.quantity)}</td>
                <td className="num">{formatPrice(p.average_price)}</td>
                <td className="num">{formatPrice(quote?.last ?? p.last_price)}</td>
                <td className={`num ${signClass(unrealised)}`}>{formatINR(unrealised)}</td>
                {!compact && <td className={`num ${signClass(p.net_realised_pnl)}`}>{formatINR(p.net_realised_pnl)}</td>}
                <td className={`num ${signClass(live.day_pnl)}`}>{formatINR(live.day_pnl)}</td>
                {!compact && <td className="num">{formatINR(p.margin)}</td>}
                {canTrade && (
                  <td>
                    {p.quantity !== 0 && (
                      <button
                        type="button"
                        className="small"
                        disabled={squareOff.isPending}
                        onClick={() => {
                          const side = p.quantity > 0 ? "SELL" : "BUY";
                          if (window.confirm(`Square off ${p.symbol} ${p.product}: ${side} ${Math.abs(p.quantity)} at market?`)) {
                            squareOff.mutate(p);
                          }
                        }}
                      >
                        Square off
                      </button>
                    )}
                  </td>
                )}
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
