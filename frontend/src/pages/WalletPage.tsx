import { useState } from "react";
import { useLedger, type EntryKind, type LedgerEntry, type LedgerFilters } from "../api/queries";
import { Empty, ErrorBox, Loading } from "../components/States";
import { WalletCard } from "../components/WalletCard";
import { downloadText, toCsv } from "../lib/csv";
import { formatINR, formatTime } from "../lib/format";

const KINDS: (EntryKind | "")[] = ["", "DEPOSIT", "WITHDRAWAL", "HOLD", "RELEASE", "TRADE", "FEE", "TAX", "ADJUSTMENT"];

/** The change of the user's cash (available) account in an entry, or "" when untouched. */
function cashChange(entry: LedgerEntry, account: string): string {
  return entry.postings.find((p) => p.account.endsWith(account))?.amount ?? "";
}

/** The loaded ledger rows as CSV: one line per posting, amounts exactly as the API sent them. */
export function ledgerCsv(entries: LedgerEntry[]): string {
  const rows = entries.flatMap((e) =>
    e.postings.map((p) => [e.id, e.created_at, e.kind, e.memo, e.ref, p.account, p.currency, p.amount]),
  );
  return toCsv(["entry_id", "created_at", "kind", "memo", "ref", "account", "currency", "amount"], rows);
}

export function WalletPage() {
  const [filters, setFilters] = useState<LedgerFilters>({ kind: "", since: "", until: "" });
  const ledger = useLedger(filters);
  const entries = ledger.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <div className="stack">
      <WalletCard />
      <section className="card" aria-label="Ledger">
        <div className="toolbar">
          <h2>Ledger</h2>
          <label>
            Kind{" "}
            <select value={filters.kind} onChange={(e) => setFilters({ ...filters, kind: e.target.value as EntryKind | "" })}>
              {KINDS.map((k) => (
                <option key={k} value={k}>
                  {k || "All"}
                </option>
              ))}
            </select>
          </label>
          <label>
            Since <input type="datetime-local" value={filters.since} onChange={(e) => setFilters({ ...filters, since: e.target.value })} />
          </label>
          <label>
            Until <input type="datetime-local" value={filters.until} onChange={(e) => setFilters({ ...filters, until: e.target.value })} />
          </label>
          <button
            type="button"
            disabled={!entries.length}
            onClick={() => downloadText(`ledger-${new Date().toISOString().slice(0, 10)}.csv`, ledgerCsv(entries))}
          >
            Export CSV ({entries.length})
          </button>
        </div>
        {ledger.isPending ? (
          <Loading />
        ) : ledger.error && !entries.length ? (
          <ErrorBox error={ledger.error} retry={() => void ledger.refetch()} />
        ) : entries.length === 0 ? (
          <Empty>No ledger entries match.</Empty>
        ) : (
          <>
            <div className="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th>Time</th>
                    <th>Kind</th>
                    <th>Memo</th>
                    <th className="num">Available</th>
                    <th className="num">Held</th>
                    <th className="num">Margin</th>
                  </tr>
                </thead>
                <tbody>
                  {entries.map((e) => (
                    <tr key={e.id}>
                      <td className="nowrap">{formatTime(e.created_at)}</td>
                      <td>{e.kind}</td>
                      <td>{e.memo}</td>
                      <td className="num">{formatINR(cashChange(e, ":cash"))}</td>
                      <td className="num">{formatINR(cashChange(e, ":held"))}</td>
                      <td className="num">{formatINR(cashChange(e, ":margin"))}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            {ledger.error != null && <ErrorBox error={ledger.error} />}
            {ledger.hasNextPage && (
              <button type="button" onClick={() => void ledger.fetchNextPage()} disabled={ledger.isFetchingNextPage}>
                {ledger.isFetchingNextPage ? "Loading…" : "Load more"}
              </button>
            )}
          </>
        )}
      </section>
    </div>
  );
}
