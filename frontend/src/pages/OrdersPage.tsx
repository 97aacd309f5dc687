import { useState } from "react";
import { useOrders, type OrderStatus } from "../api/queries";
import { useAuth } from "../auth/AuthContext";
import { OrderTicket } from "../components/OrderTicket";
import { OrdersTable } from "../components/OrdersTable";
import { Empty, ErrorBox, Loading } from "../components/States";

const STATUSES: (OrderStatus | "")[] = ["", "NEW", "OPEN", "PARTIALLY_FILLED", "FILLED", "CANCELLED", "EXPIRED", "REJECTED"];

export function OrdersPage() {
  const { canTrade } = useAuth();
  const [status, setStatus] = useState<OrderStatus | "">("");
  const orders = useOrders(status);
  const items = orders.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <div className={canTrade ? "grid-dash" : "grid-dash readonly"}>
      <section className="card" aria-label="Orders">
        <div className="toolbar">
          <h2>Orders</h2>
          <label>
            Status{" "}
            <select value={status} onChange={(e) => setStatus(e.target.value as OrderStatus | "")}>
              {STATUSES.map((s) => (
                <option key={s} value={s}>
                  {s || "All"}
                </option>
              ))}
            </select>
          </label>
        </div>
        {orders.isPending ? (
          <Loading />
        ) : orders.error && !items.length ? (
          <ErrorBox error={orders.error} retry={() => void orders.refetch()} />
        ) : items.length === 0 ? (
          <Empty>No orders{status ? ` with status ${status}` : ""}.</Empty>
        ) : (
          <>
            <OrdersTable orders={items} />
            {orders.error != null && <ErrorBox error={orders.error} />}
            {orders.hasNextPage && (
              <button type="button" onClick={() => void orders.fetchNextPage()} disabled={orders.isFetchingNextPage}>
                {orders.isFetchingNextPage ? "Loading…" : "Load more"}
              </button>
            )}
          </>
        )}
      </section>
      {canTrade && (
        <aside>
          <OrderTicket />
        </aside>
      )}
    </div>
  );
}
