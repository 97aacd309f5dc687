// @vitest-environment node
import { describe, expect, it } from "vitest";
import { applyQuote, barTimeFor, zoneOffsetSeconds, type Bar } from "./candles";

const t = (iso: string) => Date.parse(iso) / 1000;

describe("applyQuote", () => {
  const bars = (): Bar[] => [
    { time: t("2025-01-31T03:45:00Z"), open: 100, high: 101, low: 99, close: 100, volume: 10 },
  ];

  it("updates the last bar inside its interval", () => {
    const b = bars();
    const bar = applyQuote(b, { last: "102.5", volume: 1000, ts: "2025-01-31T03:49:00Z" }, "5m", 990);
    expect(bar).toMatchObject({ high: 102.5, close: 102.5, volume: 20 });
    expect(b).toHaveLength(1);
  });

  it("opens the next bar on the interval grid", () => {
    const b = bars();
    applyQuote(b, { last: "98", volume: 5, ts: "2025-01-31T03:57:10Z" }, "5m", null);
    expect(b).toHaveLength(2);
    expect(b[1]).toMatchObject({ time: t("2025-01-31T03:55:00Z"), open: 98, low: 98, volume: 0 });
  });

  it("ignores quotes older than the last bar", () => {
    expect(applyQuote(bars(), { last: "1", volume: 0, ts: "2025-01-30T03:00:00Z" }, "5m", null)).toBeNull();
  });
});

describe("barTimeFor and zone offsets", () => {
  it("finds the bar holding a time", () => {
    const b = [0, 60, 120].map((time) => ({ time, open: 1, high: 1, low: 1, close: 1, volume: 0 }));
    expect(barTimeFor(b, 119)).toBe(60);
    expect(barTimeFor(b, -1)).toBeNull();
  });

  it("knows India is UTC+05:30", () => {
    expect(zoneOffsetSeconds("Asia/Kolkata")).toBe(19800);
  });
});
