/** Instrument picker: type a symbol, name or ISIN; arrows + Enter choose (ARIA combobox). */
import { useEffect, useId, useState } from "react";
import { useInstrumentSearch } from "../api/queries";

export function SymbolSearch({
  value,
  onChange,
  label = "Symbol",
  autoFocus,
}: {
  value: string;
  onChange: (ref: string) => void;
  label?: string;
  autoFocus?: boolean;
}) {
  const [text, setText] = useState(value);
  const [debounced, setDebounced] = useState(value);
  const [open, setOpen] = useState(false);
  const [active, setActive] = useState(0);
  const id = useId();
  const search = useInstrumentSearch(open ? debounced : "");
  const items = search.data?.items ?? [];

  useEffect(() => setText(value), [value]);
  useEffect(() => {
    const t = setTimeout(() => setDebounced(text), 200);
    return () => clearTimeout(t);
  }, [text]);

  const choose = (ref: string) => {
    setText(ref);
    setOpen(false);
    onChange(ref);
  };

  return (
    <div className="combo">
      <label htmlFor={`${id}-input`}>{label}</label>
      <input
        id={`${id}-input`}
        role="combobox"
        aria-expanded={open && items.length > 0}
        aria-controls={`${id}-list`}
        aria-activedescendant={open && items[active] ? `${id}-opt-${active}` : undefined}
        autoComplete="off"
        autoFocus={autoFocus}
        placeholder="NSE:INFY, Infosys, ISIN…"
        value={text}
        onChange={(e) => {
          setText(e.target.value);
          setOpen(true);
          setActive(0);
        }}
        onFocus={() => setOpen(true)}
        onBlur={() => setTimeout(() => setOpen(false), 150)}
        onKeyDown={(e) => {
          if (e.key === "ArrowDown") {
            e.preventDefault();
            setOpen(true);
            setActive((a) => Math.min(a + 1, Math.max(items.length - 1, 0)));
          } else if (e.key === "ArrowUp") {
            e.preventDefault();
            setActive((a) => Math.max(a - 1, 0));
          } else if (e.key === "Enter" && open && items[active]) {
            e.preventDefault();
            choose(items[active].ref);
          } else if (e.key === "Escape") {
            setOpen(false);
          }
        }}
      />
      {open && items.length > 0 && (
        <ul id={`${id}-list`} role="listbox" className="combo-list">
          {items.map((item, i) => (
            <li
              key={item.ref}
              id={`${id}-opt-${i}`}
              role="option"
              aria-selected={i === active}
              className={i === active ? "active" : ""}
              onMouseDown={(e) => {
                e.preventDefault();
                choose(item.ref);
              }}
            >
              <strong>{item.ref}</strong> <span className="muted">{item.name}</span>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
