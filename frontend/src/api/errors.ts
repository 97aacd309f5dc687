/** The API's error envelope, {"error": {"code", "message", "details"}}, as an Error. */

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;

  constructor(status: number, code: string, message: string, details?: unknown) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

interface Envelope {
  error?: { code?: unknown; message?: unknown; details?: unknown };
  detail?: unknown;
}

/** Build an ApiError from a failed response's parsed body (whatever shape it has). */
export function toApiError(status: number, body: unknown): ApiError {
  const env = (body ?? {}) as Envelope;
  if (env.error && typeof env.error.message === "string") {
    const code = typeof env.error.code === "string" ? env.error.code : `HTTP_${status}`;
    return new ApiError(status, code, env.error.message, env.error.details);
  }
  if (typeof body === "string" && body.trim()) {
    return new ApiError(status, `HTTP_${status}`, body.trim().slice(0, 300));
  }
  return new ApiError(status, `HTTP_${status}`, `The server answered HTTP ${status}.`);
}

/** A sentence for any thrown value: the envelope's message, plus the code for support. */
export function errorMessage(error: unknown): string {
  if (error instanceof ApiError) {
    const details = detailText(error.details);
    return `${error.message}${details ? ` (${details})` : ""} [${error.code}]`;
  }
  if (error instanceof TypeError) return `Cannot reach the server: ${error.message}`;
  if (error instanceof Error) return error.message;
  return String(error);
}

function detailText(details: unknown): string {
  // VALIDATION_ERROR carries FastAPI's list of {loc, msg}; show the first few in words.
  if (Array.isArray(details)) {
    return details
      .slice(0, 3)
      .map((d) => {
        // FastAPI's {loc, msg}, the envelope's {loc, message}, or the backtests' {field, message}
        const item = d as { loc?: unknown[]; field?: unknown; msg?: unknown; message?: unknown };
        const loc = Array.isArray(item.loc)
          ? item.loc.filter((x) => x !== "body").join(".")
          : typeof item.field === "string"
            ? item.field
            : "";
        const msg = typeof item.msg === "string" ? item.msg : typeof item.message === "string" ? item.message : "";
        return [loc, msg].filter(Boolean).join(": ");
      })
      .filter(Boolean)
      .join("; ");
  }
  // RISK_* refusals carry {limit, value, allowed}
  if (details && typeof details === "object") {
    const d = details as { limit?: unknown; value?: unknown; allowed?: unknown };
    if (typeof d.limit === "string") {
      const parts = [`limit ${d.limit}`];
      if (d.value != null) parts.push(`value ${String(d.value)}`);
      if (d.allowed != null) parts.push(`allowed ${Array.isArray(d.allowed) ? d.allowed.join(", ") : String(d.allowed)}`);
      return parts.join(", ");
    }
  }
  return "";
}
