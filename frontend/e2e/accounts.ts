/** Known credentials for the e2e backend (>= 10 characters, not containing the username). */
export const ACCOUNTS = {
  admin: { username: "admin", password: "e2e-Root-pass-1" },
  trader: { username: "trader", password: "e2e-Desk-pass-2" },
  viewer: { username: "viewer", password: "e2e-Read-pass-3" },
} as const;

export type Who = keyof typeof ACCOUNTS;

/** Deposited for the trader before the tests start. */
export const TRADER_FUNDS = "1000000.00";
