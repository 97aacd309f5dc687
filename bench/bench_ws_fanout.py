"""Quote fan-out to N WebSocket clients through the real stack, against a minimal broadcast server.

    python bench/bench_ws_fanout.py [--clients 1 50 500] [--seconds 3] [--client-procs 1]
                                    [--redis-url redis://127.0.0.1:6379/0] [--no-compression]

The server under test is ``python -m quantdesk.cli serve --no-demo`` in its own process (temp
data dir, SQLite, ``QUANTDESK_FEED=none``, Redis bus under a unique prefix); a user is created
with ``quantdesk users create`` and logged in over HTTP. N clients (``websockets``, uvloop, in
``--client-procs`` separate processes) each subscribe to S symbols (``quotes:NSE:INFY`` and a
few more). This process publishes quotes on Redis with :class:`RedisBus` (the encoding the
server's bus reads), round-robin over the symbols; each quote carries its publish time in
``ts`` and a per-symbol sequence number in ``volume``, so clients measure publish->receive
latency (same machine clock) and count the quotes they skipped.

Two loads per N: ``paced`` (a rate every stack should sustain: latency) and ``flood`` (far above
what N clients can be sent: the deliveries/s ceiling). Quotes are conflated latest-wins per
symbol, so under load a client legitimately skips quotes: those are counted as ``skipped``, not
lost; ``lost`` counts client x symbol pairs whose final quote had not arrived 8 s after
publishing stopped (for the reference, which queues everything, it means "still behind"). The
reference is a
minimal server in this file: Redis pub/sub -> ``websockets.asyncio.server.broadcast`` of one
pre-encoded frame to the channel's subscribers (no auth, no conflation, no per-client queue),
same uvloop, same clients, same compression negotiation. ``cpu%`` columns are each process's
CPU time over the run's wall time (100 = one core busy); the machine's core count bounds the sum.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from array import array
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from multiprocessing.connection import Connection as Pipe
from pathlib import Path

SYMBOLS = ["NSE:INFY", "NSE:TCS", "NSE:SBIN", "NSE:RELIANCE"]
PASSWORD = "fanout-secret-8472"
JWT_SECRET = "w" * 48
# Quotes per second over all symbols: paced is comfortable for every stack, flood is far above
# what any of them can send to N clients (so the ceiling, and conflation, show).
PACED = {1: 1000, 50: 200, 500: 20}
FLOOD = {1: 10_000, 50: 2_000, 500: 400}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_nofile(needed: int) -> tuple[int, int]:
    """Raise the soft open-file limit (inherited by the servers and clients) to ``needed``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < needed:
            print(f"warning: open-file limit {target} < {needed}; lower --clients", file=sys.stderr)
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------
# Reference server: Redis pub/sub -> websockets broadcast, one encode per quote.


async def baseline_server(port: int, redis_url: str, prefix: str) -> None:
    from redis.asyncio import Redis
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    subscribers: dict[str, set[ServerConnection]] = {}

    async def handler(ws: ServerConnection) -> None:
        mine: set[str] = set()
        await ws.send(json.dumps({"type": "welcome"}))
        try:
            async for raw in ws:
                msg = json.loads(raw)
                if msg.get("op") == "subscribe":
                    for ch in msg["channels"]:
                        subscribers.setdefault(ch, set()).add(ws)
                        mine.add(ch)
                    await ws.send(json.dumps({"type": "subscribed", "channels": msg["channels"]}))
        finally:
            for ch in mine:
                subscribers[ch].discard(ws)

    redis = Redis.from_url(redis_url, decode_responses=True)
    pubsub = redis.pubsub()
    await pubsub.psubscribe(prefix + "quotes:*")
    async with serve(handler, "127.0.0.1", port, ping_interval=None, max_size=2**16):
        async for m in pubsub.listen():
            if m["type"] != "pmessage":
                continue
            channel = m["channel"][len(prefix) :]
            conns = subscribers.get(channel)
            if conns:
                frame = f'{{"type":"quote","channel":"{channel}","data":{m["data"]}}}'
                broadcast(conns, frame)


# --------------------------------------------------------------------------------------------
# Client processes.


@dataclass
class ClientStats:
    received: int = 0
    skipped: int = 0
    out_of_order: int = 0
    last_seq: dict[str, int] = field(default_factory=dict)
    last_at: float = 0.0


