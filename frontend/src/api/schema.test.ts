// @vitest-environment node
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";

describe("generated API types", () => {
  it("src/api/schema.d.ts is up to date with openapi.json (run `npm run gen:api`)", () => {
    const out = execFileSync(process.execPath, ["scripts/gen-api.mjs", "--check"], { encoding: "utf8" });
    expect(out).toContain("matches");
  }, 30_000);
});
