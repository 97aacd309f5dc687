import { describe, expect, it } from "vitest";
import { mlRun, RUN_A, succeededMlRun } from "../test/ml";
import { applyMlJobEvent, barDays, checkRows, figuresOf, parseMlJobFrame, signalMarks, trainBody, validateTrain, type TrainForm } from "./ml";

const form = (overrides: Partial<TrainForm> = {}): TrainForm => ({
  model: "xgboost",
  symbols: ["NSE:INFY", "NSE:TCS"],
  interval: "1d",
  start: "2024-01-01",
  end: "2024-12-31",
  label: "forward:5",
  folds: "3",
  trials: "0",
  threshold: "0.55",
  costs: "bps",
  bps: "3",
  name: "demo-xgb",
  ...overrides,
});

describe("the training form", () => {
  it("accepts a valid form and builds the exact POST /ml/runs body", () => {
    expect(validateTrain(form())).toEqual({});
    expect(trainBody(form())).toEqual({
      model: "xgboost",
      symbols: ["NSE:INFY", "NSE:TCS"],
      interval: "1d",
      start: "2024-01-01",
      end: "2024-12-31",
      label: "forward:5",
      dead_zone: 0,
      folds: 3,
      trials: 0,
      embargo: 0.01,
      threshold: 0.55,
      costs: "bps:3",
      seed: 0,
      name: "demo-xgb",
    });
    // no name: the server's default (MODEL-INTERVAL); india costs as the word
    const body = trainBody(form({ name: " ", costs: "india" }));
    expect(body).not.toHaveProperty("name");
    expect(body.costs).toBe("india");
  });

  it("refuses what the API refuses, per field", () => {
    expect(validateTrain(form({ symbols: [] }))).toEqual({ symbols: "Choose at least one symbol." });
    expect(validateTrain(form({ symbols: ["NSE:INFY", "NSE:INFY"] })).symbols).toBe("A symbol is listed twice.");
    expect(validateTrain(form({ start: "2024-02-30" })).start).toBe("A date, YYYY-MM-DD.");
    expect(validateTrain(form({ start: "2025-01-01" })).end).toBe("The end is before the start.");
    expect(validateTrain(form({ label: "forward" })).label).toMatch(/^forward:H or triple-barrier/);
    expect(validateTrain(form({ label: "forward:0" })).label).toBe("The horizon must be 1 to 10000 bars.");
    expect(validateTrain(form({ label: "triple-barrier:10:0:2" })).label).toBe("Barriers must be positive.");
    expect(validateTrain(form({ label: "triple-barrier" }))).toEqual({});
    expect(validateTrain(form({ label: "triple-barrier:20:1.5:1" }))).toEqual({});
    expect(validateTrain(form({ folds: "1" })).folds).toBe("A whole number from 2 to 20.");
    expect(validateTrain(form({ folds: "21" })).folds).toBe("A whole number from 2 to 20.");
    expect(validateTrain(form({ folds: "2.5" })).folds).toBe("A whole number from 2 to 20.");
    expect(validateTrain(form({ trials: "501" })).trials).toBe("A whole number from 0 to 500.");
    expect(validateTrain(form({ threshold: "1" })).threshold).toBe("A probability strictly between 0 and 1.");
    expect(validateTrain(form({ threshold: "" })).threshold).toBe("A probability strictly between 0 and 1.");
    expect(validateTrain(form({ bps: "1001" })).costs).toMatch(/0 to 1000/);
    expect(validateTrain(form({ bps: "" })).costs).toMatch(/0 to 1000/);
    expect(validateTrain(form({ name: "my/model" })).name).toMatch(/^Letters, digits/);
    expect(validateTrain(form({ name: "-x" })).name).toMatch(/^Letters, digits/);
    expect(validateTrain(form({ name: "xgb-1d.v2_a" }))).toEqual({});
  });
});

