/**
 * Feature importance as horizontal bars (plain HTML: no chart library), most important first,
 * each bar's length relative to the largest importance.
 */
import type { FeatureImportance } from "../api/queries";

const value = new Intl.NumberFormat("en-IN", { minimumFractionDigits: 3, maximumFractionDigits: 3 });

export function ImportanceChart({ features, limit = 25, label = "Feature importance chart" }: { features: FeatureImportance[]; limit?: number; label?: string }) {
  const shown = features.slice(0, limit);
  const max = Math.max(0, ...shown.map((f) => (Number.isFinite(f.importance) ? f.importance : 0)));
  return (
    <figure className="bars-figure">
      <ol className="bars" aria-label={label}>
        {shown.map((f) => {
          const v = Number.isFinite(f.importance) ? f.importance : 0;
          const width = max > 0 ? Math.max(0, (v / max) * 100) : 0;
          return (
            <li key={f.feature} className="bar-row" aria-label={`${f.feature}: ${value.format(v)}`}>
              <span className="bar-label mono" title={f.feature}>
                {f.feature}
              </span>
              <span className="bar-track" aria-hidden="true">
                <span className="bar-fill" style={{ width: `${width.toFixed(1)}%` }} />
              </span>
              <span className="bar-value num">{value.format(v)}</span>
            </li>
          );
        })}
      </ol>
      {features.length > shown.length && (
        <figcaption className="muted small">
          The top {shown.length} of {features.length} features.
        </figcaption>
      )}
    </figure>
  );
}
