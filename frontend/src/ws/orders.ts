/**
 * Order frames on the `orders` channel carry the order as GET /api/v1/orders/{id} shows it,
 * with `reason`: why it is in its status (its last stored transition's reason: "cancelled by
 * user", "margin shortfall: ...", "kill switch: ...", "risk halt: ...", an expiry ...).
 * An order that ends without filling raises a toast that says why.
 */
import type { Order } from "../api/queries";
import type { ToastKind } from "../components/Toasts";
import { formatQty } from "../lib/format";

export interface OrderToast {
  kind: ToastKind;
  text: string;
}

/** The toast for an order frame: rejections, cancellations and expiries, with their reason. */
export function orderToast(order: Partial<Order> | undefined): OrderToast | null {
  const status = order?.status;
  if (status !== "REJECTED" && status !== "CANCELLED" && status !== "EXPIRED") return null;
  const what = `${order?.side ?? ""} ${formatQty(order?.quantity)} ${order?.symbol ?? ""}`.trim();
  const why = order?.reason ? ` (${order.reason})` : "";
  return {
    kind: status === "REJECTED" ? "error" : "info",
    text: `Order ${status.toLowerCase()}: ${what}${why}`,
  };
}
