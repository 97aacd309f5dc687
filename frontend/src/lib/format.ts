/** Display formatting: INR amounts (en-IN grouping), prices, quantities, times. */

const inr = new Intl.NumberFormat("en-IN", { style: "currency", currency: "INR" });
const number = new Intl.NumberFormat("en-IN", { minimumFractionDigits: 2, maximumFractionDigits: 4 });
const integer = new Intl.NumberFormat("en-IN", { maximumFractionDigits: 0 });

/**
 * Format a decimal string as INR: "1234567.5" -> "₹12,34,567.50". The string is formatted as
 * is (Intl accepts decimal strings exactly), so no float rounding creeps into large amounts.
 * null/undefined/"" -> "—".
 */
export function formatINR(amount: string | null | undefined): string {
  if (amount === null || amount === undefined || amount === "") return "—";
  // Intl.NumberFormat.format takes a numeric string without converting it through a double
  // (ES2023 "Intl.NumberFormat v3"); the cast keeps older TS lib typings happy.
  return inr.format(amount as unknown as number);
}

export function formatPrice(price: string | null | undefined): string {
  if (price === null || price === undefined || price === "") return "—";
  return number.format(price as unknown as number);
}

export function formatQty(quantity: number | null | undefined): string {
  return quantity === null || quantity === undefined ? "—" : integer.format(quantity);
}

/** Sign class for P&L colouring. */
export function signClass(amount: string | null | undefined): string {
  if (!amount) return "";
  if (amount.startsWith("-")) return "neg";
  return /[1-9]/.test(amount) ? "pos" : "";
}

const dateTime = new Intl.DateTimeFormat("en-IN", {
  dateStyle: "medium",
  timeStyle: "medium",
  timeZone: "Asia/Kolkata",
});

/** ISO UTC -> India time, the exchange's zone. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : dateTime.format(d);
}
