import { useMemo, useState } from "react";
import { useNavigate, useParams } from "react-router";
import { useQuery } from "@tanstack/react-query";
import { api, unwrap } from "../api/client";
import { keys, useMlModels, useMlSignals, useTrades } from "../api/queries";
import { PriceChart, type Overlays } from "../components/PriceChart";
import { Empty, ErrorBox, Loading } from "../components/States";
import { SymbolSearch } from "../components/SymbolSearch";
import { toBars, zoneOffsetSeconds } from "../lib/candles";
import { useQuotes } from "../ws/StreamProvider";
import { formatPrice } from "../lib/format";
import { barDays, isExtraMissing, signalMarks } from "../lib/ml";
import { errorMessage } from "../api/errors";

const INTERVALS = ["1m", "5m", "15m", "30m", "1h", "1d", "1w"] as const;
type Interval = (typeof INTERVALS)[number];

export default function ChartsPage() {
  const params = useParams();
  const navigate = useNavigate();
  const symbol = params.symbol ?? "NSE:INFY";
  const [interval, setBarInterval] = useState<Interval>("15m");
  const [overlays, setOverlays] = useState<Overlays>({ sma: true, ema: false, bollinger: false });
  const candles = useQuery({
    queryKey: keys.candles(symbol, interval),
    queryFn: () =>
      unwrap(api.GET("/api/v1/market/candles", { params: { query: { symbol, interval, limit: 1500 } } })),
  });
  const trades = useTrades(200, symbol);
  const bars = useMemo(() => toBars(candles.data?.candles ?? []), [candles.data]);
  const offset = useMemo(() => zoneOffsetSeconds(candles.data?.timezone ?? "Asia/Kolkata"), [candles.data]);
  const quote = useQuotes([symbol])[symbol];
  // a model's stored signals over the bars shown (none chosen: the chart as it was)
  const [model, setModel] = useState("");
  const models = useMlModels();
  const days = useMemo(() => barDays(bars), [bars]);
  const signals = useMlSignals(model, symbol, days.start, days.end);
  const marks = useMemo(() => (model ? signalMarks(signals.data?.points ?? []) : undefined), [model, signals.data]);

  return (
    <section className="card" aria-label="Chart">
      <div className="toolbar">
        <SymbolSearch value={symbol} onChange={(ref) => navigate(`/charts/${encodeURIComponent(ref)}`)} label="Instrument" />
        <div className="segmented" role="group" aria-label="Interval">
          {INTERVALS.map((i) => (
            <button key={i} type="button" className={`seg ${i === interval ? "on" : ""}`} aria-pressed={i === interval} onClick={() => setBarInterval(i)}>
              {i}
            </button>
          ))}
        </div>
        {(["sma", "ema", "bollinger"] as const).map((k) => (
          <label key={k}>
            <input type="checkbox" checked={overlays[k]} onChange={(e) => setOverlays({ ...overlays, [k]: e.target.checked })} />{" "}
            {k === "sma" ? "SMA 20" : k === "ema" ? "EMA 50" : "Bollinger 20,2"}
          </label>
        ))}
        <label>
          Model{" "}
          <select
            value={model}
            onChange={(e) => setModel(e.target.value)}
            disabled={!models.data?.models.length}
            title={models.error ? errorMessage(models.error) : "Overlay a registered model's signals"}
          >
            <option value="">{models.error && isExtraMissing(models.error) ? "ML not installed" : "no model signals"}</option>
            {models.data?.models.map((m) => (
              <option key={m.name} value={m.name}>
                {m.name}
              </option>
            ))}
          </select>
        </label>
        <span className="spacer" />
        {quote && (
          <span className="strong" aria-label="Last price">
            {formatPrice(quote.last)}
          </span>
        )}
      </div>
      {candles.isPending ? (
        <Loading what="Loading candles" />
      ) : candles.error ? (
        <ErrorBox error={candles.error} retry={() => void candles.refetch()} />
      ) : bars.length === 0 ? (
        <Empty>No candles stored for {symbol} at {interval}.</Empty>
      ) : (
        <PriceChart symbol={symbol} interval={interval} bars={bars} offset={offset} trades={trades.data?.items ?? []} overlays={overlays} signals={marks} />
      )}
      <p className="muted small">
        Times in {candles.data?.timezone ?? "exchange time"}. Markers are your fills
        {model ? (
          <>
            {" "}
            and <strong>{model}</strong>'s signals (blue ▲ where it turns +1, orange ▼ where it turns −1, with the probability):{" "}
            <span role="status">
              {signals.isPending
                ? "loading…"
                : signals.error
                  ? errorMessage(signals.error)
                  : `${marks?.length ?? 0} changes in ${signals.data.points.length} stored signals${signals.data.truncated ? " (the latest only)" : ""}`}
            </span>
          </>
        ) : null}
        .
      </p>
    </section>
  );
}
