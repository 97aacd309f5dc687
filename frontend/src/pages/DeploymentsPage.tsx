/**
 * Deployments: strategies running on the paper broker as their owner. The list, with pause /
 * resume / stop for the owner or an admin; one deployment's activity (its fills, charges,
 * realised / unrealised / total P&L and positions), re-read every 5 s and on `orders`/`trades`
 * frames.
 */
import { Link, useParams } from "react-router";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { api, unwrap } from "../api/client";
import { errorMessage } from "../api/errors";
import { keys, useDeployment, useDeploymentActivity, useDeployments, type Deployment, type DeploymentActivity } from "../api/queries";
import { useAuth } from "../auth/AuthContext";
import { Empty, ErrorBox, Loading } from "../components/States";
import { useToast } from "../components/Toasts";
import { paramsText } from "../lib/backtests";
import { formatINR, formatPrice, formatQty, formatTime, signClass } from "../lib/format";

type Action = "pause" | "resume" | "stop";

function useDeploymentAction() {
  const queryClient = useQueryClient();
  const toast = useToast();
  return useMutation({
    mutationFn: ({ id, action }: { id: string; action: Action }) => {
      const params = { path: { deployment_id: id } };
      if (action === "pause") return unwrap(api.POST("/api/v1/deployments/{deployment_id}/pause", { params }));
      if (action === "resume") return unwrap(api.POST("/api/v1/deployments/{deployment_id}/resume", { params }));
      return unwrap(api.POST("/api/v1/deployments/{deployment_id}/stop", { params }));
    },
    onSuccess: (d, { action }) => {
      queryClient.setQueryData(keys.deployment(d.id), d);
      void queryClient.invalidateQueries({ queryKey: keys.deploymentList });
      toast("info", `${d.strategy}: ${action === "stop" ? "stopped" : action === "pause" ? "paused" : "resumed"}`);
    },
    onError: (error, { action }) => toast("error", `Could not ${action}: ${errorMessage(error)}`),
  });
}

function DeploymentActions({ deployment }: { deployment: Deployment }) {
  const { user, canTrade, isAdmin } = useAuth();
  const act = useDeploymentAction();
  if (!canTrade || !(isAdmin || deployment.user_id === user?.id)) return null;
  const d = deployment;
  const ended = d.status === "stopped" || d.status === "failed";
  if (ended) return null;
  const label = `${d.strategy} ${d.id.slice(0, 8)}`;
  return (
    <span className="nowrap row-buttons">
      {d.status === "running" && (
        <button type="button" className="small" disabled={act.isPending} aria-label={`Pause ${label}`} onClick={() => act.mutate({ id: d.id, action: "pause" })}>
          Pause
        </button>
      )}
      {d.status === "paused" && (
        <button type="button" className="small" disabled={act.isPending} aria-label={`Resume ${label}`} onClick={() => act.mutate({ id: d.id, action: "resume" })}>
          Resume
        </button>
      )}
      <button
        type="button"
        className="small danger"
        disabled={act.isPending}
        aria-label={`Stop ${label}`}
        onClick={() => {
          if (window.confirm(`Stop ${d.strategy} for good? It sends no more orders; open positions stay.`)) act.mutate({ id: d.id, action: "stop" });
        }}
      >
        Stop
      </button>
    </span>
  );
}

function DeploymentStatus({ status }: { status: Deployment["status"] }) {
  return <span className={`status status-dep-${status}`}>{status}</span>;
}

export function DeploymentsPage() {
  const { id } = useParams();
  return id ? <DeploymentDetail idOrPrefix={id} /> : <DeploymentList />;
}

