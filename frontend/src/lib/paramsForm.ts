/**
 * A strategy's parameter form from its `params_schema` (the JSON Schema of a pydantic model):
 * one field per property, with the input kind, bounds, step, default and help text the schema
 * gives, and the same bounds checked in the browser before anything is sent. The API stays the
 * authority: its 422 details are shown next to the fields (see fieldErrors.ts).
 */

export type FieldKind = "integer" | "number" | "boolean" | "string" | "enum" | "json";

export interface ParamField {
  name: string;
  label: string;
  kind: FieldKind;
  description?: string;
  /** The default as the form's text ("" when there is none) */
  defaultText: string;
  hasDefault: boolean;
  /** a null is accepted (anyOf [..., {type: null}]) */
  nullable: boolean;
  required: boolean;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  multipleOf?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  options?: (string | number | boolean)[];
}

type Schema = Record<string, unknown>;

const isObject = (v: unknown): v is Schema => typeof v === "object" && v !== null && !Array.isArray(v);
const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

/** Resolve a local "#/$defs/Name" reference against the root schema. */
function deref(node: Schema, root: Schema): Schema {
  const ref = node.$ref;
  if (typeof ref !== "string" || !ref.startsWith("#/")) return node;
  let target: unknown = root;
  for (const part of ref.slice(2).split("/")) target = isObject(target) ? target[part] : undefined;
  return isObject(target) ? { ...target, ...Object.fromEntries(Object.entries(node).filter(([k]) => k !== "$ref")) } : node;
}

function kindOf(node: Schema): FieldKind {
  if (Array.isArray(node.enum)) return "enum";
  if ("const" in node) return "enum";
  switch (node.type) {
    case "integer":
      return "integer";
    case "number":
      return "number";
    case "boolean":
      return "boolean";
    case "string":
      return "string";
    default:
      return "json";
  }
}

function defaultText(value: unknown, kind: FieldKind): string {
  if (value === undefined || value === null) return "";
  if (kind === "json") return JSON.stringify(value);
  return String(value);
}

/** The fields of a params_schema, in the schema's property order. */
export function fieldsFromSchema(schema: unknown): ParamField[] {
  if (!isObject(schema) || !isObject(schema.properties)) return [];
  const required = new Set(Array.isArray(schema.required) ? schema.required.map(String) : []);
  return Object.entries(schema.properties).map(([name, raw]) => {
    let node = deref(isObject(raw) ? raw : {}, schema);
    let nullable = false;
    // Optional[X]: anyOf [X, {type: null}]
    const union = Array.isArray(node.anyOf) ? node.anyOf : Array.isArray(node.oneOf) ? node.oneOf : null;
    if (union) {
      const parts = union.filter(isObject).map((p) => deref(p, schema));
      nullable = parts.some((p) => p.type === "null");
      const rest = parts.filter((p) => p.type !== "null");
      const { anyOf: _a, oneOf: _o, ...outer } = node;
      node = rest.length === 1 ? { ...rest[0], ...outer } : { ...outer, type: undefined };
    }
    const kind = kindOf(node);
    const hasDefault = "default" in node;
    return {
      name,
      label: typeof node.title === "string" ? node.title : name,
      kind,
      description: typeof node.description === "string" ? node.description : undefined,
      defaultText: hasDefault ? defaultText(node.default, kind) : "",
      hasDefault,
      nullable,
      required: required.has(name) && !hasDefault,
      minimum: num(node.minimum),
      maximum: num(node.maximum),
      exclusiveMinimum: num(node.exclusiveMinimum),
      exclusiveMaximum: num(node.exclusiveMaximum),
      multipleOf: num(node.multipleOf),
      minLength: num(node.minLength),
      maxLength: num(node.maxLength),
      pattern: typeof node.pattern === "string" ? node.pattern : undefined,
      options: Array.isArray(node.enum)
        ? (node.enum as (string | number | boolean)[])
        : "const" in node
          ? [node.const as string | number | boolean]
          : undefined,
    };
  });
}

/** The form's starting values: every default, as text. */
export function defaultValues(fields: ParamField[]): Record<string, string> {
  return Object.fromEntries(fields.map((f) => [f.name, f.defaultText]));
}

/** The HTML input attributes a numeric field gets from its bounds. */
export function inputAttributes(f: ParamField): { type: string; min?: number; max?: number; step?: number | "any"; inputMode?: "numeric" | "decimal" } {
  if (f.kind === "integer") {
    return {
      type: "number",
      inputMode: "numeric",
      min: f.minimum ?? (f.exclusiveMinimum !== undefined ? Math.floor(f.exclusiveMinimum) + 1 : undefined),
      max: f.maximum ?? (f.exclusiveMaximum !== undefined ? Math.ceil(f.exclusiveMaximum) - 1 : undefined),
      step: f.multipleOf !== undefined && Number.isInteger(f.multipleOf) ? f.multipleOf : 1,
    };
  }
  if (f.kind === "number") {
    return {
      type: "number",
      inputMode: "decimal",
      min: f.minimum ?? f.exclusiveMinimum,
      max: f.maximum ?? f.exclusiveMaximum,
      step: f.multipleOf ?? "any",
    };
  }
  return { type: "text" };
}

