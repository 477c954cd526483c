"""The device has no inbound delivery endpoint: nothing on the network can push a state into it,
and the control plane never connects to a device (so a device's address cannot aim it anywhere)."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit


def test_the_old_push_endpoint_is_gone(agent):
    address = urlsplit(agent.host.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        connection.request(
            "POST",
            "/agent/v1/desired-state",
            body=b"{}",
            headers={"Content-Type": "application/json"},
        )
        status = connection.getresponse().status
    finally:
        connection.close()

    assert status in (401, 403, 404)
