/**
 * The API's refusal of a backtest or deployment request, as messages per form field, so they
 * can be shown next to the field that caused them. Keys are the request's field names, with
 * strategy parameters as "params.<name>".
 *
 * Shapes handled (see src/quantdesk/backtest/router.py, deploy/router.py):
 * - VALIDATION_ERROR (FastAPI): details = [{loc: ["body", field, ...], message | msg}]
 * - BACKTEST_BAD_REQUEST: details = [{field, message}]
 * - STRATEGY_BAD_PARAMS: details = {errors: [{loc: [param], msg}]}
 * - other codes name one field by their meaning (BACKTEST_BAD_RANGE: the dates, ...)
 */
import { ApiError } from "../api/errors";

const CODE_FIELD: Record<string, string> = {
  BACKTEST_BAD_RANGE: "start",
  BACKTEST_UNKNOWN_SYMBOL: "symbols",
  BACKTEST_DUPLICATE_SYMBOL: "symbols",
  BACKTEST_NO_DATA: "symbols",
  BACKTEST_BAD_BENCHMARK: "benchmark",
  BACKTEST_COSTS_UNAVAILABLE: "costs",
  BACKTEST_VECTOR_UNSUPPORTED: "engine",
  DEPLOYMENT_UNKNOWN_SYMBOL: "symbols",
};

function keyOf(path: unknown[]): string {
  const parts = path.map(String);
  if (parts[0] === "body") parts.shift();
  if (parts[0] === "params" && parts.length > 1) return `params.${parts[1]}`;
  // "symbols.0" -> "symbols"
  return parts[0] ?? "";
}

function put(out: Record<string, string>, key: string, message: string) {
  if (!key || !message) return;
  out[key] = out[key] ? `${out[key]}; ${message}` : message;
}

export function fieldErrors(error: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!(error instanceof ApiError)) return out;
  const details = error.details;
  if (Array.isArray(details)) {
    for (const d of details) {
      if (!d || typeof d !== "object") continue;
      const item = d as { loc?: unknown; field?: unknown; message?: unknown; msg?: unknown };
      const message = typeof item.message === "string" ? item.message : typeof item.msg === "string" ? item.msg : "";
      if (Array.isArray(item.loc)) put(out, keyOf(item.loc), message);
      else if (typeof item.field === "string") put(out, keyOf(item.field.split(".")), message);
    }
    return out;
  }
  if (error.code === "STRATEGY_BAD_PARAMS" && details && typeof details === "object") {
    const errors = (details as { errors?: unknown }).errors;
    if (Array.isArray(errors)) {
      for (const e of errors) {
        const item = (e ?? {}) as { loc?: unknown; msg?: unknown; message?: unknown };
        const message = typeof item.msg === "string" ? item.msg : typeof item.message === "string" ? item.message : "";
        const loc = Array.isArray(item.loc) ? item.loc.map(String) : [];
        put(out, loc.length ? `params.${loc[0]}` : "params", message);
      }
    }
    return out;
  }
  const field = CODE_FIELD[error.code];
  if (field) put(out, field, error.message);
  return out;
}