/** A sentence for the bounds, shown under the field ("1 to 5000", "between 0 and 100, exclusive"). */
export function boundsText(f: ParamField): string {
  const lo = f.minimum !== undefined ? `≥ ${f.minimum}` : f.exclusiveMinimum !== undefined ? `> ${f.exclusiveMinimum}` : "";
  const hi = f.maximum !== undefined ? `≤ ${f.maximum}` : f.exclusiveMaximum !== undefined ? `< ${f.exclusiveMaximum}` : "";
  const kind = f.kind === "integer" ? "whole number" : f.kind === "number" ? "number" : "";
  return [kind, lo, hi].filter(Boolean).join(", ");
}

const INT_RE = /^[+-]?\d+$/;
const NUM_RE = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** Why the text is not acceptable for the field, or null when it is. */
export function validateField(f: ParamField, text: string): string | null {
  const t = text.trim();
  if (t === "") {
    if (f.required && !f.nullable) return "Required.";
    return null; // omitted: the strategy's default (or null) applies
  }
  if (f.kind === "integer" || f.kind === "number") {
    if (f.kind === "integer" && !INT_RE.test(t)) return NUM_RE.test(t) ? "Must be a whole number." : "Must be a number.";
    if (!NUM_RE.test(t)) return "Must be a number.";
    const v = Number(t);
    if (!Number.isFinite(v)) return "Must be a finite number.";
    if (f.minimum !== undefined && v < f.minimum) return `Must be at least ${f.minimum}.`;
    if (f.maximum !== undefined && v > f.maximum) return `Must be at most ${f.maximum}.`;
    if (f.exclusiveMinimum !== undefined && v <= f.exclusiveMinimum) return `Must be greater than ${f.exclusiveMinimum}.`;
    if (f.exclusiveMaximum !== undefined && v >= f.exclusiveMaximum) return `Must be less than ${f.exclusiveMaximum}.`;
    if (f.multipleOf !== undefined && f.multipleOf > 0) {
      const q = v / f.multipleOf;
      if (Math.abs(q - Math.round(q)) > 1e-9) return `Must be a multiple of ${f.multipleOf}.`;
    }
    return null;
  }
  if (f.kind === "boolean") return t === "true" || t === "false" ? null : "Must be true or false.";
  if (f.kind === "enum") {
    return f.options?.some((o) => String(o) === t) ? null : `Must be one of ${f.options?.map(String).join(", ")}.`;
  }
  if (f.kind === "string") {
    if (f.minLength !== undefined && t.length < f.minLength) return `At least ${f.minLength} characters.`;
    if (f.maxLength !== undefined && t.length > f.maxLength) return `At most ${f.maxLength} characters.`;
    if (f.pattern) {
      try {
        if (!new RegExp(f.pattern, "u").test(t)) return `Must match ${f.pattern}.`;
      } catch {
        // a pattern JavaScript cannot compile: leave it to the API
      }
    }
    return null;
  }
  try {
    JSON.parse(t);
    return null;
  } catch {
    return "Must be JSON.";
  }
}

/** Every field's problem (only fields with one). */
export function validateParams(fields: ParamField[], values: Record<string, string>): Record<string, string> {
  const errors: Record<string, string> = {};
  for (const f of fields) {
    const e = validateField(f, values[f.name] ?? "");
    if (e) errors[f.name] = e;
  }
  return errors;
}

/** The request's `params`: typed values; an empty field is left out (or null when nullable). */
export function paramsBody(fields: ParamField[], values: Record<string, string>): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const f of fields) {
    const t = (values[f.name] ?? "").trim();
    if (t === "") {
      if (f.nullable && !f.hasDefault) body[f.name] = null;
      continue;
    }
    switch (f.kind) {
      case "integer":
      case "number":
        // not money: strategy parameters are plain JSON numbers in the schema
        body[f.name] = NUM_RE.test(t) ? Number(t) : t;
        break;
      case "boolean":
        body[f.name] = t === "true";
        break;
      case "enum": {
        const match = f.options?.find((o) => String(o) === t);
        body[f.name] = match ?? t;
        break;
      }
      case "json":
        try {
          body[f.name] = JSON.parse(t);
        } catch {
          body[f.name] = t;
        }
        break;
      default:
        body[f.name] = t;
    }
  }
  return body;
}