async def run_client(
    url: str,
    channels: list[str],
    compression: str | None,
    stats: ClientStats,
    lat: array[float],
    gate: asyncio.Semaphore,
) -> None:
    from websockets.asyncio.client import connect

    async with gate:  # connect in waves, not 500 handshakes at once
        ws = await connect(
            url, compression=compression, ping_interval=None, max_size=2**20, open_timeout=30
        )
        assert json.loads(await ws.recv())["type"] == "welcome"
        await ws.send(json.dumps({"op": "subscribe", "channels": channels}))
        while json.loads(await ws.recv())["type"] != "subscribed":
            pass
    stats.last_at = -1.0  # ready
    async with ws:
        parse = datetime.fromisoformat
        async for raw in ws:
            now = time.time()
            msg = json.loads(raw)
            if msg["type"] != "quote":
                continue
            data = msg["data"]
            seq, symbol = data["volume"], data["symbol"]
            prev = stats.last_seq.get(symbol, 0)
            if seq <= prev:
                stats.out_of_order += 1
                continue
            stats.skipped += seq - prev - 1
            stats.last_seq[symbol] = seq
            stats.received += 1
            stats.last_at = now
            lat.append((now - parse(data["ts"]).timestamp()) * 1000)


async def client_main(
    pipe: Pipe, url: str, n: int, channels: list[str], compression: str | None
) -> None:
    stats = [ClientStats() for _ in range(n)]
    lat: array[float] = array("d")
    gate = asyncio.Semaphore(64)
    tasks = [
        asyncio.create_task(run_client(url, channels, compression, s, lat, gate)) for s in stats
    ]
    loop = asyncio.get_running_loop()
    while not all(s.last_at == -1.0 for s in stats):
        failed = [t for t in tasks if t.done()]
        if failed:
            failed[0].result()
        await asyncio.sleep(0.02)
    pipe.send("ready")
    final: dict[str, int] = await loop.run_in_executor(None, pipe.recv)
    cpu0 = time.process_time()
    deadline, last_total, still_since = time.monotonic() + 8, -1, time.monotonic()
    while time.monotonic() < deadline:
        done = all(all(s.last_seq.get(k) == v for k, v in final.items()) for s in stats)
        total = sum(s.received for s in stats)
        if total != last_total:
            last_total, still_since = total, time.monotonic()
        if done or time.monotonic() - still_since > 3:
            break
        await asyncio.sleep(0.05)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    lost = sum(1 for s in stats for k, v in final.items() if s.last_seq.get(k) != v)
    pipe.send(
        {
            "received": sum(s.received for s in stats),
            "skipped": [s.skipped for s in stats],
            "out_of_order": sum(s.out_of_order for s in stats),
            "lost": lost,
            "last_at": max(s.last_at for s in stats),
            "lat": lat.tobytes(),
            "drain_cpu": time.process_time() - cpu0,
        }
    )


def client_process(
    pipe: Pipe, url: str, n: int, channels: list[str], compression: str | None
) -> None:
    import uvloop

    uvloop.run(client_main(pipe, url, n, channels, compression))


# --------------------------------------------------------------------------------------------
# The orchestrator.


