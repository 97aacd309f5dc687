import { render } from "@testing-library/react";
import { MemoryRouter } from "react-router";
import { AppRoutes, Providers, makeQueryClient } from "../App";
import { FakeWebSocket } from "./http";

/** The whole app at a route, with the real providers, a fresh cache and the fake WebSocket. */
export function renderApp(route = "/") {
  const client = makeQueryClient();
  client.setDefaultOptions({ queries: { ...client.getDefaultOptions().queries, retry: false } });
  return render(
    <MemoryRouter initialEntries={[route]}>
      <Providers client={client} WebSocketImpl={FakeWebSocket as unknown as typeof WebSocket}>
        <AppRoutes />
      </Providers>
    </MemoryRouter>,
  );
}
