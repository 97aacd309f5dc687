import { screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { FakeWebSocket, loggedIn, mockApi, user, wallet } from "../test/http";
import { renderApp } from "../test/render";
import { ledgerCsv } from "./WalletPage";

const entry = (id: number, kind: string, memo: string, amount: string) => ({
  id,
  kind,
  memo,
  ref: `ref-${id}`,
  created_at: `2025-01-3${id}T04:00:00Z`,
  created_by: 1,
  postings: [
    { account: "user:2:cash", currency: "INR", amount },
    { account: "system:bank", currency: "INR", amount: amount.startsWith("-") ? amount.slice(1) : `-${amount}` },
  ],
});

describe("ledger", () => {
  beforeEach(() => FakeWebSocket.reset());

  it("builds CSV rows per posting, quoting memos with commas and quotes", () => {
    const csv = ledgerCsv([entry(1, "DEPOSIT", 'Top-up, "January"', "100000.00")]);
    expect(csv).toBe(
      "entry_id,created_at,kind,memo,ref,account,currency,amount\r\n" +
        '1,2025-01-31T04:00:00Z,DEPOSIT,"Top-up, ""January""",ref-1,user:2:cash,INR,100000.00\r\n' +
        '1,2025-01-31T04:00:00Z,DEPOSIT,"Top-up, ""January""",ref-1,system:bank,INR,-100000.00\r\n',
    );
  });

  it("loads pages with the cursor and filters, and exports the loaded rows", async () => {
    loggedIn();
    const { calls } = mockApi({
      "GET /api/v1/auth/me": () => user("viewer"),
      "GET /api/v1/wallet": () => wallet(),
      "GET /api/v1/wallet/ledger": (req) =>
        req.search.get("cursor") === "9"
          ? { items: [entry(2, "FEE", "brokerage", "-20.00")], next_cursor: null }
          : { items: [entry(1, "DEPOSIT", "seed", "100000.00")], next_cursor: 9 },
    });
    const blobs: Blob[] = [];
    // jsdom has no object URLs: capture the Blob the page hands to the download link
    vi.stubGlobal("URL", Object.assign(URL, {
      createObjectURL: (b: Blob) => {
        blobs.push(b);
        return "blob:x";
      },
      revokeObjectURL: () => {},
    }));
    vi.spyOn(HTMLAnchorElement.prototype, "click").mockImplementation(() => {});
    const ui = userEvent.setup();
    renderApp("/wallet");

    await ui.click(await screen.findByRole("button", { name: "Load more" }));
    await screen.findByText("brokerage");
    await ui.click(screen.getByRole("button", { name: "Export CSV (2)" }));
    const text = await new Promise<string>((resolve) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result));
      reader.readAsText(blobs[0]!);
    });
    expect(text.trim().split("\r\n")).toHaveLength(1 + 4);
    expect(text).toContain("2,2025-01-32T04:00:00Z,FEE,brokerage,ref-2,user:2:cash,INR,-20.00");

    await ui.selectOptions(screen.getByLabelText("Kind"), "FEE");
    await waitFor(() => expect(calls.some((c) => c.search.get("kind") === "FEE")).toBe(true));
  });
});
