import type { Trade } from "../api/queries";
import { formatINR, formatPrice, formatQty, formatTime } from "../lib/format";

export function TradesTable({ trades }: { trades: Trade[] }) {
  return (
    <div className="table-wrap">
      <table>
        <thead>
          <tr>
            <th>Time</th>
            <th>Symbol</th>
            <th>Side</th>
            <th>Product</th>
            <th className="num">Qty</th>
            <th className="num">Price</th>
            <th className="num">Charges</th>
          </tr>
        </thead>
        <tbody>
          {trades.map((t) => (
            <tr key={t.id}>
              <td className="nowrap">{formatTime(t.at)}</td>
              <td>{t.symbol}</td>
              <td className={t.side === "BUY" ? "pos" : "neg"}>{t.side}</td>
              <td>{t.product}</td>
              <td className="num">{formatQty(t.quantity)}</td>
              <td className="num">{formatPrice(t.price)}</td>
              <td className="num">{formatINR(t.fees)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
