// @vitest-environment node
import { describe, expect, it } from "vitest";
import { add, cmp, dec, isMultipleOf, mulInt, sub, toString } from "./decimal";

describe("decimal", () => {
  it("adds and subtracts exactly", () => {
    expect(toString(add(dec("0.1"), dec("0.2")))).toBe("0.3");
    expect(toString(sub(dec("1500.05"), dec("1499.10")))).toBe("0.95");
    expect(toString(mulInt(sub(dec("1490.00"), dec("1500.05")), 3))).toBe("-30.15");
  });

  it("checks tick multiples exactly", () => {
    expect(isMultipleOf(dec("1500.05"), dec("0.05"))).toBe(true);
    expect(isMultipleOf(dec("1500.03"), dec("0.05"))).toBe(false);
    expect(isMultipleOf(dec("0.3"), dec("0.1"))).toBe(true); // 0.3 % 0.1 !== 0 in floats
  });

  it("compares across scales", () => {
    expect(cmp(dec("10.50"), dec("10.5"))).toBe(0);
    expect(cmp(dec("-1"), dec("0.01"))).toBe(-1);
  });
});
