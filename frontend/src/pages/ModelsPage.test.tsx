import { fireEvent, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { apiError, FakeWebSocket, instrument, json, loggedIn, mockApi, user } from "../test/http";
import { mlRun, registeredModel, RUN_A, RUN_B, succeededMlRun } from "../test/ml";
import { renderApp } from "../test/render";
import { chartLog, drawn, resetChartLog } from "../test/chartMock";

vi.mock("lightweight-charts", async () => (await import("../test/chartMock")).chartModule);

const page = (items: unknown[]) => ({ items, next_cursor: null });

describe("ModelsPage", () => {
  beforeEach(() => {
    FakeWebSocket.reset();
    resetChartLog();
  });

  it("lists runs with status, version, OOS AUC, net Sharpe and checks; a viewer gets no Train form and no Promote", async () => {
    loggedIn();
    mockApi({
      "GET /api/v1/auth/me": () => user("viewer", 7),
      "GET /api/v1/ml/runs": () =>
        page([
          mlRun({ id: RUN_B, status: "running", progress: { stage: "folds", done: 1, total: 3, fraction: 0.35 } }),
          succeededMlRun({ id: RUN_A }),
        ]),
      "GET /api/v1/ml/models": () => ({ models: [registeredModel({ aliases: { champion: 1 } })] }),
    });
    renderApp("/models");
    expect(await screen.findByRole("link", { name: "Models" })).toHaveAttribute("aria-current", "page");
    const runs = await screen.findByRole("table", { name: "Training runs" });
    const done = within(runs).getByRole("row", { name: /aaaaaaaa/ });
    expect(within(done).getAllByRole("cell").map((c) => c.textContent)).toEqual([
      "demo-xgb aaaaaaaa",
      "xgboost",
      "NSE:INFY, NSE:TCS, NSE:HDFCBANK",
      "1d",
      "succeeded",
      "v1",
      "0.566",
      "-0.47",
      "passed",
      expect.stringMatching(/2026/),
      "",
    ]);
    expect(within(done).getByRole("link", { name: "demo-xgb" })).toHaveAttribute("href", `/models/runs/${RUN_A}`);
    const live = within(runs).getByRole("row", { name: /bbbbbbbb/ });
    expect(within(live).getByRole("progressbar")).toHaveAttribute("aria-valuenow", "35");
    // a viewer cancels nothing
    expect(within(live).queryByRole("button", { name: "Cancel" })).not.toBeInTheDocument();

    const models = await screen.findByRole("group", { name: "Model demo-xgb" });
    expect(models).toHaveTextContent("champion → v1");
    const versions = within(models).getByRole("table", { name: "Versions of demo-xgb" });
    expect(within(versions).getByRole("row", { name: /^v2/ })).toHaveTextContent(/v2—failed0\.5100\.31/);
    expect(within(versions).getByRole("row", { name: /^v1/ })).toHaveTextContent(/v1championpassed0\.566-0\.47/);
    // another user's training run: named, not linked (its page would be 404 for a viewer)
    expect(within(versions).queryByRole("link")).not.toBeInTheDocument();

    expect(screen.queryByRole("form", { name: "Train" })).not.toBeInTheDocument();
    expect(screen.queryByRole("form", { name: /^Promote/ })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Promote" })).not.toBeInTheDocument();
  });

  it("checks the training form in the browser and sends nothing while a field is wrong", async () => {
    loggedIn();
    const { calls } = mockApi({
      "GET /api/v1/auth/me": () => user("trader"),
      "GET /api/v1/ml/runs": () => page([]),
      "GET /api/v1/ml/models": () => ({ models: [] }),
    });
    const ui = userEvent.setup();
    renderApp("/models");
    const form = await screen.findByRole("form", { name: "Train" });
    expect(within(form).getByLabelText("Folds")).toHaveValue(5);
    expect(within(form).getByLabelText("Label")).toHaveValue("forward:5");
    await ui.clear(within(form).getByLabelText("Label"));
    await ui.type(within(form).getByLabelText("Label"), "fwd");
    await ui.clear(within(form).getByLabelText("Folds"));
    await ui.type(within(form).getByLabelText("Folds"), "1");
    await ui.type(within(form).getByLabelText("Name"), "a/b");
    await ui.click(within(form).getByRole("button", { name: "Train" }));
    expect(await within(form).findByText("Choose at least one symbol.")).toBeInTheDocument();
    expect(within(form).getByText(/^forward:H or triple-barrier/)).toBeInTheDocument();
    expect(within(form).getByText("A whole number from 2 to 20.")).toBeInTheDocument();
    expect(within(form).getByText(/^Letters, digits/)).toBeInTheDocument();
    expect(within(form).getByLabelText("Folds")).toHaveAttribute("aria-invalid", "true");
    expect(within(form).getByLabelText("Folds")).toHaveAccessibleDescription("A whole number from 2 to 20.");
    expect(calls.some((c) => c.method === "POST")).toBe(false);
    // fixed: its message goes
    await ui.clear(within(form).getByLabelText("Folds"));
    await ui.type(within(form).getByLabelText("Folds"), "3");
    expect(within(form).queryByText("A whole number from 2 to 20.")).not.toBeInTheDocument();
  });

  it("POSTs the training request and follows the run on its page", async () => {
    loggedIn();
    let posted: unknown = null;
    mockApi({
      "GET /api/v1/auth/me": () => user("trader"),
      "GET /api/v1/ml/runs": () => page([]),
      "GET /api/v1/ml/models": () => ({ models: [] }),
      "GET /api/v1/instruments": (req) => ({
        items: [instrument({ ref: `NSE:${req.search.get("q")!.toUpperCase()}`, symbol: req.search.get("q")!.toUpperCase() })],
      }),
      "POST /api/v1/ml/runs": (req) => {
        posted = req.body;
        return json(mlRun({ request: { ...mlRun().request, symbols: ["NSE:INFY", "NSE:TCS"], name: "e2e-xgb" } }), 202);
      },
      [`GET /api/v1/ml/runs/${RUN_A}`]: () => mlRun({ request: { ...mlRun().request, symbols: ["NSE:INFY", "NSE:TCS"], name: "e2e-xgb" } }),
    });
    const ui = userEvent.setup();
    renderApp("/models");
    const form = await screen.findByRole("form", { name: "Train" });
    for (const q of ["infy", "tcs"]) {
      await ui.type(within(form).getByRole("combobox", { name: "Add symbol" }), q);
      await ui.click(await screen.findByRole("option", { name: new RegExp(`NSE:${q.toUpperCase()}`) }));
    }
    expect(within(form).getByRole("list", { name: "Symbols" })).toHaveTextContent("NSE:INFY×NSE:TCS×");
    fireEvent.change(within(form).getByLabelText("Start"), { target: { value: "2024-01-01" } });
    fireEvent.change(within(form).getByLabelText("End"), { target: { value: "2026-11-30" } });
    fireEvent.change(within(form).getByLabelText("Label"), { target: { value: "forward:1" } });
    fireEvent.change(within(form).getByLabelText("Folds"), { target: { value: "3" } });
    await ui.selectOptions(within(form).getByLabelText("Costs"), "bps");
    fireEvent.change(within(form).getByLabelText("Costs (bps)"), { target: { value: "3" } });
    fireEvent.change(within(form).getByLabelText("Name"), { target: { value: "e2e-xgb" } });
    await ui.click(within(form).getByRole("button", { name: "Train" }));

    await waitFor(() => expect(posted).not.toBeNull());
    expect(posted).toEqual({
      model: "xgboost",
      symbols: ["NSE:INFY", "NSE:TCS"],
      interval: "1d",
      start: "2024-01-01",
      end: "2026-11-30",
      label: "forward:1",
      dead_zone: 0,
      folds: 3,
      trials: 0,
      embargo: 0.01,
      threshold: 0.55,
      costs: "bps:3",
      seed: 0,
      name: "e2e-xgb",
    });
    // the run's page: queued, then its progress and stage from the jobs channel
    const header = await screen.findByRole("region", { name: "Training run" });
    expect(within(header).getByRole("heading")).toHaveTextContent("e2e-xgb · xgboost on NSE:INFY, NSE:TCS");
    expect(header).toHaveTextContent("Waiting for a training worker…");
    const ws = FakeWebSocket.last;
    ws.open();
    ws.receive({ type: "welcome", user_id: 2, heartbeat_seconds: 15 });
    await waitFor(() => expect(ws.sent).toContainEqual({ op: "subscribe", channels: expect.arrayContaining(["jobs"]) }));
    ws.receive({ type: "job", channel: "jobs", data: { type: "job", kind: "ml_train", id: RUN_A, status: "running", progress: 0.6, stage: { stage: "folds", done: 2, total: 3 } } });
    await waitFor(() => expect(within(header).getByRole("progressbar")).toHaveAttribute("aria-valuenow", "60"));
    expect(header).toHaveTextContent("Stage: folds 2/3");
  });

  it("shows the API's refusal next to the field it names", async () => {
    loggedIn();
    mockApi({
      "GET /api/v1/auth/me": () => user("trader"),
      "GET /api/v1/ml/runs": () => page([]),
      "GET /api/v1/ml/models": () => ({ models: [] }),
      "GET /api/v1/instruments": () => ({ items: [instrument()] }),
      "POST /api/v1/ml/runs": () =>
        apiError(422, "ML_BAD_REQUEST", "label: label horizon must be 1..10000 bars", [{ field: "label", message: "label horizon must be 1..10000 bars and barriers positive" }]),
    });
    const ui = userEvent.setup();
    renderApp("/models");
    const form = await screen.findByRole("form", { name: "Train" });
    await ui.type(within(form).getByRole("combobox", { name: "Add symbol" }), "infy");
    await ui.click(await screen.findByRole("option", { name: /NSE:INFY/ }));
    await ui.click(within(form).getByRole("button", { name: "Train" }));
    expect(await within(form).findByText("label horizon must be 1..10000 bars and barriers positive")).toHaveAttribute("id", "train-label-error");
    expect(within(form).getByLabelText("Label")).toHaveAttribute("aria-invalid", "true");
    expect(form).toHaveTextContent("[ML_BAD_REQUEST]");
  });

  it("moves a run's progress bar with the jobs channel and re-reads the models when it succeeds", async () => {
    loggedIn();
    let finished = false;
    const { calls } = mockApi({
      "GET /api/v1/auth/me": () => user("trader"),
      "GET /api/v1/ml/runs": () => page([finished ? succeededMlRun() : mlRun({ status: "running", progress: { stage: "features", done: 1, total: 3, fraction: 0.1 } })]),
      "GET /api/v1/ml/models": () => ({ models: finished ? [registeredModel()] : [] }),
    });
    renderApp("/models");
    const runs = await screen.findByRole("table", { name: "Training runs" });
    const row = within(runs).getByRole("row", { name: /aaaaaaaa/ });
    expect(within(row).getByRole("progressbar")).toHaveAttribute("aria-valuenow", "10");
    expect(within(row).getByRole("button", { name: "Cancel" })).toBeInTheDocument(); // the owner
    expect(await screen.findByText(/No registered models yet/)).toBeInTheDocument();

    const ws = FakeWebSocket.last;
    ws.open();
    ws.receive({ type: "welcome", user_id: 2, heartbeat_seconds: 15 });
    await waitFor(() => expect(ws.sent).toContainEqual({ op: "subscribe", channels: expect.arrayContaining(["jobs"]) }));
    const frame = (data: Record<string, unknown>) => ({ type: "job", channel: "jobs", data: { type: "job", kind: "ml_train", id: RUN_A, ...data } });
    ws.receive(frame({ status: "running", progress: 0.55, stage: { stage: "folds", done: 2, total: 3 } }));
    await waitFor(() => expect(within(row).getByRole("progressbar")).toHaveAttribute("aria-valuenow", "55"));

    finished = true;
    const modelReads = calls.filter((c) => c.path === "/api/v1/ml/models").length;
    ws.receive(frame({ status: "succeeded", progress: 1, result: { run_id: "x", model_name: "demo-xgb", version: 1 } }));
    expect(await screen.findByText("Training finished: demo-xgb v1")).toBeInTheDocument();
    await waitFor(() => expect(within(row).queryByRole("progressbar")).not.toBeInTheDocument());
    await waitFor(() => expect(row).toHaveTextContent("0.566"));
    await waitFor(() => expect(calls.filter((c) => c.path === "/api/v1/ml/models").length).toBeGreaterThan(modelReads));
    expect(await screen.findByRole("group", { name: "Model demo-xgb" })).toBeInTheDocument();
  });

  it("lets an admin promote a version, and shows the API's refusal code", async () => {
    loggedIn();
    let aliases: Record<string, number> = {};
    const bodies: unknown[] = [];
    mockApi({
      "GET /api/v1/auth/me": () => user("admin", 1),
      "GET /api/v1/ml/runs": () => page([]),
      "GET /api/v1/ml/models": () => ({ models: [registeredModel({ aliases })] }),
      "POST /api/v1/ml/models/demo-xgb/promote": (req) => {
        bodies.push(req.body);
        const { version, alias } = req.body as { version: number; alias: string };
        if (version === 2) {
          return apiError(409, "ML_CHECKS_FAILED", "demo-xgb v2 failed its checks (see GET /ml/models); it cannot take an alias", { name: "demo-xgb", version: 2 });
        }
        aliases = { ...aliases, [alias]: version };
        return { name: "demo-xgb", alias, version, previous_version: null };
      },
    });
    const ui = userEvent.setup();
    renderApp("/models");
    const promote = await screen.findByRole("form", { name: "Promote demo-xgb" });
    // the newest version is preselected; it failed its checks
    expect(within(promote).getByLabelText(/Version/)).toHaveValue("2");
    expect(promote).toHaveTextContent("This version failed its checks");
    await ui.click(within(promote).getByRole("button", { name: "Promote" }));
    const refusal = await within(promote).findByRole("alert");
    expect(refusal).toHaveTextContent("demo-xgb v2 failed its checks");
    expect(refusal).toHaveTextContent("[ML_CHECKS_FAILED]");
    expect(await screen.findByText(/Promote refused: .*\[ML_CHECKS_FAILED\]/)).toBeInTheDocument();

    await ui.selectOptions(within(promote).getByLabelText(/Version/), "1");
    await ui.selectOptions(within(promote).getByLabelText(/Alias/), "challenger");
    expect(within(promote).queryByRole("alert")).not.toBeInTheDocument();
    await ui.click(within(promote).getByRole("button", { name: "Promote" }));
    expect(await screen.findByText("demo-xgb v1 is now challenger")).toBeInTheDocument();
    expect(bodies).toEqual([
      { version: 2, alias: "champion" },
      { version: 1, alias: "challenger" },
    ]);
    const group = screen.getByRole("group", { name: "Model demo-xgb" });
    await waitFor(() => expect(group).toHaveTextContent("challenger → v1"));
    expect(within(within(group).getByRole("table")).getByRole("row", { name: /^v1/ })).toHaveTextContent("challenger");
  });

  it("says clearly when the server has no ML extra (503 ML_EXTRA_MISSING)", async () => {
    loggedIn();
    const extra = () =>
      apiError(503, "ML_EXTRA_MISSING", "xgboost, mlflow not installed: pip install 'quantdesk[ml]'", {
        missing: ["xgboost", "mlflow"],
        pip: "pip install 'quantdesk[ml]'",
      });
    const { calls } = mockApi({
      "GET /api/v1/auth/me": () => user("trader"),
      "GET /api/v1/ml/runs": () => page([]),
      "GET /api/v1/ml/models": extra,
      "GET /api/v1/instruments": () => ({ items: [instrument()] }),
      "POST /api/v1/ml/runs": extra,
    });
    const ui = userEvent.setup();
    renderApp("/models");
    const models = await screen.findByRole("region", { name: "Registered models" });
    const banner = await within(models).findByRole("alert");
    expect(banner).toHaveTextContent("Machine learning is not available on this server.");
    expect(banner).toHaveTextContent("pip install 'quantdesk[ml]'");
    expect(banner).toHaveTextContent("[ML_EXTRA_MISSING]");
    expect(calls.filter((c) => c.path === "/api/v1/ml/models")).toHaveLength(1); // a 503 of this kind is not retried

    const form = screen.getByRole("form", { name: "Train" });
    await ui.type(within(form).getByRole("combobox", { name: "Add symbol" }), "infy");
    await ui.click(await screen.findByRole("option", { name: /NSE:INFY/ }));
    await ui.click(within(form).getByRole("button", { name: "Train" }));
    expect(await within(form).findByText("Machine learning is not available on this server.")).toBeInTheDocument();
  });
});

describe("MlRunPage", () => {
  beforeEach(() => {
    FakeWebSocket.reset();
    resetChartLog();
  });

  it("shows the folds, the checks, the feature importance and the signal backtest's equity", async () => {
    loggedIn();
    const { calls } = mockApi({
      "GET /api/v1/auth/me": () => user("trader"),
      [`GET /api/v1/ml/runs/${RUN_A}`]: () => succeededMlRun({}, false),
      [`GET /api/v1/ml/runs/${RUN_A}/equity`]: () => ({
        run_id: "62776cba",
        points: [
          { time: "2025-10-08T10:00:00Z", equity: "990026.14" },
          { time: "2026-11-30T10:00:00Z", equity: "914360.77" },
        ],
      }),
      [`GET /api/v1/ml/runs/${RUN_A}/importance`]: () => ({
        run_id: "62776cba",
        features: [
          { feature: "macd_signal", importance: 0.1058 },
          { feature: "atr_14", importance: 0.0529 },
        ],
      }),
    });
    renderApp(`/models/runs/${RUN_A}`);
    const header = await screen.findByRole("region", { name: "Training run" });
    expect(within(header).getByText("succeeded")).toBeInTheDocument();
    const summary = within(header).getByLabelText("Out-of-sample summary");
    expect(summary).toHaveTextContent("Registereddemo-xgb v1");
    expect(summary).toHaveTextContent("OOS AUC0.566 ± 0.018");
    expect(summary).toHaveTextContent("Net Sharpe-0.47");
    expect(summary).toHaveTextContent("Total return-8.56%");
    expect(summary).toHaveTextContent("Checksfailed");

    const folds = screen.getByRole("table", { name: "Folds" });
    const rows = within(folds).getAllByRole("row");
    expect(rows).toHaveLength(5); // header, 3 folds, pooled
    expect(within(rows[1]!).getAllByRole("cell").map((c) => c.textContent)).toEqual([
      expect.stringMatching(/30 Jun 2025/),
      expect.stringMatching(/12 Dec 2025/),
      "345",
      "0.616",
      "0.031",
      "58.84%",
      "0.729",
      "0.259",
      "0.214",
      "53.62%",
    ]);
    expect(within(rows[4]!).getByRole("rowheader")).toHaveTextContent("Pooled");
    expect(rows[4]).toHaveTextContent("1034");

    const checks = screen.getByRole("table", { name: "Checks" });
    expect(within(checks).getByRole("row", { name: /lookahead/ })).toHaveTextContent("passed");
    expect(within(checks).getByRole("row", { name: /edge/ })).toHaveTextContent("failedAUC 0.510 vs 0.5 + 2 × SE 0.018");

    const bars = await screen.findByRole("list", { name: "Feature importance chart" });
    const items = within(bars).getAllByRole("listitem");
    expect(items.map((li) => li.getAttribute("aria-label"))).toEqual(["macd_signal: 0.106", "atr_14: 0.053"]);
    expect(items[0]!.querySelector(".bar-fill")).toHaveStyle({ width: "100.0%" });
    expect(items[1]!.querySelector(".bar-fill")).toHaveStyle({ width: "50.0%" });

    await waitFor(() => expect(drawn("Line")).toHaveLength(1));
    expect(drawn("Line")[0]!.data).toEqual([
      { time: Date.parse("2025-10-08T10:00:00Z") / 1000 + 19800, value: 990026.14 },
      { time: Date.parse("2026-11-30T10:00:00Z") / 1000 + 19800, value: 914360.77 },
    ]);
    expect(chartLog.charts).toBe(1);
    expect(calls.find((c) => c.path.endsWith("/equity"))!.search.get("max_points")).toBe("2000");
    expect(screen.getByRole("region", { name: "Run record" })).toHaveTextContent("Data fingerprint2246b7d9fb8c8b99");
  });

  it("shows a failed run's error code and traceback", async () => {
    loggedIn();
    mockApi({
      "GET /api/v1/auth/me": () => user("viewer"),
      [`GET /api/v1/ml/runs/${RUN_A}`]: () =>
        mlRun({
          status: "failed",
          progress: { stage: "features", done: 3, total: 3, fraction: 0.3 },
          error: { code: "ML_TOO_FEW_SAMPLES", message: "40 labelled rows are too few for 3 folds (need 200)", trace: "Traceback (most recent call last): ..." },
        }),
    });
    renderApp(`/models/runs/${RUN_A}`);
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("40 labelled rows are too few for 3 folds (need 200) [ML_TOO_FEW_SAMPLES]");
    expect(within(alert).getByText("Traceback")).toBeInTheDocument();
    expect(screen.queryByRole("table", { name: "Folds" })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Cancel" })).not.toBeInTheDocument();
  });
});
