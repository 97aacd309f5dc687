import { useState } from "react";
import { LIVE_STATUSES, useOrders, type OrderStatus } from "../api/queries";
import { useAuth } from "../auth/AuthContext";
import { OrderTicket } from "../components/OrderTicket";
import { OrdersTable } from "../components/OrdersTable";
import { Empty, ErrorBox, Loading } from "../components/States";

const STATUSES: OrderStatus[] = ["NEW", "OPEN", "PARTIALLY_FILLED", "FILLED", "CANCELLED", "EXPIRED", "REJECTED"];
/** The status filter: groups of statuses (the API takes several at once), then each one. */
const FILTERS: { key: string; label: string; statuses: OrderStatus[] }[] = [
  { key: "", label: "All", statuses: [] },
  { key: "live", label: "Live", statuses: LIVE_STATUSES },
  { key: "ended", label: "Ended", statuses: ["FILLED", "CANCELLED", "EXPIRED", "REJECTED"] },
  { key: "unfilled", label: "Ended unfilled", statuses: ["CANCELLED", "EXPIRED", "REJECTED"] },
  ...STATUSES.map((s) => ({ key: s, label: s, statuses: [s] })),
];

export function OrdersPage() {
  const { canTrade } = useAuth();
  const [filterKey, setFilterKey] = useState("");
  const filter = FILTERS.find((f) => f.key === filterKey) ?? FILTERS[0]!;
  const orders = useOrders(filter.statuses);
  const items = orders.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <div className={canTrade ? "grid-dash" : "grid-dash readonly"}>
      <section className="card" aria-label="Orders">
        <div className="toolbar">
          <h2>Orders</h2>
          <label>
            Status{" "}
            <select value={filter.key} onChange={(e) => setFilterKey(e.target.value)}>
              {FILTERS.map((f) => (
                <option key={f.key} value={f.key}>
                  {f.label}
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
          <Empty>No orders{filter.statuses.length ? ` with status ${filter.statuses.join(" or ")}` : ""}.</Empty>
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
