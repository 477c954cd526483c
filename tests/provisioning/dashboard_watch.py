"""Keeps loading dashboards during an upgrade; prints what each host answered as JSON.

    python dashboard_watch.py URL...    # runs until stdin closes

One thread per URL loads it every 50 ms (a busy dashboard, not a load test that would
starve the restarting host of CPU). Downtime per host is the longest gap between two
successful loads, so a restart that makes requests wait counts as much as one that
refuses them.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.request

PERIOD_S = 0.05


def watch(url: str, stop: threading.Event, result: dict[str, object]) -> None:
    loads, failures, last_ok, longest_gap = 0, [], None, 0.0
    while not stop.is_set():
        started = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                ok = answer.status == 200 and b"<h1>" in answer.read()
            error = "" if ok else f"HTTP {answer.status} without a dashboard"
        except OSError as exc:
            ok, error = False, str(exc)
        now = time.monotonic()
        stop.wait(max(0.0, started + PERIOD_S - now))
        loads += 1
        if ok:
            if last_ok is not None:
                longest_gap = max(longest_gap, now - last_ok)
            last_ok = now
        else:
            failures.append({"after_s": round(now - started, 3), "error": error})
    result.update(loads=loads, failures=failures, longest_gap_s=round(longest_gap, 3))


def main() -> None:
    stop = threading.Event()
    results: dict[str, dict[str, object]] = {url: {} for url in sys.argv[1:]}
    threads = [threading.Thread(target=watch, args=(url, stop, results[url])) for url in results]
    for thread in threads:
        thread.start()
    print("watching", flush=True)
    sys.stdin.read()
    stop.set()
    for thread in threads:
        thread.join()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
