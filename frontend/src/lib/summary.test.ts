import { describe, expect, it } from "vitest";
import { formatINR } from "./format";
import { computeSummary, markToLive, type SummaryPosition } from "./summary";

const pos = (over: Partial<SummaryPosition>): SummaryPosition => ({
  symbol: "NSE:INFY",
  product: "CNC",
  quantity: 0,
  last_price: null,
  unrealised_pnl: null,
  day_pnl: null,
  ...over,
});

const balance = { available: "90000.00", held: "5000.00", margin: "5000.00", total: "100000.00" };

const sample = [
  // CNC: counted at market value, 10 x 1500.05
  pos({ symbol: "NSE:INFY", product: "CNC", quantity: 10, last_price: "1500.05", unrealised_pnl: "50.50", day_pnl: "120.25" }),
  // MIS short: its margin is in the wallet total, so only its unrealised P&L counts
  pos({ symbol: "NSE:TCS", product: "MIS", quantity: -5, last_price: "3000.00", unrealised_pnl: "-25.75", day_pnl: "-40.10" }),
  // closed today: no value, but its day P&L still counts
  pos({ symbol: "NSE:HDFC", product: "CNC", quantity: 0, last_price: "1600.00", unrealised_pnl: "0.00", day_pnl: "10.00" }),
];

describe("computeSummary", () => {
  it("computes equity, cash, day and unrealised P&L exactly", () => {
    const s = computeSummary(sample, balance);
    expect(s.equity).toBe("114974.75"); // 100000.00 + 15000.50 − 25.75
    expect(s.cash).toBe("90000.00");
    expect(s.dayPnl).toBe("90.15"); // 120.25 − 40.10 + 10.00
    expect(s.unrealisedPnl).toBe("24.75");
    expect(s.missingMarks).toEqual([]);
    expect(formatINR(s.equity)).toBe("₹1,14,974.75");
  });

  it("does not lose paise on large amounts (no float)", () => {
    const s = computeSummary(
      [pos({ product: "CNC", quantity: 7, last_price: "1234567.89", unrealised_pnl: "0.07", day_pnl: "0.03" })],
      { ...balance, total: "9007199254740.99" },
    );
    expect(s.equity).toBe("9007207896716.22"); // 9007199254740.99 + 8641975.23
    expect(s.dayPnl).toBe("0.03");
  });

  it("gives no equity (rather than a wrong one) when a mark is missing", () => {
    const s = computeSummary(
      [...sample, pos({ symbol: "NSE:SBIN", product: "CNC", quantity: 3, last_price: null, unrealised_pnl: null, day_pnl: null })],
      balance,
    );
    expect(s.equity).toBeNull();
    expect(s.unrealisedPnl).toBeNull();
    expect(s.dayPnl).toBeNull();
    expect(s.missingMarks).toEqual(["NSE:SBIN (CNC)"]);
    expect(s.missingDayPnl).toEqual(["NSE:SBIN (CNC)"]);
    expect(s.cash).toBe("90000.00");
  });

  it("treats an MIS position without unrealised P&L as unmarked too", () => {
    const s = computeSummary([pos({ product: "MIS", quantity: 2, last_price: null, unrealised_pnl: null, day_pnl: "0.00" })], balance);
    expect(s.equity).toBeNull();
    expect(s.dayPnl).toBe("0.00");
  });

  it("is the wallet total with no positions, and unknown without an INR balance", () => {
    expect(computeSummary([], balance)).toMatchObject({ equity: "100000.00", dayPnl: "0", unrealisedPnl: "0" });
    expect(computeSummary([], undefined)).toMatchObject({ equity: null, cash: null });
  });
});

describe("markToLive", () => {
  const infy = { ...sample[0]!, average_price: "1495.00" };

  it("re-marks unrealised and day P&L to the live price exactly", () => {
    const live = markToLive(infy, "1510.10");
    expect(live.last_price).toBe("1510.10");
    expect(live.unrealised_pnl).toBe("151.00"); // (1510.10 − 1495.00) × 10
    expect(live.day_pnl).toBe("220.75"); // 120.25 + 10 × (1510.10 − 1500.05)
  });

  it("moves a short's day P&L the other way", () => {
    const tcs = { ...sample[1]!, average_price: "2994.85" };
    const live = markToLive(tcs, "3001.13");
    expect(live.unrealised_pnl).toBe("-31.40"); // (3001.13 − 2994.85) × −5
    expect(live.day_pnl).toBe("-45.75"); // −40.10 + (−5) × (3001.13 − 3000.00)
  });

  it("keeps the REST figures without a quote, for a closed position, or without a REST mark", () => {
    expect(markToLive(infy, undefined)).toBe(infy);
    expect(markToLive(infy, "garbage")).toBe(infy);
    const closed = { ...sample[2]!, average_price: null };
    expect(markToLive(closed, "1700.00")).toBe(closed);
    const unmarked = markToLive({ ...infy, last_price: null, day_pnl: null, unrealised_pnl: null }, "1500.00");
    expect(unmarked.day_pnl).toBeNull();
    expect(unmarked.unrealised_pnl).toBe("50.00");
  });

  it("feeds computeSummary: equity, day and unrealised follow the live mark", () => {
    const s = computeSummary([markToLive(infy, "1510.10"), sample[1]!, sample[2]!], balance);
    expect(s.equity).toBe("115075.25"); // 100000.00 + 15101.00 − 25.75
    expect(s.dayPnl).toBe("190.65"); // 220.75 − 40.10 + 10.00
    expect(s.unrealisedPnl).toBe("125.25"); // 151.00 − 25.75
  });
});
