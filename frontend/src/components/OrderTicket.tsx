/** The order ticket: instrument, side, type, product, quantity, prices, validity; charges preview. */
import { useEffect, useMemo, useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, unwrap } from "../api/client";
import { errorMessage } from "../api/errors";
import { keys, riskBlockReason, useInstrument, useRiskState } from "../api/queries";
import { formatINR, formatPrice } from "../lib/format";
import {
  newClientOrderId,
  orderBody,
  takesLimit,
  takesStop,
  validateTicket,
  type OrderType,
  type TicketForm,
} from "../lib/orderRules";
import { useQuotes } from "../ws/StreamProvider";
import { ErrorBox } from "./States";
import { SymbolSearch } from "./SymbolSearch";
import { useToast } from "./Toasts";

const TYPES: OrderType[] = ["MARKET", "LIMIT", "SL", "SL-M"];

export function OrderTicket({ initialSymbol = "" }: { initialSymbol?: string }) {
  const [form, setForm] = useState<TicketForm>({
    symbol: initialSymbol,
    side: "BUY",
    orderType: "LIMIT",
    product: "CNC",
    quantity: "1",
    limitPrice: "",
    stopPrice: "",
    validity: "DAY",
  });
  const [touched, setTouched] = useState(false);
  const [clientOrderId, setClientOrderId] = useState(newClientOrderId);
  const instrument = useInstrument(form.symbol || null);
  const quotes = useQuotes(form.symbol ? [form.symbol] : []);
  const last = quotes[form.symbol]?.last ?? instrument.data?.last_price ?? null;
  const errors = useMemo(() => validateTicket(form, instrument.data), [form, instrument.data]);
  const valid = !!instrument.data && Object.keys(errors).length === 0;
  const queryClient = useQueryClient();
  const toast = useToast();
  // a kill switch or a halt: the ticket is disabled and says why (the API would refuse anyway)
  const risk = useRiskState();
  const blocked = riskBlockReason(risk.data);

  useEffect(() => setForm((f) => ({ ...f, symbol: initialSymbol || f.symbol })), [initialSymbol]);

  const set = <K extends keyof TicketForm>(key: K, value: TicketForm[K]) => setForm((f) => ({ ...f, [key]: value }));

  const place = useMutation({
    mutationFn: () => unwrap(api.POST("/api/v1/orders", { body: orderBody(form, clientOrderId) })),
    onSuccess: (order) => {
      toast("success", `Order ${order.status.toLowerCase()}: ${order.side} ${order.quantity} ${order.symbol}`);
      setClientOrderId(newClientOrderId());
      setTouched(false);
      void queryClient.invalidateQueries({ queryKey: keys.orders });
      void queryClient.invalidateQueries({ queryKey: keys.wallet });
    },
    onError: (error) => toast("error", `Order refused: ${errorMessage(error)}`),
  });

  const submit = (event: FormEvent) => {
    event.preventDefault();
    setTouched(true);
    if (valid && !blocked && !place.isPending) place.mutate();
  };

  const previewPrice = takesLimit(form.orderType) ? form.limitPrice : takesStop(form.orderType) ? form.stopPrice : last ?? "";
  const exchange = form.symbol.split(":")[0];
  const preview = useQuery({
    queryKey: ["charges", form.product, exchange, previewPrice, form.quantity],
    queryFn: () =>
      unwrap(
        api.GET("/api/v1/charges/estimate", {
          params: {
            query: {
              segment: form.product === "CNC" ? "equity_delivery" : "equity_intraday",
              exchange: exchange as "NSE" | "BSE",
              buy: previewPrice,
              sell: previewPrice,
              quantity: Number(form.quantity),
            },
          },
        }),
      ),
    enabled: valid && (exchange === "NSE" || exchange === "BSE") && !!previewPrice,
    staleTime: 60_000,
  });

  // Errors show once the user tries to submit, not while typing the first digit.
  const show = (key: keyof typeof errors) => (touched ? errors[key] : undefined);

  return (
    <form className="card ticket" onSubmit={submit} aria-label="Order ticket" noValidate>
      <h2>Order ticket</h2>
      {blocked && (
        <div className="banner danger" role="alert" aria-label="Trading blocked">
          <strong>Trading blocked.</strong> {blocked}
        </div>
      )}
      <fieldset className="plain" disabled={!!blocked}>
      <SymbolSearch value={form.symbol} onChange={(ref) => set("symbol", ref)} />
      {show("symbol") && <p className="field-error">{show("symbol")}</p>}
      {instrument.error != null && <ErrorBox error={instrument.error} />}
      {instrument.data && (
        <p className="muted small">
          {instrument.data.name} · tick {instrument.data.tick_size} · lot {instrument.data.lot_size} · last{" "}
          {formatPrice(last)}
        </p>
      )}

      <fieldset className="segmented" aria-label="Side">
        {(["BUY", "SELL"] as const).map((side) => (
          <label key={side} className={`seg ${form.side === side ? `on ${side.toLowerCase()}` : ""}`}>
            <input type="radio" name="side" value={side} checked={form.side === side} onChange={() => set("side", side)} />
            {side === "BUY" ? "Buy" : "Sell"}
          </label>
        ))}
      </fieldset>

      <div className="row">
        <label>
          Type
          <select value={form.orderType} onChange={(e) => set("orderType", e.target.value as OrderType)}>
            {TYPES.map((t) => (
              <option key={t}>{t}</option>
            ))}
          </select>
        </label>
        <label>
          Product
          <select value={form.product} onChange={(e) => set("product", e.target.value as TicketForm["product"])}>
            <option value="CNC">CNC (delivery)</option>
            <option value="MIS">MIS (intraday)</option>
          </select>
        </label>
        <label>
          Validity
          <select value={form.validity} onChange={(e) => set("validity", e.target.value as TicketForm["validity"])}>
            <option>DAY</option>
            <option>IOC</option>
          </select>
        </label>
      </div>

      <div className="row">
        <label>
          Quantity
          <input
            inputMode="numeric"
            value={form.quantity}
            onChange={(e) => set("quantity", e.target.value)}
            aria-invalid={!!show("quantity")}
          />
          {show("quantity") && <span className="field-error">{show("quantity")}</span>}
        </label>
        {takesLimit(form.orderType) && (
          <label>
            Limit price
            <input
              inputMode="decimal"
              value={form.limitPrice}
              onChange={(e) => set("limitPrice", e.target.value)}
              aria-invalid={!!show("limitPrice")}
            />
            {show("limitPrice") && <span className="field-error">{show("limitPrice")}</span>}
          </label>
        )}
        {takesStop(form.orderType) && (
          <label>
            Trigger price
            <input
              inputMode="decimal"
              value={form.stopPrice}
              onChange={(e) => set("stopPrice", e.target.value)}
              aria-invalid={!!show("stopPrice")}
            />
            {show("stopPrice") && <span className="field-error">{show("stopPrice")}</span>}
          </label>
        )}
      </div>

      {preview.data && (
        <p className="muted small" aria-label="Charges preview">
          Est. charges (round trip at {formatPrice(previewPrice)}): {formatINR(preview.data.total)} · break-even{" "}
          {formatPrice(preview.data.breakeven_points)} pts
        </p>
      )}
      {preview.error != null && <p className="muted small">Charges preview unavailable: {errorMessage(preview.error)}</p>}
      {place.error != null && <ErrorBox error={place.error} />}

      <button type="submit" className={`primary ${form.side === "BUY" ? "buy" : "sell"}`} disabled={place.isPending || !!blocked}>
        {place.isPending ? "Placing…" : `${form.side === "BUY" ? "Buy" : "Sell"} ${form.symbol || ""}`}
      </button>
      </fieldset>
    </form>
  );
}
