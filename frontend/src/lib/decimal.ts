/**
 * Exact decimal arithmetic on the API's decimal strings ("1500.05"), as scaled BigInts.
 *
 * Money and prices arrive as strings; anything that decides something (tick checks, P&L
 * shown next to the server's numbers) is computed here, never through float.
 */

export interface Dec {
  /** value = units / 10^scale */
  readonly units: bigint;
  readonly scale: number;
}

const DECIMAL_RE = /^([+-])?(\d+)(?:\.(\d+))?$/;

export function parseDec(text: string): Dec | null {
  const m = DECIMAL_RE.exec(text.trim());
  if (!m) return null;
  const frac = m[3] ?? "";
  const units = BigInt((m[2] ?? "0") + frac);
  return { units: m[1] === "-" ? -units : units, scale: frac.length };
}

export function dec(text: string): Dec {
  const d = parseDec(text);
  if (!d) throw new Error(`not a decimal: ${JSON.stringify(text)}`);
  return d;
}

function rescale(d: Dec, scale: number): bigint {
  return d.units * 10n ** BigInt(scale - d.scale);
}

function align(a: Dec, b: Dec): [bigint, bigint, number] {
  const scale = Math.max(a.scale, b.scale);
  return [rescale(a, scale), rescale(b, scale), scale];
}

export function add(a: Dec, b: Dec): Dec {
  const [x, y, scale] = align(a, b);
  return { units: x + y, scale };
}

export function sub(a: Dec, b: Dec): Dec {
  const [x, y, scale] = align(a, b);
  return { units: x - y, scale };
}

export function mulInt(a: Dec, n: number | bigint): Dec {
  return { units: a.units * BigInt(n), scale: a.scale };
}

export function cmp(a: Dec, b: Dec): number {
  const [x, y] = align(a, b);
  return x < y ? -1 : x > y ? 1 : 0;
}

export function isZero(a: Dec): boolean {
  return a.units === 0n;
}

/** True when a is a whole multiple of step (step > 0). */
export function isMultipleOf(a: Dec, step: Dec): boolean {
  const [x, y] = align(a, step);
  return y !== 0n && x % y === 0n;
}

export function toString(d: Dec): string {
  const negative = d.units < 0n;
  const digits = (negative ? -d.units : d.units).toString().padStart(d.scale + 1, "0");
  const int = digits.slice(0, digits.length - d.scale);
  const frac = d.scale ? "." + digits.slice(digits.length - d.scale) : "";
  return (negative ? "-" : "") + int + frac;
}

/** Display only: the nearest float, for formatting and chart coordinates. */
export function toNumber(d: Dec | string): number {
  return Number(typeof d === "string" ? d : toString(d));
}
