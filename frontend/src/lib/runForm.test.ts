import { describe, expect, it } from "vitest";
import { ApiError } from "../api/errors";
import { fieldErrors } from "./fieldErrors";
import { backtestBody, deploymentBody, validateRun, type RunForm } from "./runForm";
import { lockedDown, titleOf } from "./tearsheet";

const form = (overrides: Partial<RunForm> = {}): RunForm => ({
  symbols: ["NSE:INFY"],
  interval: "1d",
  start: "2024-01-01",
  end: "2024-12-31",
  cash: "1000000",
  costs: "bps",
  bps: "3",
  slippage: "",
  engine: "event",
  seed: "0",
  benchmark: "",
  ...overrides,
});

describe("run fields", () => {
  it("accepts a good form and builds the exact body, money as decimal strings", () => {
    expect(validateRun(form(), { vectorized: true })).toEqual({});
    expect(backtestBody("sma_cross", form({ cash: "2500000.50", slippage: "1.5", benchmark: "nse:nifty50" }), { fast: 5 })).toEqual({
      strategy: "sma_cross",
      symbols: ["NSE:INFY"],
      interval: "1d",
      start: "2024-01-01",
      end: "2024-12-31",
      params: { fast: 5 },
      cash: "2500000.50",
      costs: "bps:3",
      slippage_bps: "1.5",
      engine: "event",
      seed: 0,
      benchmark: "NSE:NIFTY50",
    });
    expect(backtestBody("x", form({ costs: "india" }), {}).costs).toBe("india");
    expect(deploymentBody(form({ interval: "5m" }), { fast: 3 })).toEqual({ symbols: ["NSE:INFY"], interval: "5m", params: { fast: 3 } });
  });

  it("checks what BacktestIn checks", () => {
    expect(
      validateRun(
        form({ symbols: [], start: "2024-13-01", cash: "0", bps: "2000", slippage: "x", engine: "vector", seed: "-1", benchmark: "nifty" }),
        { vectorized: false },
      ),
    ).toEqual({
      symbols: "Choose at least one symbol.",
      start: "A date, YYYY-MM-DD.",
      cash: "Must be more than 0.",
      costs: "Costs must be at most 1000 bps.",
      slippage_bps: "Slippage must be a number of basis points (0 to 1000).",
      engine: "This strategy has no vectorized form.",
      seed: "A whole number from 0 to 2147483647.",
      benchmark: "EXCHANGE:SYMBOL, e.g. NSE:NIFTY50.",
    });
    expect(validateRun(form({ start: "2025-01-01", end: "2024-01-01" }), { vectorized: true })).toEqual({ end: "The end is before the start." });
    expect(validateRun(form({ cash: "1e6" }), { vectorized: true }).cash).toMatch(/Rupees/);
    expect(validateRun(form({ cash: "1000000000000.01" }), { vectorized: true }).cash).toBe("At most ₹10^12.");
    // a deployment takes only symbols, interval and params
    expect(validateRun(form({ cash: "0", start: "bad" }), { vectorized: false, deploy: true })).toEqual({});
  });
});

describe("the API's refusals per field", () => {
  it("maps the three detail shapes and the field-naming codes", () => {
    expect(
      fieldErrors(
        new ApiError(422, "VALIDATION_ERROR", "Request validation failed.", [
          { loc: ["body", "interval"], message: "Input should be '1m', ..." },
          { loc: ["body", "params", "fast"], msg: "bad" },
        ]),
      ),
    ).toEqual({ interval: "Input should be '1m', ...", "params.fast": "bad" });
    expect(
      fieldErrors(
        new ApiError(422, "BACKTEST_BAD_REQUEST", "cash: Input should be greater than 0", [
          { field: "cash", message: "Input should be greater than 0", type: "greater_than" },
          { field: "costs", message: "Value error, costs must be 'india' or 'bps:N'", type: "value_error" },
        ]),
      ),
    ).toEqual({ cash: "Input should be greater than 0", costs: "Value error, costs must be 'india' or 'bps:N'" });
    expect(
      fieldErrors(
        new ApiError(422, "STRATEGY_BAD_PARAMS", "bad parameters", {
          errors: [{ loc: ["fast"], msg: "Input should be greater than or equal to 1", type: "greater_than_equal" }],
        }),
      ),
    ).toEqual({ "params.fast": "Input should be greater than or equal to 1" });
    expect(fieldErrors(new ApiError(422, "BACKTEST_NO_DATA", "no 1d bars for NSE:INFY"))).toEqual({ symbols: "no 1d bars for NSE:INFY" });
    expect(fieldErrors(new ApiError(422, "BACKTEST_VECTOR_UNSUPPORTED", "no vector"))).toEqual({ engine: "no vector" });
    expect(fieldErrors(new Error("x"))).toEqual({});
  });
});

describe("tearsheet", () => {
  it("gets a script-free CSP before anything else in its head, and its title", () => {
    const html = '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>sma_cross on NSE:INFY &amp; co</title></head><body></body></html>';
    const out = lockedDown(html);
    expect(out).toMatch(/^<!DOCTYPE html>\n<html lang="en">\n<head><meta http-equiv="Content-Security-Policy" content="default-src 'none';/);
    expect(out).toContain("<title>sma_cross");
    expect(lockedDown("<p>bare</p>")).toMatch(/^<meta http-equiv="Content-Security-Policy"[^>]*><p>bare<\/p>$/);
    expect(titleOf(html)).toBe("sma_cross on NSE:INFY & co");
    expect(titleOf("<p>no title</p>")).toBeNull();
  });
});
