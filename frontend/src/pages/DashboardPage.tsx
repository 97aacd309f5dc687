import { useOpenOrders, usePositions, useTrades } from "../api/queries";
import { useAuth } from "../auth/AuthContext";
import { AlertsCard } from "../components/AlertsCard";
import { OrderTicket } from "../components/OrderTicket";
import { OrdersTable } from "../components/OrdersTable";
import { PositionsTable } from "../components/PositionsTable";
import { RiskCard } from "../components/RiskPanel";
import { QueryState } from "../components/States";
import { SummaryStrip } from "../components/SummaryStrip";
import { TradesTable } from "../components/TradesTable";
import { WalletCard } from "../components/WalletCard";

export function DashboardPage() {
  const { canTrade } = useAuth();
  const positions = usePositions();
  const openOrders = useOpenOrders();
  const trades = useTrades(10);
  return (
    <div className="stack">
      <SummaryStrip />
      <div className={canTrade ? "grid-dash" : "grid-dash readonly"}>
        <div className="stack">
          <WalletCard />
          <RiskCard />
          <AlertsCard />
          <section className="card" aria-label="Open positions">
            <h2>Open positions</h2>
            <QueryState
              query={positions}
              empty={(ps) => (ps.some((p) => p.quantity !== 0) ? null : "No open positions.")}
            >
              {(ps) => <PositionsTable positions={ps.filter((p) => p.quantity !== 0)} compact />}
            </QueryState>
          </section>
          <section className="card" aria-label="Open orders">
            <h2>Open orders</h2>
            <QueryState query={openOrders} empty={(os) => (os.length ? null : "No open orders.")}>
              {(os) => <OrdersTable orders={os} />}
            </QueryState>
          </section>
          <section className="card" aria-label="Latest fills">
            <h2>Latest fills</h2>
            <QueryState query={trades} empty={(page) => (page.items.length ? null : "No fills yet.")}>
              {(page) => <TradesTable trades={page.items} />}
            </QueryState>
          </section>
        </div>
        {canTrade && (
          <aside>
            <OrderTicket />
          </aside>
        )}
      </div>
    </div>
  );
}
