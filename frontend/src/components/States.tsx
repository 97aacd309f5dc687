/** Loading, empty and error states, so no view is ever a blank page. */
import { errorMessage } from "../api/errors";

export function Loading({ what = "Loading" }: { what?: string }) {
  return <p className="muted" role="status">{what}…</p>;
}

export function Empty({ children }: { children: React.ReactNode }) {
  return <p className="muted empty">{children}</p>;
}

export function ErrorBox({ error, retry }: { error: unknown; retry?: () => void }) {
  return (
    <div className="error-box" role="alert">
      <span>{errorMessage(error)}</span>
      {retry && (
        <button type="button" onClick={retry}>
          Retry
        </button>
      )}
    </div>
  );
}

/** The three states of a query in one place; renders children only with data. */
export function QueryState<T>({
  query,
  empty,
  children,
}: {
  query: { data: T | undefined; error: unknown; isPending: boolean; refetch: () => unknown };
  empty?: (data: T) => React.ReactNode | null;
  children: (data: T) => React.ReactNode;
}) {
  if (query.isPending) return <Loading />;
  if (query.data === undefined) return <ErrorBox error={query.error} retry={() => void query.refetch()} />;
  const none = empty?.(query.data);
  return <>{none ? <Empty>{none}</Empty> : children(query.data)}</>;
}
