/** Chart overlays computed client-side over close prices (display only, so floats are fine). */

export interface Point {
  time: number;
  value: number;
}

export function sma(times: number[], closes: number[], period: number): Point[] {
  const out: Point[] = [];
  let sum = 0;
  for (let i = 0; i < closes.length; i++) {
    sum += closes[i]!;
    if (i >= period) sum -= closes[i - period]!;
    if (i >= period - 1) out.push({ time: times[i]!, value: sum / period });
  }
  return out;
}

export function ema(times: number[], closes: number[], period: number): Point[] {
  const out: Point[] = [];
  if (closes.length < period) return out;
  const k = 2 / (period + 1);
  let value = closes.slice(0, period).reduce((a, b) => a + b, 0) / period;
  out.push({ time: times[period - 1]!, value });
  for (let i = period; i < closes.length; i++) {
    value = closes[i]! * k + value * (1 - k);
    out.push({ time: times[i]!, value });
  }
  return out;
}

export function bollinger(
  times: number[],
  closes: number[],
  period = 20,
  width = 2,
): { upper: Point[]; middle: Point[]; lower: Point[] } {
  const upper: Point[] = [];
  const middle: Point[] = [];
  const lower: Point[] = [];
  for (let i = period - 1; i < closes.length; i++) {
    const window = closes.slice(i - period + 1, i + 1);
    const mean = window.reduce((a, b) => a + b, 0) / period;
    const sd = Math.sqrt(window.reduce((a, b) => a + (b - mean) ** 2, 0) / period);
    const time = times[i]!;
    middle.push({ time, value: mean });
    upper.push({ time, value: mean + width * sd });
    lower.push({ time, value: mean - width * sd });
  }
  return { upper, middle, lower };
}
