/** Orders with modify (PATCH) and cancel (DELETE) for live ones, when the user may trade. */
import { useState, type FormEvent } from "react";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Link } from "react-router";
import { api, unwrap } from "../api/client";
import { errorMessage } from "../api/errors";
import { keys, LIVE_STATUSES, type Order } from "../api/queries";
import { useAuth } from "../auth/AuthContext";
import { formatPrice, formatQty, formatTime } from "../lib/format";
import { takesLimit, takesStop } from "../lib/orderRules";
import { useToast } from "./Toasts";

export function OrdersTable({ orders }: { orders: Order[] }) {
  const { canTrade } = useAuth();
  const [editing, setEditing] = useState<string | null>(null);
  const queryClient = useQueryClient();
  const toast = useToast();
  const done = () => {
    void queryClient.invalidateQueries({ queryKey: keys.orders });
    void queryClient.invalidateQueries({ queryKey: keys.wallet });
  };
  const cancel = useMutation({
    mutationFn: (id: string) => unwrap(api.DELETE("/api/v1/orders/{order_id}", { params: { path: { order_id: id } } })),
    onSuccess: (o) => {
      toast("info", `Cancelled ${o.side} ${o.quantity} ${o.symbol}`);
      done();
    },
    onError: (error) => toast("error", `Cancel refused: ${errorMessage(error)}`),
  });

  return (
    <div className="table-wrap">
      <table>
        <thead>
          <tr>
            <th>Time</th>
            <th>Symbol</th>
            <th>Side</th>
            <th>Type</th>
            <th>Product</th>
            <th className="num">Qty (filled)</th>
            <th className="num">Limit</th>
            <th className="num">Trigger</th>
            <th className="num">Avg</th>
            <th>Status</th>
            {canTrade && <th />}
          </tr>
        </thead>
        <tbody>
          {orders.map((o) => {
            const live = LIVE_STATUSES.includes(o.status);
            return (
              <tr key={o.id}>
                <td className="nowrap">{formatTime(o.created_at)}</td>
                <td>
                  {o.symbol} <DeploymentTag clientOrderId={o.client_order_id} />
                </td>
                <td className={o.side === "BUY" ? "pos" : "neg"}>{o.side}</td>
                <td>{o.order_type}</td>
                <td>{o.product}</td>
                <td className="num">
                  {formatQty(o.quantity)} ({formatQty(o.filled_quantity)})
                </td>
                <td className="num">{formatPrice(o.limit_price)}</td>
                <td className="num">{formatPrice(o.stop_price)}</td>
                <td className="num">{formatPrice(o.average_price)}</td>
                <td>
                  <span className={`status status-${o.status.toLowerCase()}`} title={o.reason ?? undefined}>
                    {o.status}
                  </span>
                </td>
                {canTrade && (
                  <td className="nowrap">
                    {live && editing !== o.id && (
                      <>
                        <button type="button" className="small" onClick={() => setEditing(o.id)}>
                          Modify
                        </button>{" "}
                        <button
                          type="button"
                          className="small danger"
                          disabled={cancel.isPending}
                          onClick={() => cancel.mutate(o.id)}
                        >
                          Cancel
                        </button>
                      </>
                    )}
                    {live && editing === o.id && (
                      <ModifyForm
                        order={o}
                        onDone={() => {
                          setEditing(null);
                          done();
                        }}
                      />
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

/** Orders a deployment sent carry `dep-<first 16 of its id>-<n>`: a link to the deployment. */
export function DeploymentTag({ clientOrderId }: { clientOrderId: string | null | undefined }) {
  const m = /^dep-([0-9a-f]{16})-/.exec(clientOrderId ?? "");
  if (!m) return null;
  return (
    <Link className="badge tag" to={`/deployments/${m[1]}`} title={`Sent by deployment ${m[1]}… (${clientOrderId})`}>
      strategy
    </Link>
  );
}

function ModifyForm({ order, onDone }: { order: Order; onDone: () => void }) {
  const [quantity, setQuantity] = useState(String(order.quantity));
  const [limit, setLimit] = useState(order.limit_price ?? "");
  const [stop, setStop] = useState(order.stop_price ?? "");
  const toast = useToast();
  const modify = useMutation({
    mutationFn: () => {
      const body: { quantity?: number; limit_price?: string; stop_price?: string } = {};
      if (quantity.trim() !== String(order.quantity)) body.quantity = Number(quantity);
      if (takesLimit(order.order_type) && limit.trim() !== (order.limit_price ?? "")) body.limit_price = limit.trim();
      if (takesStop(order.order_type) && stop.trim() !== (order.stop_price ?? "")) body.stop_price = stop.trim();
      return unwrap(api.PATCH("/api/v1/orders/{order_id}", { params: { path: { order_id: order.id } }, body }));
    },
    onSuccess: () => {
      toast("success", "Order modified");
      onDone();
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    modify.mutate();
  };
  return (
    <form className="inline-form" onSubmit={submit} aria-label={`Modify order ${order.id}`}>
      <input aria-label="Quantity" inputMode="numeric" size={6} value={quantity} onChange={(e) => setQuantity(e.target.value)} />
      {takesLimit(order.order_type) && (
        <input aria-label="Limit price" inputMode="decimal" size={8} value={limit} onChange={(e) => setLimit(e.target.value)} />
      )}
      {takesStop(order.order_type) && (
        <input aria-label="Trigger price" inputMode="decimal" size={8} value={stop} onChange={(e) => setStop(e.target.value)} />
      )}
      <button type="submit" className="small primary" disabled={modify.isPending}>
        Save
      </button>
      <button type="button" className="small" onClick={onDone}>
        Close
      </button>
      {modify.error != null && <span className="field-error">{errorMessage(modify.error)}</span>}
    </form>
  );
}
