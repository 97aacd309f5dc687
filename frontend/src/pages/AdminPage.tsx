/** Admin: users (list, create, role, active), deposits/withdrawals, the audit log. */
import { useState, type FormEvent } from "react";
import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, unwrap, type Schemas } from "../api/client";
import { errorMessage } from "../api/errors";
import { keys, type User } from "../api/queries";
import { RiskAdminSection } from "../components/RiskAdmin";
import { Empty, ErrorBox, Loading, QueryState } from "../components/States";
import { useToast } from "../components/Toasts";
import { formatINR, formatTime } from "../lib/format";

type Role = Schemas["Role"];
const ROLES: Role[] = ["admin", "trader", "viewer"];

export function AdminPage() {
  const [fundsFor, setFundsFor] = useState<User | null>(null);
  return (
    <div className="stack">
      <UsersSection onFunds={setFundsFor} />
      {fundsFor && <FundsForm user={fundsFor} onClose={() => setFundsFor(null)} />}
      <RiskSection />
      <AuditSection />
    </div>
  );
}

function RiskSection() {
  const users = useQuery({
    queryKey: keys.users,
    queryFn: () => unwrap(api.GET("/api/v1/admin/users", { params: { query: { limit: 200 } } })),
  });
  return <RiskAdminSection users={users.data?.items ?? []} />;
}

