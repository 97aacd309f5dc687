import { useState } from "react";
import { usePositions } from "../api/queries";
import { PositionsTable } from "../components/PositionsTable";
import { QueryState } from "../components/States";

export function PositionsPage() {
  const positions = usePositions();
  const [showClosed, setShowClosed] = useState(false);
  return (
    <section className="card" aria-label="Positions">
      <div className="toolbar">
        <h2>Positions</h2>
        <label>
          <input type="checkbox" checked={showClosed} onChange={(e) => setShowClosed(e.target.checked)} /> Show closed
        </label>
      </div>
      <QueryState
        query={positions}
        empty={(ps) => (ps.some((p) => showClosed || p.quantity !== 0) ? null : "No open positions.")}
      >
        {(ps) => <PositionsTable positions={ps.filter((p) => showClosed || p.quantity !== 0)} />}
      </QueryState>
      <p className="muted small">
        Unrealised P&amp;L moves with live quotes; day P&amp;L and realised P&amp;L are the server's, refreshed on
        every fill and every 30 s.
      </p>
    </section>
  );
}
