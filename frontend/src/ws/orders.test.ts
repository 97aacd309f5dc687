import { QueryClient } from "@tanstack/react-query";
import { describe, expect, it, vi } from "vitest";
import { applyAccountFrame } from "./StreamProvider";
import { orderToast } from "./orders";

const order = (status: string, reason: string | null) => ({
  type: "order",
  id: "a".repeat(32),
  side: "BUY" as const,
  quantity: 1200,
  symbol: "NSE:INFY",
  status: status as "CANCELLED",
  reason,
});

describe("order toasts", () => {
  it("say why an order was rejected, cancelled or expired", () => {
    expect(orderToast(order("REJECTED", "RISK_KILL_SWITCH: trading is halted"))).toEqual({
      kind: "error",
      text: "Order rejected: BUY 1,200 NSE:INFY (RISK_KILL_SWITCH: trading is halted)",
    });
    expect(orderToast(order("CANCELLED", "margin shortfall: the fill is not covered by funds"))).toEqual({
      kind: "info",
      text: "Order cancelled: BUY 1,200 NSE:INFY (margin shortfall: the fill is not covered by funds)",
    });
    expect(orderToast(order("EXPIRED", "DAY order: the session closed"))?.text).toBe(
      "Order expired: BUY 1,200 NSE:INFY (DAY order: the session closed)",
    );
    // no reason (an older server): the toast as before
    expect(orderToast(order("CANCELLED", null))?.text).toBe("Order cancelled: BUY 1,200 NSE:INFY");
  });

  it("are not raised for orders still working or filled", () => {
    for (const status of ["NEW", "OPEN", "PARTIALLY_FILLED", "FILLED"]) {
      expect(orderToast(order(status, "accepted"))).toBeNull();
    }
    expect(orderToast(undefined)).toBeNull();
  });

  it("come from the orders channel's frames", () => {
    const toast = vi.fn();
    const frame = { type: "order", channel: "orders", data: order("CANCELLED", "kill switch: desk closed") };
    applyAccountFrame(new QueryClient(), frame, toast);
    expect(toast).toHaveBeenCalledWith("info", "Order cancelled: BUY 1,200 NSE:INFY (kill switch: desk closed)");
  });
});
