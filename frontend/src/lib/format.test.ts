// @vitest-environment node
import { describe, expect, it } from "vitest";
import { formatINR, formatPrice, signClass } from "./format";

describe("formatINR", () => {
  it("groups rupees the Indian way with two decimals", () => {
    expect(formatINR("1234567.5")).toBe("₹12,34,567.50");
    expect(formatINR("100000")).toBe("₹1,00,000.00");
    expect(formatINR("0")).toBe("₹0.00");
  });

  it("formats negative amounts", () => {
    expect(formatINR("-2500.25")).toBe("-₹2,500.25");
  });

  it("keeps every digit of amounts beyond float precision", () => {
    // 12345678901234567.89 is not representable as a double; the string path keeps it exact
    expect(formatINR("12345678901234567.89")).toBe("₹12,34,56,78,90,12,34,567.89");
  });

  it("shows a dash for missing amounts", () => {
    expect(formatINR(null)).toBe("—");
    expect(formatINR(undefined)).toBe("—");
    expect(formatINR("")).toBe("—");
  });
});

describe("formatPrice and signClass", () => {
  it("formats prices with up to four decimals", () => {
    expect(formatPrice("1500.05")).toBe("1,500.05");
    expect(formatPrice("0.0025")).toBe("0.0025");
  });

  it("classes P&L by sign without parsing to float", () => {
    expect(signClass("-0.01")).toBe("neg");
    expect(signClass("0.00")).toBe("");
    expect(signClass("12.5")).toBe("pos");
  });
});
