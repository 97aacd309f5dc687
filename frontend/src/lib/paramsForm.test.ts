import { describe, expect, it } from "vitest";
import { boundsText, defaultValues, fieldsFromSchema, inputAttributes, paramsBody, validateField, validateParams } from "./paramsForm";

// The params_schema GET /strategies sends for sma_cross and rsi_mean_reversion (pydantic output).
const SMA = {
  additionalProperties: false,
  properties: {
    fast: { default: 10, description: "Bars in the fast moving average.", maximum: 5000, minimum: 1, title: "Fast", type: "integer" },
    slow: { default: 50, description: "Bars in the slow moving average.", maximum: 10000, minimum: 2, title: "Slow", type: "integer" },
  },
  title: "SmaCrossParams",
  type: "object",
};
const RSI = {
  properties: {
    period: { default: 14, maximum: 500, minimum: 2, title: "Period", type: "integer" },
    lower: { default: 30.0, exclusiveMaximum: 100, exclusiveMinimum: 0, title: "Lower", type: "number", description: "Enter below this RSI." },
  },
  type: "object",
};

describe("fieldsFromSchema", () => {
  it("makes one field per property with its kind, bounds, default and help", () => {
    const [fast, slow] = fieldsFromSchema(SMA);
    expect(fast).toMatchObject({
      name: "fast",
      label: "Fast",
      kind: "integer",
      description: "Bars in the fast moving average.",
      defaultText: "10",
      hasDefault: true,
      required: false,
      minimum: 1,
      maximum: 5000,
    });
    expect(slow).toMatchObject({ name: "slow", kind: "integer", minimum: 2, maximum: 10000, defaultText: "50" });
    expect(defaultValues(fieldsFromSchema(SMA))).toEqual({ fast: "10", slow: "50" });
  });

  it("tells integers from numbers and carries exclusive bounds", () => {
    const [period, lower] = fieldsFromSchema(RSI);
    expect(period!.kind).toBe("integer");
    expect(lower).toMatchObject({ kind: "number", exclusiveMinimum: 0, exclusiveMaximum: 100, defaultText: "30" });
    expect(inputAttributes(period!)).toEqual({ type: "number", inputMode: "numeric", min: 2, max: 500, step: 1 });
    expect(inputAttributes(lower!)).toEqual({ type: "number", inputMode: "decimal", min: 0, max: 100, step: "any" });
    expect(boundsText(period!)).toBe("whole number, ≥ 2, ≤ 500");
    expect(boundsText(lower!)).toBe("number, > 0, < 100");
  });

  it("handles optional fields, enums through $defs, booleans, strings and required fields", () => {
    const fields = fieldsFromSchema({
      $defs: { Mode: { enum: ["long", "short"], title: "Mode", type: "string" } },
      properties: {
        stop: { anyOf: [{ type: "number", exclusiveMinimum: 0 }, { type: "null" }], default: null, title: "Stop" },
        mode: { $ref: "#/$defs/Mode", default: "long" },
        trail: { type: "boolean", default: false, title: "Trail" },
        tag: { type: "string", maxLength: 4, title: "Tag" },
        window: { type: "integer", title: "Window" },
      },
      required: ["window"],
      type: "object",
    });
    const byName = Object.fromEntries(fields.map((f) => [f.name, f]));
    expect(byName.stop).toMatchObject({ kind: "number", nullable: true, exclusiveMinimum: 0, defaultText: "" });
    expect(byName.mode).toMatchObject({ kind: "enum", options: ["long", "short"], defaultText: "long" });
    expect(byName.trail).toMatchObject({ kind: "boolean", defaultText: "false" });
    expect(byName.tag).toMatchObject({ kind: "string", maxLength: 4 });
    expect(byName.window).toMatchObject({ kind: "integer", required: true, hasDefault: false });
  });

  it("gives nothing for a schema without properties", () => {
    expect(fieldsFromSchema({ type: "object" })).toEqual([]);
    expect(fieldsFromSchema(null)).toEqual([]);
  });
});

describe("validation mirrors the schema", () => {
  const [fast] = fieldsFromSchema(SMA);
  const [, lower] = fieldsFromSchema(RSI);

  it("integers: whole numbers inside the bounds", () => {
    expect(validateField(fast!, "5")).toBeNull();
    expect(validateField(fast!, "0")).toBe("Must be at least 1.");
    expect(validateField(fast!, "5001")).toBe("Must be at most 5000.");
    expect(validateField(fast!, "2.5")).toBe("Must be a whole number.");
    expect(validateField(fast!, "abc")).toBe("Must be a number.");
    expect(validateField(fast!, "")).toBeNull(); // left out: the default applies
  });

  it("numbers: exclusive bounds", () => {
    expect(validateField(lower!, "0.5")).toBeNull();
    expect(validateField(lower!, "0")).toBe("Must be greater than 0.");
    expect(validateField(lower!, "100")).toBe("Must be less than 100.");
    expect(validateField(lower!, "1e400")).toBe("Must be a finite number.");
  });

  it("required fields and others", () => {
    const fields = fieldsFromSchema({
      properties: {
        window: { type: "integer", multipleOf: 5 },
        tag: { type: "string", minLength: 2, pattern: "^[a-z]+$" },
        side: { enum: ["long", "short"] },
      },
      required: ["window"],
    });
    expect(validateParams(fields, { window: "", tag: "A", side: "up" })).toEqual({
      window: "Required.",
      tag: "At least 2 characters.",
      side: "Must be one of long, short.",
    });
    expect(validateParams(fields, { window: "7", tag: "ab", side: "long" })).toEqual({ window: "Must be a multiple of 5." });
    expect(validateParams(fields, { window: "10", tag: "ab", side: "short" })).toEqual({});
  });
});

describe("paramsBody", () => {
  it("sends typed values, and leaves an empty field to the strategy's default", () => {
    const fields = fieldsFromSchema({
      properties: {
        ...SMA.properties,
        lower: RSI.properties.lower,
        stop: { anyOf: [{ type: "number" }, { type: "null" }], title: "Stop" },
        trail: { type: "boolean", default: false },
        mode: { enum: ["long", "short"], default: "long" },
      },
    });
    expect(paramsBody(fields, { fast: " 5 ", slow: "", lower: "25.5", stop: "", trail: "true", mode: "short" })).toEqual({
      fast: 5,
      lower: 25.5,
      stop: null,
      trail: true,
      mode: "short",
    });
  });
});
