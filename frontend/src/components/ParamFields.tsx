/** The inputs of a strategy's parameters, generated from its params_schema (lib/paramsForm.ts). */
import { useId } from "react";
import { boundsText, inputAttributes, type ParamField } from "../lib/paramsForm";

export function ParamFields({
  fields,
  values,
  errors,
  onChange,
}: {
  fields: ParamField[];
  values: Record<string, string>;
  /** the browser's checks and the API's refusals, per parameter name */
  errors: Record<string, string | undefined>;
  onChange: (name: string, value: string) => void;
}) {
  const id = useId();
  if (fields.length === 0) return <p className="muted small">This strategy takes no parameters.</p>;
  return (
    <div className="form-grid">
      {fields.map((f) => {
        const inputId = `${id}-${f.name}`;
        const helpId = `${inputId}-help`;
        const errorId = `${inputId}-error`;
        const error = errors[f.name];
        const value = values[f.name] ?? "";
        const described = [helpId, error ? errorId : ""].filter(Boolean).join(" ");
        const bounds = boundsText(f);
        const help = (
          <small id={helpId} className="help">
            {f.description}
            {f.description && bounds ? " " : ""}
            {bounds && <span className="muted">({bounds}{f.hasDefault ? `; default ${f.defaultText || "none"}` : ""})</span>}
          </small>
        );
        const errorText = error ? (
          <p id={errorId} className="field-error" role="alert">
            {error}
          </p>
        ) : null;
        if (f.kind === "boolean") {
          return (
            <div key={f.name} className="field">
              <label className="check" htmlFor={inputId}>
                <input
                  id={inputId}
                  type="checkbox"
                  checked={value === "true"}
                  aria-describedby={described}
                  onChange={(e) => onChange(f.name, e.target.checked ? "true" : "false")}
                />
                {f.label}
              </label>
              {help}
              {errorText}
            </div>
          );
        }
        return (
          <div key={f.name} className="field">
            <label htmlFor={inputId}>{f.label}</label>
            {f.kind === "enum" ? (
              <select
                id={inputId}
                value={value}
                aria-invalid={!!error}
                aria-describedby={described}
                onChange={(e) => onChange(f.name, e.target.value)}
              >
                {(!f.hasDefault || f.nullable) && <option value="">—</option>}
                {f.options?.map((o) => (
                  <option key={String(o)} value={String(o)}>
                    {String(o)}
                  </option>
                ))}
              </select>
            ) : (
              <input
                id={inputId}
                name={f.name}
                {...inputAttributes(f)}
                required={f.required}
                value={value}
                placeholder={f.nullable ? "none" : undefined}
                aria-invalid={!!error}
                aria-describedby={described}
                onChange={(e) => onChange(f.name, e.target.value)}
              />
            )}
            {help}
            {errorText}
          </div>
        );
      })}
    </div>
  );
}