@dataclass
class Result:
    server: str
    load: str
    clients: int
    rate: int
    published: int
    received: int
    elapsed: float
    skipped: list[int]
    lost: int
    out_of_order: int
    latencies: list[float]
    cpu: dict[str, float]

    @property
    def deliveries_per_s(self) -> float:
        return self.received / self.elapsed

    @property
    def server_us_per_delivery(self) -> float:
        """Server CPU per message delivered: steadier than deliveries/s on a shared machine."""
        return self.cpu["server"] / 100 * self.elapsed / max(self.received, 1) * 1e6

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        return self.latencies[min(len(self.latencies) - 1, int(q * len(self.latencies)))]


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.run_id = uuid.uuid4().hex[:8]
        self.procs: list[subprocess.Popen[bytes]] = []
        self.redis_pid: int | None = None

    def env(self, data_dir: Path) -> dict[str, str]:
        return os.environ | {
            "QUANTDESK_DATA_DIR": str(data_dir),
            "QUANTDESK_FEED": "none",
            "QUANTDESK_JWT_SECRET": JWT_SECRET,
            "QUANTDESK_REDIS_URL": self.args.redis_url,
            "QUANTDESK_REDIS_PREFIX": f"qdbench:{self.run_id}:qd:",
            "QUANTDESK_BCRYPT_ROUNDS": "4",
            "QUANTDESK_LOG_LEVEL": "WARNING",
            "QUANTDESK_PASSWORD": PASSWORD,
        }

    def server_cmd(self) -> list[str]:
        if self.args.profile_server:
            return [sys.executable, "-m", "cProfile", "-o", self.args.profile_server]
        return [sys.executable]

    def start_servers(self, tmp: Path) -> tuple[str, str]:
        env = self.env(tmp)
        cli = [sys.executable, "-m", "quantdesk.cli"]
        for cmd in (["db", "upgrade"], ["users", "create", "bench", "--role", "trader"]):
            subprocess.run(cli + cmd, env=env, check=True, capture_output=True)
        qd_port, ref_port = free_port(), free_port()
        log = (tmp / "server.log").open("wb")
        self.procs.append(
            subprocess.Popen(
                [
                    *self.server_cmd(),
                    "-m",
                    "quantdesk.cli",
                    "serve",
                    "--port",
                    str(qd_port),
                    "--no-demo",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        self.procs.append(
            subprocess.Popen(
                [
                    *(sys.executable, __file__, "--_baseline", str(ref_port)),
                    *(
                        "--redis-url",
                        self.args.redis_url,
                        "--_prefix",
                        f"qdbench:{self.run_id}:ref:",
                    ),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        return (
            f"ws://127.0.0.1:{qd_port}/api/v1/ws",
            f"ws://127.0.0.1:{ref_port}/",
        )

    async def wait_ready(self, qd_http: str, ref_port: int, tmp: Path) -> str:
        import httpx

        async with httpx.AsyncClient(base_url=qd_http, timeout=5) as http:
            for _ in range(300):
                if any(p.poll() is not None for p in self.procs):
                    raise RuntimeError((tmp / "server.log").read_text()[-3000:])
                with contextlib.suppress(httpx.TransportError, OSError):
                    if (await http.get("/healthz")).status_code == 200:
                        _, w = await asyncio.open_connection("127.0.0.1", ref_port)
                        w.close()
                        break
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError("servers did not start")
            r = await http.post(
                "/api/v1/auth/login", json={"username": "bench", "password": PASSWORD}
            )
            r.raise_for_status()
            return str(r.json()["access_token"])

    async def run_case(
        self, server: str, url: str, prefix: str, n: int, load: str, rate: int, pid: int
    ) -> Result:
        from quantdesk.bus import RedisBus
        from quantdesk.core.market import Quote

        channels = [f"quotes:{s}" for s in SYMBOLS[: self.args.symbols]]
        procs_n = max(1, min(self.args.client_procs, n))
        ctx = mp.get_context("spawn")
        workers = []
        compression = None if self.args.no_compression else "deflate"
        for k in range(procs_n):
            ours, theirs = ctx.Pipe()
            share = n // procs_n + (1 if k < n % procs_n else 0)
            p = ctx.Process(target=client_process, args=(theirs, url, share, channels, compression))
            p.start()
            workers.append((p, ours))
        loop = asyncio.get_running_loop()
        for _, pipe in workers:
            await loop.run_in_executor(None, pipe.recv)

        bus = RedisBus(self.args.redis_url, prefix=prefix)
        await bus.start()
        cpu0 = {
            "server": cpu_seconds(pid),
            "clients": sum(cpu_seconds(p.pid or 0) for p, _ in workers),
            "redis": cpu_seconds(self.redis_pid) if self.redis_pid else 0.0,
            "publisher": time.process_time(),
        }
        seq = dict.fromkeys(SYMBOLS[: self.args.symbols], 0)
        symbols = list(seq)
        published = 0
        start = time.time()
        t0 = time.perf_counter()
        total = int(rate * self.args.seconds)
        while published < total:
            due = min(total, int((time.perf_counter() - t0) * rate) + 1) - published
            now = datetime.now(UTC)  # the publish time every client measures from
            msgs = []
            for _ in range(due):
                symbol = symbols[published % len(symbols)]
                seq[symbol] += 1  # the quote's cumulative volume doubles as its sequence number
                p = Decimal(1500) + Decimal(seq[symbol] % 400) / 20
                q = Quote(symbol, p, p - Decimal("0.05"), p + Decimal("0.05"), seq[symbol], now)
                msgs.append((f"quotes:{symbol}", q.to_json()))
                published += 1
            if len(msgs) == 1:
                await bus.publish(*msgs[0])
            else:
                await bus.publish_many(msgs)
            ahead = t0 + published / rate - time.perf_counter()
            await asyncio.sleep(max(0.0, ahead))
        await bus.close()
        for _, pipe in workers:
            pipe.send(seq)
        reports = [await loop.run_in_executor(None, pipe.recv) for _, pipe in workers]
        cpu = {
            "server": cpu_seconds(pid) - cpu0["server"],
            "clients": sum(cpu_seconds(p.pid or 0) for p, _ in workers) - cpu0["clients"],
            "redis": (cpu_seconds(self.redis_pid) if self.redis_pid else 0.0) - cpu0["redis"],
            "publisher": time.process_time() - cpu0["publisher"],
        }
        for p, _ in workers:
            p.join(10)
        latencies: list[float] = []
        for rep in reports:
            a = array("d")
            a.frombytes(rep["lat"])
            latencies.extend(a)
        latencies.sort()
        last = max(rep["last_at"] for rep in reports)
        return Result(
            server=server,
            load=load,
            clients=n,
            rate=rate,
            published=published,
            received=sum(rep["received"] for rep in reports),
            elapsed=max(last, start + 1e-3) - start,
            skipped=[x for rep in reports for x in rep["skipped"]],
            lost=sum(rep["lost"] for rep in reports),
            out_of_order=sum(rep["out_of_order"] for rep in reports),
            latencies=latencies,
            # Over publish start -> last delivery: the idle wait for stragglers is not counted.
            cpu={k: 100 * v / max(last - start, 1e-3) for k, v in cpu.items()},
        )

    async def main(self) -> None:
        from redis.asyncio import Redis

        limit = raise_nofile(max(self.args.clients) * 2 + 256)
        r = Redis.from_url(self.args.redis_url)
        info = await r.info("server")
        await r.aclose()
        if str(self.args.redis_url).split("//")[1].startswith(("127.0.0.1", "localhost")):
            self.redis_pid = int(info["process_id"])
        with tempfile.TemporaryDirectory(prefix="qd-wsbench-") as d:
            tmp = Path(d)
            qd_url, ref_url = self.start_servers(tmp)
            try:
                qd_http = qd_url.replace("ws://", "http://").removesuffix("/api/v1/ws")
                ref_port = int(ref_url.rsplit(":", 1)[1].strip("/"))
                token = await self.wait_ready(qd_http, ref_port, tmp)
                await self.report(limit, f"{qd_url}?token={token}", ref_url)
            finally:
                for p in self.procs:
                    p.send_signal(signal.SIGINT)  # graceful; lets cProfile write
                for p in self.procs:
                    try:
                        p.wait(10)
                    except subprocess.TimeoutExpired:
                        p.kill()

    async def report(self, limit: tuple[int, int], qd_url: str, ref_url: str) -> None:
        qd_pid, ref_pid = self.procs[0].pid, self.procs[1].pid
        compression = "off" if self.args.no_compression else "permessage-deflate"
        print(
            f"{os.cpu_count()} CPUs; RLIMIT_NOFILE {limit[0]}; {self.args.symbols} symbols/client; "
            f"{self.args.seconds:g}s per run; {self.args.client_procs} client process(es); "
            f"compression {compression}; load average {os.getloadavg()[0]:.2f} before the runs"
        )
        head = (
            f"{'server':<10} {'load':<6} {'clients':>7} {'quotes/s':>8} {'offered/s':>10} "
            f"{'deliv/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'skip/cl':>8} "
            f"{'lost':>5} {'srv cpu%':>8} {'srv us/dl':>9} {'cli cpu%':>8} {'vs ref':>7}"
        )
        print(head)
        print("-" * len(head))
        for n in self.args.clients:
            for load, table in (("paced", PACED), ("flood", FLOOD)):
                if load not in self.args.loads:
                    continue
                rate = table.get(n) or max(10, (10_000 if load == "paced" else 200_000) // n)
                rate = max(1, int(rate * self.args.scale))
                prefix = f"qdbench:{self.run_id}:"
                runs = [
                    await self.run_case("quantdesk", qd_url, prefix + "qd:", n, load, rate, qd_pid)
                ]
                if not self.args.no_baseline:
                    runs.append(
                        await self.run_case(
                            "reference", ref_url, prefix + "ref:", n, load, rate, ref_pid
                        )
                    )
                ref = runs[-1].deliveries_per_s
                for res in runs:
                    skips = sorted(res.skipped)
                    print(
                        f"{res.server:<10} {res.load:<6} {res.clients:>7} {res.rate:>8,} "
                        f"{res.rate * res.clients:>10,} {res.deliveries_per_s:>9,.0f} "
                        f"{res.pct(0.5):>8.1f} {res.pct(0.99):>8.1f} {res.pct(1.0):>8.1f} "
                        f"{skips[len(skips) // 2]:>8,} {res.lost:>5} "
                        f"{res.cpu['server']:>8.0f} {res.server_us_per_delivery:>9.0f} "
                        f"{res.cpu['clients']:>8.0f} "
                        f"{res.deliveries_per_s / ref:>7.2f}"
                        + (f"  out-of-order {res.out_of_order}" if res.out_of_order else "")
                    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 50, 500])
    ap.add_argument("--seconds", type=float, default=2.0, help="publishing time per run")
    ap.add_argument("--symbols", type=int, default=4, choices=range(1, len(SYMBOLS) + 1))
    ap.add_argument("--client-procs", type=int, default=1)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the publish rates")
    ap.add_argument(
        "--redis-url", default=os.environ.get("QUANTDESK_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    ap.add_argument("--no-compression", action="store_true", help="clients do not offer deflate")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--loads", nargs="+", choices=["paced", "flood"], default=["paced", "flood"])
    ap.add_argument("--profile-server", metavar="PATH", help="run the server under cProfile")
    ap.add_argument("--_baseline", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--_prefix", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._baseline:
        import uvloop

        uvloop.run(baseline_server(args._baseline, args.redis_url, args._prefix))
        return
    asyncio.run(Bench(args).main())


if __name__ == "__main__":
    main()