function DeploymentList() {
  const list = useDeployments();
  const { user } = useAuth();
  const items = list.data?.items ?? [];
  const others = items.some((d) => d.user_id !== user?.id);
  return (
    <section className="card" aria-label="Deployments">
      <div className="toolbar">
        <h2>Deployments</h2>
        <span className="spacer" />
        <Link to="/strategies">Deploy a strategy…</Link>
      </div>
      {list.isPending ? (
        <Loading what="Loading deployments" />
      ) : list.error && !items.length ? (
        <ErrorBox error={list.error} retry={() => void list.refetch()} />
      ) : items.length === 0 ? (
        <Empty>No deployments. Deploy a strategy on paper from its page under Strategies.</Empty>
      ) : (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th>Strategy</th>
                {others && <th>Owner</th>}
                <th>Symbols</th>
                <th>Interval</th>
                <th>Parameters</th>
                <th>Status</th>
                <th className="num">Bars</th>
                <th className="num">Orders</th>
                <th>Started</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {items.map((d) => (
                <tr key={d.id}>
                  <td className="nowrap">
                    <Link to={`/deployments/${d.id}`}>{d.strategy}</Link> <span className="muted small mono">{d.id.slice(0, 8)}</span>
                  </td>
                  {others && <td>#{d.user_id}</td>}
                  <td>{d.symbols.join(", ")}</td>
                  <td>{d.interval}</td>
                  <td className="mono small">{paramsText(d.params) || "defaults"}</td>
                  <td>
                    <DeploymentStatus status={d.status} />
                    {d.error && <span className="muted small"> {String(d.error.message ?? d.error.code ?? "")}</span>}
                  </td>
                  <td className="num">{formatQty(d.bars)}</td>
                  <td className="num">{formatQty(d.orders_sent)}</td>
                  <td className="nowrap">{formatTime(d.created_at)}</td>
                  <td>
                    <DeploymentActions deployment={d} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

/** One deployment; the id may be the 16-character prefix an order's client_order_id carries. */
function DeploymentDetail({ idOrPrefix }: { idOrPrefix: string }) {
  const full = /^[0-9a-f]{32}$/.test(idOrPrefix);
  const list = useDeployments();
  const resolved = full ? idOrPrefix : list.data?.items.find((d) => d.id.startsWith(idOrPrefix))?.id;
  const deployment = useDeployment(resolved ?? "", !!resolved);
  const activity = useDeploymentActivity(resolved ?? "", !!resolved);
  if (!full && list.data && !resolved) return <ErrorBox error={new Error(`No deployment starts with ${idOrPrefix}.`)} />;
  if (!resolved || deployment.isPending) return <Loading what="Loading the deployment" />;
  if (!deployment.data) return <ErrorBox error={deployment.error} retry={() => void deployment.refetch()} />;
  const d = deployment.data;
  const error = d.error as { code?: string; message?: string; trace?: string } | null;
  return (
    <div className="stack">
      <section className="card" aria-label="Deployment">
        <div className="toolbar">
          <h1>
            {d.strategy} <span className="muted">on</span> {d.symbols.join(", ")}
          </h1>
          <DeploymentStatus status={d.status} />
          <span className="spacer" />
          <DeploymentActions deployment={d} />
        </div>
        <p className="muted">
          {d.interval} bars · {paramsText(d.params) || "default parameters"} · started {formatTime(d.created_at)} · updated{" "}
          {formatTime(d.updated_at)} · orders tagged <span className="mono">dep-{d.id.slice(0, 16)}-</span> ·{" "}
          <Link to="/deployments">all deployments</Link>
        </p>
        {error && (
          <div className="error-box column" role="alert">
            <span>
              {error.message ?? "Stopped"} {error.code && `[${error.code}]`}
            </span>
            {error.trace && (
              <details>
                <summary>Traceback</summary>
                <pre className="trace">{error.trace}</pre>
              </details>
            )}
          </div>
        )}
        {activity.data ? (
          <ActivityStats deployment={d} activity={activity.data} />
        ) : activity.error ? (
          <ErrorBox error={activity.error} retry={() => void activity.refetch()} />
        ) : (
          <Loading what="Loading activity" />
        )}
      </section>
      {activity.data && (
        <>
          <section className="card" aria-label="Deployment positions">
            <h2>Positions</h2>
            {Object.keys(activity.data.positions).length === 0 ? (
              <Empty>No open position.</Empty>
            ) : (
              <table className="narrow">
                <thead>
                  <tr>
                    <th>Symbol</th>
                    <th className="num">Quantity</th>
                  </tr>
                </thead>
                <tbody>
                  {Object.entries(activity.data.positions).map(([symbol, qty]) => (
                    <tr key={symbol}>
                      <td>
                        <Link to={`/charts/${encodeURIComponent(symbol)}`}>{symbol}</Link>
                      </td>
                      <td className={`num ${qty < 0 ? "neg" : ""}`}>{formatQty(qty)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </section>
          <section className="card" aria-label="Deployment fills">
            <h2>Fills</h2>
            {activity.data.fills.length === 0 ? (
              <Empty>No fills yet.</Empty>
            ) : (
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th>Time</th>
                      <th>Symbol</th>
                      <th>Side</th>
                      <th>Product</th>
                      <th className="num">Qty</th>
                      <th className="num">Price</th>
                      <th className="num">Charges</th>
                      <th>Order</th>
                    </tr>
                  </thead>
                  <tbody>
                    {[...activity.data.fills].reverse().map((f, i) => (
                      <tr key={`${f.order_id}-${i}`}>
                        <td className="nowrap">{formatTime(f.at)}</td>
                        <td>{f.symbol}</td>
                        <td className={f.side === "BUY" ? "pos" : "neg"}>{f.side}</td>
                        <td>{f.product}</td>
                        <td className="num">{formatQty(f.quantity)}</td>
                        <td className="num">{formatPrice(f.price)}</td>
                        <td className="num">{formatINR(f.fees)}</td>
                        <td className="mono small">{f.client_order_id}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </section>
        </>
      )}
    </div>
  );
}

function ActivityStats({ deployment, activity }: { deployment: Deployment; activity: DeploymentActivity }) {
  return (
    <dl className="stats" aria-label="Deployment P&L">
      <div>
        <dt>Total P&amp;L</dt>
        <dd className={signClass(activity.pnl)}>{formatINR(activity.pnl)}</dd>
      </div>
      <div>
        <dt>Realised</dt>
        <dd className={signClass(activity.realised_pnl)}>{formatINR(activity.realised_pnl)}</dd>
      </div>
      <div>
        <dt>Unrealised</dt>
        <dd className={signClass(activity.unrealised_pnl)}>{formatINR(activity.unrealised_pnl)}</dd>
      </div>
      <div>
        <dt>Charges</dt>
        <dd>{formatINR(activity.charges)}</dd>
      </div>
      <div>
        <dt>Orders</dt>
        <dd>{formatQty(activity.orders)}</dd>
      </div>
      <div>
        <dt>Fills</dt>
        <dd>{formatQty(activity.fills.length)}</dd>
      </div>
      <div>
        <dt>Bars seen</dt>
        <dd>{formatQty(deployment.bars)}</dd>
      </div>
    </dl>
  );
}