function UsersSection({ onFunds }: { onFunds: (u: User) => void }) {
  const users = useQuery({
    queryKey: keys.users,
    queryFn: () => unwrap(api.GET("/api/v1/admin/users", { params: { query: { limit: 200 } } })),
  });
  const queryClient = useQueryClient();
  const toast = useToast();
  const update = useMutation({
    mutationFn: ({ id, body }: { id: number; body: Schemas["UserUpdate"] }) =>
      unwrap(api.PATCH("/api/v1/admin/users/{user_id}", { params: { path: { user_id: id } }, body })),
    onSuccess: (u) => {
      toast("success", `${u.username}: role ${u.role}, ${u.is_active ? "active" : "disabled"}`);
      void queryClient.invalidateQueries({ queryKey: keys.users });
    },
    onError: (e) => toast("error", errorMessage(e)),
  });
  return (
    <section className="card" aria-label="Users">
      <h2>Users</h2>
      <QueryState query={users} empty={(page) => (page.items.length ? null : "No users.")}>
        {(page) => (
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th>ID</th>
                  <th>Username</th>
                  <th>Role</th>
                  <th>Active</th>
                  <th>Created</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {page.items.map((u) => (
                  <tr key={u.id}>
                    <td>{u.id}</td>
                    <td>{u.username}</td>
                    <td>
                      <select
                        aria-label={`Role of ${u.username}`}
                        value={u.role}
                        disabled={update.isPending}
                        onChange={(e) => update.mutate({ id: u.id, body: { role: e.target.value as Role } })}
                      >
                        {ROLES.map((r) => (
                          <option key={r}>{r}</option>
                        ))}
                      </select>
                    </td>
                    <td>
                      <input
                        type="checkbox"
                        aria-label={`${u.username} active`}
                        checked={u.is_active}
                        disabled={update.isPending}
                        onChange={(e) => update.mutate({ id: u.id, body: { is_active: e.target.checked } })}
                      />
                    </td>
                    <td className="nowrap">{formatTime(u.created_at)}</td>
                    <td>
                      <button type="button" className="small" onClick={() => onFunds(u)}>
                        Funds…
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </QueryState>
      <CreateUser />
    </section>
  );
}

function CreateUser() {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [role, setRole] = useState<Role>("trader");
  const queryClient = useQueryClient();
  const toast = useToast();
  const create = useMutation({
    mutationFn: () => unwrap(api.POST("/api/v1/admin/users", { body: { username, password, role } })),
    onSuccess: (u) => {
      toast("success", `Created ${u.username} (${u.role})`);
      setUsername("");
      setPassword("");
      void queryClient.invalidateQueries({ queryKey: keys.users });
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate();
  };
  return (
    <form className="inline-form wrap" onSubmit={submit} aria-label="Create user">
      <label>
        Username <input value={username} onChange={(e) => setUsername(e.target.value)} required autoComplete="off" />
      </label>
      <label>
        Password <input type="password" value={password} onChange={(e) => setPassword(e.target.value)} required autoComplete="new-password" />
      </label>
      <label>
        Role{" "}
        <select value={role} onChange={(e) => setRole(e.target.value as Role)}>
          {ROLES.map((r) => (
            <option key={r}>{r}</option>
          ))}
        </select>
      </label>
      <button type="submit" className="primary" disabled={create.isPending}>
        Create user
      </button>
      {create.error != null && <ErrorBox error={create.error} />}
    </form>
  );
}

function FundsForm({ user, onClose }: { user: User; onClose: () => void }) {
  const [amount, setAmount] = useState("");
  const [note, setNote] = useState("");
  const toast = useToast();
  const queryClient = useQueryClient();
  const wallet = useQuery({
    queryKey: ["admin", "wallet", user.id],
    queryFn: () => unwrap(api.GET("/api/v1/wallet", { params: { query: { user_id: user.id } } })),
  });
  const move = useMutation({
    mutationFn: (kind: "deposits" | "withdrawals") => {
      const path = kind === "deposits" ? "/api/v1/admin/users/{user_id}/deposits" : "/api/v1/admin/users/{user_id}/withdrawals";
      return unwrap(api.POST(path, { params: { path: { user_id: user.id } }, body: { amount: amount.trim(), currency: "INR", note } }));
    },
    onSuccess: (out, kind) => {
      toast("success", `${kind === "deposits" ? "Deposited" : "Withdrew"} ${formatINR(amount)} for ${user.username}`);
      setAmount("");
      queryClient.setQueryData(["admin", "wallet", user.id], out.wallet);
      void queryClient.invalidateQueries({ queryKey: keys.wallet });
    },
  });
  const inr = wallet.data?.balances.INR;
  return (
    <section className="card" aria-label="Funds">
      <div className="toolbar">
        <h2>Funds: {user.username}</h2>
        <span className="spacer" />
        <button type="button" className="small" onClick={onClose}>
          Close
        </button>
      </div>
      {inr && (
        <p>
          Available {formatINR(inr.available)} · held {formatINR(inr.held)} · margin {formatINR(inr.margin)} · total{" "}
          <strong>{formatINR(inr.total)}</strong>
        </p>
      )}
      {wallet.error != null && <ErrorBox error={wallet.error} />}
      <form className="inline-form wrap" onSubmit={(e) => e.preventDefault()}>
        <label>
          Amount (INR) <input inputMode="decimal" value={amount} onChange={(e) => setAmount(e.target.value)} placeholder="2500.50" />
        </label>
        <label>
          Note <input value={note} maxLength={256} onChange={(e) => setNote(e.target.value)} />
        </label>
        <button type="button" className="primary" disabled={!amount || move.isPending} onClick={() => move.mutate("deposits")}>
          Deposit
        </button>
        <button type="button" disabled={!amount || move.isPending} onClick={() => move.mutate("withdrawals")}>
          Withdraw
        </button>
      </form>
      {move.error != null && <ErrorBox error={move.error} />}
    </section>
  );
}

function AuditSection() {
  const [action, setAction] = useState("");
  const audit = useInfiniteQuery({
    queryKey: keys.audit({ action }),
    initialPageParam: null as number | null,
    queryFn: ({ pageParam }) =>
      unwrap(
        api.GET("/api/v1/admin/audit", {
          params: { query: { action: action || undefined, cursor: pageParam ?? undefined, limit: 100 } },
        }),
      ),
    getNextPageParam: (last) => last.next_cursor,
  });
  const items = audit.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <section className="card" aria-label="Audit log">
      <div className="toolbar">
        <h2>Audit log</h2>
        <label>
          Action <input value={action} onChange={(e) => setAction(e.target.value)} placeholder="wallet. or auth.login" />
        </label>
      </div>
      {audit.isPending ? (
        <Loading />
      ) : audit.error && !items.length ? (
        <ErrorBox error={audit.error} retry={() => void audit.refetch()} />
      ) : items.length === 0 ? (
        <Empty>No audit entries.</Empty>
      ) : (
        <>
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th>Time</th>
                  <th>Actor</th>
                  <th>Action</th>
                  <th>Target</th>
                  <th>Outcome</th>
                  <th>IP</th>
                  <th>Changes</th>
                </tr>
              </thead>
              <tbody>
                {items.map((a) => (
                  <tr key={a.id}>
                    <td className="nowrap">{formatTime(a.at)}</td>
                    <td>{a.actor_username ?? a.actor_id ?? "—"}</td>
                    <td>{a.action}</td>
                    <td>{[a.target_type, a.target_id].filter(Boolean).join(" ") || "—"}</td>
                    <td>{a.outcome}</td>
                    <td>{a.ip ?? "—"}</td>
                    <td className="mono small">{a.changes ? JSON.stringify(a.changes) : ""}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {audit.hasNextPage && (
            <button type="button" onClick={() => void audit.fetchNextPage()} disabled={audit.isFetchingNextPage}>
              Load more
            </button>
          )}
        </>
      )}
    </section>
  );
}
