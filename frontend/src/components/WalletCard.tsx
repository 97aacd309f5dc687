import { useWallet } from "../api/queries";
import { formatINR } from "../lib/format";
import { QueryState } from "./States";

export function WalletCard() {
  const wallet = useWallet();
  return (
    <section className="card" aria-label="Wallet">
      <h2>Wallet</h2>
      <QueryState query={wallet}>
        {(w) => {
          const inr = w.balances.INR;
          if (!inr) return <p className="muted">No INR balance.</p>;
          return (
            <dl className="stats">
              <div>
                <dt>Available</dt>
                <dd>{formatINR(inr.available)}</dd>
              </div>
              <div>
                <dt>Held (orders)</dt>
                <dd>{formatINR(inr.held)}</dd>
              </div>
              <div>
                <dt>Margin (MIS)</dt>
                <dd>{formatINR(inr.margin)}</dd>
              </div>
              <div>
                <dt>Total</dt>
                <dd className="strong">{formatINR(inr.total)}</dd>
              </div>
            </dl>
          );
        }}
      </QueryState>
    </section>
  );
}
