/**
 * The order ticket's checks, the same as the API's (core/orders.py validate_order): whole
 * lots, prices on the tick, prices only where the order type takes them, a stop-limit's limit
 * not on the wrong side of its stop. The API stays the authority; this only saves a round trip.
 */
import type { Schemas } from "../api/client";
import { cmp, isMultipleOf, isZero, parseDec } from "./decimal";

export type OrderIn = Schemas["OrderIn"];
export type Side = Schemas["Side"];
export type OrderType = Schemas["OrderType"];
export type Product = Schemas["Product"];
export type Validity = Schemas["TimeInForce"];

export interface TicketForm {
  symbol: string;
  side: Side;
  orderType: OrderType;
  product: Product;
  quantity: string;
  limitPrice: string;
  stopPrice: string;
  validity: Validity;
}

export interface InstrumentRules {
  tick_size: string;
  lot_size: number;
}

export type TicketErrors = Partial<Record<"symbol" | "quantity" | "limitPrice" | "stopPrice", string>>;

export const takesLimit = (t: OrderType) => t === "LIMIT" || t === "SL";
export const takesStop = (t: OrderType) => t === "SL" || t === "SL-M";

const PRICE_RE = /^[0-9]{1,10}(\.[0-9]{1,4})?$/;

export function checkPrice(text: string, tick: string, label: string): string | undefined {
  const value = text.trim();
  if (!value) return `${label} is required`;
  if (!PRICE_RE.test(value)) return `${label} must be a number with at most 4 decimals`;
  const price = parseDec(value)!;
  if (isZero(price)) return `${label} must be greater than 0`;
  const step = parseDec(tick);
  if (step && !isZero(step) && !isMultipleOf(price, step)) {
    return `${label} must be a multiple of the tick size ${tick}`;
  }
  return undefined;
}

export function checkQuantity(text: string, lot: number): string | undefined {
  const value = text.trim();
  if (!/^[0-9]+$/.test(value) || Number(value) <= 0) return "Quantity must be a whole number above 0";
  if (!Number.isSafeInteger(Number(value))) return "Quantity is too large";
  if (lot > 1 && Number(value) % lot !== 0) return `Quantity must be a multiple of the lot size ${lot}`;
  return undefined;
}

export function validateTicket(form: TicketForm, rules: InstrumentRules | undefined): TicketErrors {
  const errors: TicketErrors = {};
  if (!form.symbol) errors.symbol = "Choose an instrument";
  if (!rules) return errors;
  errors.quantity = checkQuantity(form.quantity, rules.lot_size);
  if (takesLimit(form.orderType)) errors.limitPrice = checkPrice(form.limitPrice, rules.tick_size, "Limit price");
  if (takesStop(form.orderType)) errors.stopPrice = checkPrice(form.stopPrice, rules.tick_size, "Trigger price");
  if (form.orderType === "SL" && !errors.limitPrice && !errors.stopPrice) {
    const order = cmp(parseDec(form.limitPrice)!, parseDec(form.stopPrice)!);
    if (form.side === "BUY" && order < 0) errors.limitPrice = "A buy stop-limit's limit price cannot be below its trigger price";
    if (form.side === "SELL" && order > 0) errors.limitPrice = "A sell stop-limit's limit price cannot be above its trigger price";
  }
  for (const key of Object.keys(errors) as (keyof TicketErrors)[]) if (!errors[key]) delete errors[key];
  return errors;
}

/** The POST /api/v1/orders body for a valid form. */
export function orderBody(form: TicketForm, clientOrderId: string): OrderIn {
  return {
    client_order_id: clientOrderId,
    symbol: form.symbol,
    side: form.side,
    quantity: Number(form.quantity.trim()),
    order_type: form.orderType,
    limit_price: takesLimit(form.orderType) ? form.limitPrice.trim() : null,
    stop_price: takesStop(form.orderType) ? form.stopPrice.trim() : null,
    product: form.product,
    time_in_force: form.validity,
  };
}

export function newClientOrderId(): string {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return "ui-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
