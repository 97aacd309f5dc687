import { describe, expect, it } from "vitest";
import type { BacktestPage } from "../api/queries";
import { backtestRun as run } from "../test/backtests";
import {
  applyJobEvent,
  applyJobEventToPage,
  bestIndex,
  formatMetric,
  lineOf,
  normaliseEquity,
  parseJobFrame,
  type JobEvent,
} from "./backtests";

const t = (iso: string) => Date.parse(iso) / 1000;

describe("normaliseEquity (compare)", () => {
  it("divides by the starting cash, not by the first kept point", () => {
    const points = [
      { time: "2024-01-03T10:00:00Z", equity: "1100000.00" },
      { time: "2024-01-02T10:00:00Z", equity: "1050000.00" },
      { time: "2024-01-04T10:00:00Z", equity: "900000.00" },
    ];
    expect(normaliseEquity(points, "1000000")).toEqual([
      { time: t("2024-01-02T10:00:00Z"), value: 1.05 },
      { time: t("2024-01-03T10:00:00Z"), value: 1.1 },
      { time: t("2024-01-04T10:00:00Z"), value: 0.9 },
    ]);
  });

  it("falls back to the first point, and keeps times strictly increasing", () => {
    const points = [
      { time: "2024-01-02T10:00:00Z", equity: "200.00" },
      { time: "2024-01-02T10:00:00Z", equity: "210.00" },
      { time: "2024-01-03T10:00:00Z", equity: "300.00" },
    ];
    const out = normaliseEquity(points, null);
    expect(out.map((p) => p.time)).toEqual([t("2024-01-02T10:00:00Z"), t("2024-01-03T10:00:00Z")]);
    expect(out[0]!.value).toBeCloseTo(1.05);
    expect(out[1]!.value).toBeCloseTo(1.5);
    expect(normaliseEquity([], "1000")).toEqual([]);
  });

  it("two runs with different cash both start at 1.0", () => {
    const a = normaliseEquity([{ time: "2024-01-02T10:00:00Z", equity: "500000.00" }], "500000");
    const b = normaliseEquity([{ time: "2024-01-02T10:00:00Z", equity: "2000000.00" }], "2000000");
    expect(a[0]!.value).toBe(1);
    expect(b[0]!.value).toBe(1);
  });
});

describe("lineOf", () => {
  it("skips missing values and scales drawdown to percent", () => {
    const points = [
      { time: "2024-01-02T10:00:00Z", equity: "1", benchmark: null, drawdown: 0 },
      { time: "2024-01-03T10:00:00Z", equity: "1", benchmark: "2", drawdown: -0.125 },
    ];
    expect(lineOf(points, (p) => p.benchmark)).toEqual([{ time: t("2024-01-03T10:00:00Z"), value: 2 }]);
    expect(lineOf(points, (p) => p.drawdown, 100).map((p) => p.value)).toEqual([0, -12.5]);
  });
});

describe("jobs frames", () => {
  const frame = (data: unknown) => ({ type: "job", channel: "jobs", data });

  it("parses a job event and refuses other frames", () => {
    expect(parseJobFrame(frame({ type: "job", kind: "backtest", id: "x", status: "running", progress: 0.42 }))).toEqual({
      kind: "backtest",
      id: "x",
      status: "running",
      progress: 0.42,
      summary: undefined,
      error: undefined,
    });
    expect(parseJobFrame({ channel: "orders", data: { id: "x", status: "running" } })).toBeNull();
    expect(parseJobFrame(frame({ id: "x", status: "exploded" }))).toBeNull();
    expect(parseJobFrame(frame({ kind: "sweep", id: "x", status: "running" }))).toBeNull();
    expect(parseJobFrame(frame({ id: "x", status: "running", progress: 7 }))!.progress).toBe(1);
  });

  it("moves a run's progress forward and ends it with its summary", () => {
    const queued = run();
    const ev = (e: Partial<JobEvent>): JobEvent => ({ kind: "backtest", id: queued.id, status: "running", progress: 0, ...e });
    const running = applyJobEvent(queued, ev({ progress: 0.25 }));
    expect(running).toMatchObject({ status: "running", progress: 0.25 });
    expect(applyJobEvent(running, ev({ progress: 0.6 })).progress).toBe(0.6);
    // an older progress frame does not move the bar back
    expect(applyJobEvent({ ...running, progress: 0.6 }, ev({ progress: 0.4 })).progress).toBe(0.6);
    const done = applyJobEvent(running, ev({ status: "succeeded", progress: 1, summary: { final_equity: "1100000.00" } }));
    expect(done).toMatchObject({ status: "succeeded", progress: 1, summary: { final_equity: "1100000.00" } });
    // a late `running` after the end changes nothing; nor does another run's event
    expect(applyJobEvent(done, ev({ progress: 0.9 }))).toBe(done);
    expect(applyJobEvent(done, { ...ev({ status: "cancelled" }) })).toBe(done);
    expect(applyJobEvent(queued, { ...ev({ progress: 0.5 }), id: "b".repeat(32) })).toBe(queued);
    const failed = applyJobEvent(running, ev({ status: "failed", error: { code: "STRATEGY_FAILED", message: "boom", trace: "Traceback" } }));
    expect(failed).toMatchObject({ status: "failed", error: { message: "boom" } });
  });

  it("patches a history page in place", () => {
    const page: BacktestPage = { items: [run(), run({ id: "b".repeat(32), status: "succeeded", progress: 1 })], next_cursor: null };
    const ev: JobEvent = { kind: "backtest", id: "a".repeat(32), status: "running", progress: 0.3 };
    const out = applyJobEventToPage(page, ev);
    expect(out.items[0]).toMatchObject({ status: "running", progress: 0.3 });
    expect(out.items[1]).toBe(page.items[1]);
    expect(applyJobEventToPage(page, { ...ev, id: "c".repeat(32) })).toBe(page);
  });
});

describe("metrics", () => {
  it("formats ratios, percentages and money", () => {
    expect(formatMetric(-0.039035, "pct")).toBe("-3.90%");
    expect(formatMetric(0.5611, "ratio")).toBe("0.56");
    expect(formatMetric(431, "days")).toBe("431 d");
    expect(formatMetric(-2602.33, "inr")).toBe("-₹2,602.33");
    expect(formatMetric(undefined, "pct")).toBe("—");
    expect(formatMetric(Number.NaN, "ratio")).toBe("—");
  });

  it("finds the best of a row", () => {
    expect(bestIndex([0.1, 0.3, -0.2], "high")).toBe(1);
    expect(bestIndex([-0.31, -0.25], "high")).toBe(1); // max drawdown: the smaller loss
    expect(bestIndex([431, 488], "low")).toBe(0);
    expect(bestIndex([0.1, undefined], "high")).toBeNull();
    expect(bestIndex([0.1, 0.2], undefined)).toBeNull();
  });
});
