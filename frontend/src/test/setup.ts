import "@testing-library/jest-dom/vitest";
import { cleanup } from "@testing-library/react";
import { afterEach } from "vitest";
import { loggedOut } from "./http";

afterEach(() => {
  cleanup();
  loggedOut();
  if (typeof localStorage !== "undefined") localStorage.clear();
});
