/** Routes, and the providers every page needs. */
import { lazy, Suspense } from "react";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { Navigate, Outlet, Route, Routes, useLocation } from "react-router";
import { ApiError } from "./api/errors";
import { AuthProvider, useAuth } from "./auth/AuthContext";
import { Layout } from "./components/Layout";
import { ErrorBox, Loading } from "./components/States";
import { ToastProvider } from "./components/Toasts";
import { AdminPage } from "./pages/AdminPage";
import { DashboardPage } from "./pages/DashboardPage";
import { DeploymentsPage } from "./pages/DeploymentsPage";
import { LoginPage } from "./pages/LoginPage";
import { OrdersPage } from "./pages/OrdersPage";
import { PositionsPage } from "./pages/PositionsPage";
import { StrategiesPage } from "./pages/StrategiesPage";
import { WalletPage } from "./pages/WalletPage";
import { StreamProvider } from "./ws/StreamProvider";

// The chart library is the biggest dependency: load it with the Charts page only.
const ChartsPage = lazy(() => import("./pages/ChartsPage"));
const BacktestsPage = lazy(() => import("./pages/BacktestsPage"));
const BacktestReportPage = lazy(() => import("./pages/BacktestReportPage"));
const ModelsPage = lazy(() => import("./pages/ModelsPage"));
const MlRunPage = lazy(() => import("./pages/MlRunPage"));

export function makeQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: {
        staleTime: 10_000,
        // 4xx will not get better by asking again
        retry: (count, error) => !(error instanceof ApiError && error.status < 500) && count < 2,
        refetchOnWindowFocus: false,
      },
    },
  });
}

export function Providers({
  client,
  children,
  WebSocketImpl,
}: {
  client: QueryClient;
  children: React.ReactNode;
  WebSocketImpl?: typeof WebSocket;
}) {
  return (
    <QueryClientProvider client={client}>
      <ToastProvider>
        <AuthProvider>
          <StreamProvider WebSocketImpl={WebSocketImpl}>{children}</StreamProvider>
        </AuthProvider>
      </ToastProvider>
    </QueryClientProvider>
  );
}

function RequireAuth() {
  const { tokens, user, userError, loadingUser } = useAuth();
  const location = useLocation();
  if (!tokens) return <Navigate to="/login" replace state={{ from: location.pathname }} />;
  if (loadingUser) return <Loading what="Loading your account" />;
  if (!user) return <ErrorBox error={userError} />;
  return <Outlet />;
}

function RequireAdmin() {
  const { isAdmin } = useAuth();
  return isAdmin ? <Outlet /> : <ErrorBox error={new Error("This page is for administrators.")} />;
}

export function AppRoutes() {
  return (
    <Routes>
      <Route path="/login" element={<LoginPage />} />
      <Route element={<RequireAuth />}>
        <Route element={<Layout />}>
          <Route index element={<DashboardPage />} />
          <Route path="orders" element={<OrdersPage />} />
          <Route path="positions" element={<PositionsPage />} />
          <Route path="wallet" element={<WalletPage />} />
          <Route
            path="charts/:symbol?"
            element={
              <Suspense fallback={<Loading what="Loading charts" />}>
                <ChartsPage />
              </Suspense>
            }
          />
          <Route path="strategies/:name?" element={<StrategiesPage />} />
          <Route
            path="backtests"
            element={
              <Suspense fallback={<Loading what="Loading backtests" />}>
                <BacktestsPage />
              </Suspense>
            }
          />
          <Route
            path="backtests/:id"
            element={
              <Suspense fallback={<Loading what="Loading the report" />}>
                <BacktestReportPage />
              </Suspense>
            }
          />
          <Route
            path="models"
            element={
              <Suspense fallback={<Loading what="Loading models" />}>
                <ModelsPage />
              </Suspense>
            }
          />
          <Route
            path="models/runs/:id"
            element={
              <Suspense fallback={<Loading what="Loading the training run" />}>
                <MlRunPage />
              </Suspense>
            }
          />
          <Route path="deployments/:id?" element={<DeploymentsPage />} />
          <Route element={<RequireAdmin />}>
            <Route path="admin" element={<AdminPage />} />
          </Route>
          <Route path="*" element={<ErrorBox error={new Error("No such page.")} />} />
        </Route>
      </Route>
    </Routes>
  );
}
