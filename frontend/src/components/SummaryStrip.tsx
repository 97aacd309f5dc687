/**
 * The Dashboard's top strip: equity, cash, day P&L and unrealised P&L, computed exactly from
 * GET /wallet and GET /positions (src/lib/summary.ts), each open position re-marked to its live
 * `quotes:` frame exactly like the positions table (markToLive): unrealised P&L, day P&L and
 * equity follow the live price. `positions` frames carry day_pnl null and just trigger a re-read.
 */
import { usePositions, useWallet } from "../api/queries";
import { formatINR, signClass } from "../lib/format";
import { computeSummary, markToLive } from "../lib/summary";
import { useQuotes } from "../ws/StreamProvider";
import { ErrorBox, Loading } from "./States";

function Unknown({ why }: { why: string }) {
  return (
    <abbr title={why} aria-label={`Unknown: ${why}`}>
      —
    </abbr>
  );
}

function Figure({
  label,
  value,
  signed = false,
  unknownWhy,
}: {
  label: string;
  value: string | null;
  signed?: boolean;
  unknownWhy: string;
}) {
  return (
    <div>
      <dt>{label}</dt>
      <dd className={signed && value !== null ? signClass(value) : undefined} aria-label={label}>
        {value === null ? <Unknown why={unknownWhy} /> : formatINR(value)}
      </dd>
    </div>
  );
}

const noMark = (symbols: string[]) => `No mark (last price) yet for ${symbols.join(", ")}`;

export function SummaryStrip() {
  const wallet = useWallet();
  const positions = usePositions();
  const quotes = useQuotes((positions.data ?? []).filter((p) => p.quantity !== 0).map((p) => p.symbol));
  let content: React.ReactNode;
  if (wallet.isPending || positions.isPending) {
    content = <Loading />;
  } else if (wallet.data === undefined || positions.data === undefined) {
    const failed = wallet.data === undefined ? wallet : positions;
    content = <ErrorBox error={failed.error} retry={() => void failed.refetch()} />;
  } else {
    const s = computeSummary(
      positions.data.map((p) => markToLive(p, quotes[p.symbol]?.last)),
      wallet.data.balances.INR,
    );
    content = (
      <dl className="summary">
        <Figure
          label="Equity"
          value={s.equity}
          unknownWhy={s.missingMarks.length ? noMark(s.missingMarks) : "No INR balance"}
        />
        <Figure label="Cash available" value={s.cash} unknownWhy="No INR balance" />
        <Figure
          label="Day P&L"
          value={s.dayPnl}
          signed
          unknownWhy={`No day P&L yet for ${s.missingDayPnl.join(", ")}`}
        />
        <Figure label="Unrealised P&L" value={s.unrealisedPnl} signed unknownWhy={noMark(s.missingMarks)} />
      </dl>
    );
  }
  return (
    <section className="card" aria-label="Account summary">
      {content}
    </section>
  );
}