describe("a run's figures", () => {
  it("reads OOS AUC, net Sharpe and the checks from the result", () => {
    expect(figuresOf(mlRun())).toEqual({ checks: null });
    const f = figuresOf(succeededMlRun());
    expect(f).toMatchObject({ version: 1, auc: 0.5657, sharpeNet: -0.4674, trades: 94, checks: "passed" });
    expect(figuresOf(succeededMlRun({}, false)).checks).toBe("failed");
    expect(checkRows(succeededMlRun({}, false).result!.checks)).toEqual([
      { name: "lookahead", passed: true, detail: "no feature reads a later bar" },
      { name: "edge", passed: false, detail: "AUC 0.510 vs 0.5 + 2 × SE 0.018 (auc > 0.5 + 2 se)" },
    ]);
  });
});

describe("ml_train events of the jobs channel", () => {
  const frame = (data: Record<string, unknown>) => ({ channel: "jobs", data: { type: "job", kind: "ml_train", id: RUN_A, ...data } });

  it("ignores backtests' events and parses the stage", () => {
    expect(parseMlJobFrame({ channel: "jobs", data: { kind: "backtest", id: RUN_A, status: "running", progress: 0.5 } })).toBeNull();
    expect(parseMlJobFrame({ channel: "orders", data: { kind: "ml_train", id: RUN_A, status: "running" } })).toBeNull();
    expect(parseMlJobFrame(frame({ status: "running", progress: 0.4, stage: { stage: "folds", done: 1, total: 3 } }))).toMatchObject({
      status: "running",
      fraction: 0.4,
      stage: { stage: "folds", done: 1, total: 3 },
    });
  });

  it("moves a run forward only", () => {
    const running = mlRun({ status: "running", progress: { stage: "folds", done: 1, total: 3, fraction: 0.5 } });
    const later = applyMlJobEvent(running, parseMlJobFrame(frame({ status: "running", progress: 0.7, stage: { stage: "folds", done: 2, total: 3 } }))!);
    expect(later.progress).toEqual({ stage: "folds", done: 2, total: 3, fraction: 0.7 });
    const stale = applyMlJobEvent(later, parseMlJobFrame(frame({ status: "running", progress: 0.2 }))!);
    expect(stale.progress.fraction).toBe(0.7);
    const failed = applyMlJobEvent(later, parseMlJobFrame(frame({ status: "failed", progress: 0.7, error: { code: "ML_TOO_FEW_SAMPLES", message: "too few" } }))!);
    expect(failed).toMatchObject({ status: "failed", error: { code: "ML_TOO_FEW_SAMPLES", message: "too few", trace: null } });
    // a late `running` never revives a finished run
    expect(applyMlJobEvent(failed, parseMlJobFrame(frame({ status: "running", progress: 0.9 }))!)).toBe(failed);
  });
});

describe("signals on the price chart", () => {
  it("marks where the signal turns +1 or −1, with the probability", () => {
    const p = (time: string, signal: number, value: number | null = 0.6) => ({ time, signal, value, model_version: 1 });
    expect(
      signalMarks([
        p("2026-01-01T10:00:00Z", 0),
        p("2026-01-02T10:00:00Z", 1, 0.61),
        p("2026-01-03T10:00:00Z", 1),
        p("2026-01-04T10:00:00Z", -1, null),
        p("2026-01-05T10:00:00Z", 0),
        p("2026-01-06T10:00:00Z", -1, 0.2),
      ]),
    ).toEqual([
      { at: "2026-01-02T10:00:00Z", signal: 1, value: 0.61 },
      { at: "2026-01-04T10:00:00Z", signal: -1, value: null },
      { at: "2026-01-06T10:00:00Z", signal: -1, value: 0.2 },
    ]);
  });

  it("asks for the UTC days of the bars shown", () => {
    expect(barDays([])).toEqual({ start: "", end: "" });
    expect(barDays([{ time: Date.parse("2026-01-01T03:45:00Z") / 1000 }, { time: Date.parse("2026-02-03T09:45:00Z") / 1000 }])).toEqual({
      start: "2026-01-01",
      end: "2026-02-03",
    });
  });
});
