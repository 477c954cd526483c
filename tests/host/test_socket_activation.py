"""Restarts behind a socket systemd holds: requests wait for the new process, none fail."""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request

from tests.support import HostProcess, place_plugin


def test_requests_during_restarts_wait_for_the_new_process_instead_of_failing(
    tmp_path, build, compiled_dir
):
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    port = listener.getsockname()[1]
    host = HostProcess(workdir=tmp_path, compiled_dir=compiled_dir, port=port, listener=listener)
    place_plugin(build("dashboard"), host.plugins_dir)
    host.start()
    outcomes: list[object] = []
    stop = threading.Event()

    def load_dashboards() -> None:
        while not stop.is_set():
            try:
                with urllib.request.urlopen(f"{host.url}/", timeout=20) as answer:
                    outcomes.append(answer.status)
            except (urllib.error.URLError, OSError) as exc:
                outcomes.append(repr(exc))

    clients = [threading.Thread(target=load_dashboards) for _ in range(4)]
    for client in clients:
        client.start()
    try:
        for _ in range(3):
            assert host.stop() == 0
            host.start(wait_for="ok")
    finally:
        stop.set()
        for client in clients:
            client.join()
        host.stop()
        listener.close()

    assert len(outcomes) > 20
    assert [o for o in outcomes if o != 200] == []
