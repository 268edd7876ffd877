"""``gateway serve --processes N``: several server processes on one port.

One Python process runs one core at most (the GIL), and a webhook's work is mostly Python: on
PostgreSQL, N processes take N times the load; on SQLite their writes take turns (see
``store.db``) while the rest of their work runs side by side. The parent binds the sockets (one
per server with ``SO_REUSEPORT``), forks the servers
before anything opens a database connection or starts a thread, restarts a server that dies,
and passes SIGTERM/SIGINT on for a graceful shutdown. Each server delivers what it queues (claims
are atomic, so they never send a message twice); only the first runs the other background
services (legal clocks, the IMAP poller, Telegram media fetching).
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

RESTART_DELAY = 1.0


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """Sockets for ``count`` server processes on one port: one each where the system has
    ``SO_REUSEPORT`` (Linux spreads new connections evenly over them), else one they all share.

    On one shared socket every process is woken for a new connection and the first to call
    accept takes all that are waiting (asyncio accepts up to 100 at a time), so long-lived
    keep-alive connections, as providers and load balancers hold them, piled up on one process:
    71% and 29% of a core with two."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    reuse_port = hasattr(socket, "SO_REUSEPORT")
    socks: list[socket.socket] = []
    for _ in range(count if reuse_port else 1):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        port = sock.getsockname()[1]  # port 0: the others join the port the first was given
        sock.listen(1024)
        sock.set_inheritable(True)
        socks.append(sock)
    return socks


def serve_processes(count: int, socks: list[socket.socket],
                    serve_one: Callable[[socket.socket, int], None]) -> int:
    """Run ``serve_one(sock, index)`` in ``count`` forked processes until told to stop, server
    ``index`` on ``socks[index]`` (or on the one socket they share).

    Returns the exit status: 0 after a requested shutdown."""
    children: dict[int, int] = {}  # pid -> index
    stopping = False

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the server process
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            status = 0
            try:
                mine = socks[index % len(socks)]
                for other in socks:
                    if other is not mine:
                        other.close()
                serve_one(mine, index)
            except BaseException:  # noqa: BLE001  (reported, then the parent restarts it)
                log.exception("server process %d failed", index)
                status = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        children[pid] = index

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    for index in range(count):
        spawn(index)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        index = children.pop(pid, None)
        if index is None or stopping:
            continue
        log.error("server process %d (pid %d) exited with status %d; restarting it", index, pid,
                  os.waitstatus_to_exitcode(status))
        time.sleep(RESTART_DELAY)
        if not stopping:
            spawn(index)
    for sock in socks:
        sock.close()
    return 0
