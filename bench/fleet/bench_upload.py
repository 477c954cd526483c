"""How fast the admin answers an upload, and what it costs the web worker and the job worker.

A control plane served with the production gunicorn settings (``gunicorn_timed.conf.py``)
and its job worker (``manage.py qcluster``) on loopback. A logged-in admin session posts
the built dashboard component (18 MB) and its manifest through the real upload form
(``/admin/plugins/pluginversion/add/``, the fields control_plane/plugins/tests/test_admin.py
uses), ``--uploads`` times, each a new version. Meanwhile every 20 ms the sampler reads
``VmRSS``/``VmHWM`` of each gunicorn worker and of the job worker's process tree (its
compile child included) from ``/proc``.

Reported per upload: the answer time of the POST (to its redirect), the change page it
redirects to, the web worker's steady and peak RSS; then the background check: queue wait
and run from the worker's log, the native compile's time and peak RSS from the version's
``CompiledArtifact`` row, and the job worker tree's sampled peak. Before issue 9 the
upload compiled inside the request: 12-30 s and a 496 MB worker, the baseline quoted.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import os
import re
import shutil
import statistics
import threading
import time
import urllib.parse
import urllib.request
import uuid

from bench_delivery import TimedControlPlane, artifact_rows, ms, worker_times
from bench_install_memory import Sampler, _descendants, _status_kib
from common import (
    WORK,
    Table,
    build_variant,
    component_of,
    exit_on_sigterm,
    log_time,
    machine,
    machine_line,
    wait_for_quiet,
    write_results,
)

from tests.support import wait_until

ADD = "/admin/plugins/pluginversion/add/"
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
OLD_ANSWER_S = "12-30"
OLD_WORKER_MIB = 496


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_: object) -> None:
        return None


class AdminSession:
    """A browser's session with the admin: cookies, CSRF token, no automatic redirects."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirect()
        )

    def request(
        self, path: str, body: bytes | None = None, content_type: str | None = None
    ) -> tuple[int, str, str]:
        """(status, body, Location) of one request."""
        headers = {"Referer": self.base_url + path}
        if content_type is not None:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self.base_url + path, data=body, headers=headers)
        try:
            with self._opener.open(request, timeout=120) as answer:
                return answer.status, answer.read().decode(), answer.headers.get("Location", "")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(), error.headers.get("Location", "")

    def csrf(self, path: str) -> str:
        status, page, _ = self.request(path)
        match = CSRF.search(page)
        if status != 200 or match is None:
            raise SystemExit(f"bench: no CSRF token on {path} (HTTP {status})")
        return match.group(1)

    def log_in(self, username: str, password: str) -> None:
        token = self.csrf("/admin/login/")
        form = urllib.parse.urlencode(
            {"csrfmiddlewaretoken": token, "username": username, "password": password,
             "next": "/admin/"}
        ).encode()  # fmt: skip
        status, _, location = self.request(
            "/admin/login/", form, "application/x-www-form-urlencoded"
        )
        if status != 302 or "login" in location:
            raise SystemExit(f"bench: the admin login failed (HTTP {status}, {location!r})")


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body as a browser sends the form, and its content type."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            .encode()
        )  # fmt: skip
    for name, (filename, data) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300, help="seconds per check")
    args = parser.parse_args()

    work = WORK / "upload"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    print("building dashboard")
    built = build_variant("dashboard", "dashboard-1.0.0")
    component = component_of(built).read_bytes()
    manifest = (built / "manifest.toml").read_text()

    control_plane = TimedControlPlane(work / "control-plane")
    uploads = []
    try:
        control_plane.set_up()
        control_plane.start()
        session = AdminSession(control_plane.url)
        session.log_in("admin", control_plane.admin_password)
        for index in range(args.uploads):
            version = f"1.0.{index + 1}"
            text = re.sub(r'(?m)^version = ".*"$', f'version = "{version}"', manifest)
            uploads.append(upload(control_plane, session, component, text, version, args))
    finally:
        control_plane.stop()
    data = {"machine": machine(), "component_bytes": len(component), "uploads": uploads}
    write_results("upload", data, markdown(data))


def _memory(pids: list[int]) -> dict[int, tuple[int, int]]:
    return {pid: status for pid in pids if (status := _status_kib(pid)) is not None}


def upload(
    control_plane: TimedControlPlane,
    session: AdminSession,
    component: bytes,
    manifest: str,
    version: str,
    args: argparse.Namespace,
) -> dict[str, object]:
    """One upload through the form, its answer timed and both workers' memory sampled."""
    assert control_plane.process is not None and control_plane.worker_process is not None
    web = _descendants(control_plane.process.pid)
    job_root = control_plane.worker_process.pid
    wait_for_quiet()
    load = os.getloadavg()[0]
    token = session.csrf(ADD)
    body, content_type = multipart(
        {"csrfmiddlewaretoken": token},
        {
            "component": ("dashboard.wasm", component),
            "manifest_file": ("manifest.toml", manifest.encode()),
        },
    )
    steady = _memory(web)
    time.sleep(0.5)
    print(f"uploading dashboard {version} through the admin form")
    with Sampler(job_root) as jobs:
        web_peak: dict[int, int] = {}
        started = time.time()
        answer: list[tuple[int, str, str]] = []
        poster = threading.Thread(
            target=lambda: answer.append(session.request(ADD, body, content_type))
        )
        poster.start()
        while poster.is_alive():
            for pid, (rss, _) in _memory(web).items():
                web_peak[pid] = max(web_peak.get(pid, 0), rss)
            time.sleep(0.02)
        poster.join()
        answered = time.time()
        status, _, location = answer[0]
        if status != 302 or "/change/" not in location:
            raise SystemExit(f"bench: the upload was not accepted (HTTP {status}, {location!r})")
        page_started = time.time()
        page_status, _, _ = session.request(urllib.parse.urlsplit(location).path)
        page_s = time.time() - page_started
        label = f"dashboard {version}"
        wait_until(
            lambda: worker_times(control_plane, label)["checked"], args.timeout, f"{label} checked"
        )
        time.sleep(0.2)
    after = _memory(web)
    busiest = max(web_peak, key=lambda pid: web_peak[pid] - steady.get(pid, (0, 0))[0])
    times = worker_times(control_plane, label)
    uploaded = next(
        (
            log_time(line)
            for line in control_plane.log().splitlines()
            if f"uploaded {label} " in line and log_time(line)
        ),
        None,
    )
    rows = artifact_rows(control_plane, "dashboard", version)
    native = next((row for row in rows if row["class"] == "x86_64"), {})
    return {
        "version": version,
        "answer_s": round(answered - started, 3),
        "status": status,
        "change_page_s": round(page_s, 3),
        "change_page_status": page_status,
        "web_workers": len(web),
        "web_steady_rss_mib": round(steady[busiest][0] / 1024, 1),
        "web_peak_rss_mib": round(web_peak[busiest] / 1024, 1),
        "web_hwm_mib": round(after[busiest][1] / 1024, 1) if busiest in after else None,
        "queue_wait_s": None
        if uploaded is None or times["check_started"] is None
        else round(times["check_started"] - uploaded, 2),
        "check_s": None
        if times["checked"] is None or times["check_started"] is None
        else round(times["checked"] - times["check_started"], 2),
        "compile_seconds": native.get("compile_seconds"),
        "compiler_peak_rss_mib": native.get("peak_rss_mib"),
        "job_tree_peak_mib": round(max((s[2] for s in jobs.samples), default=0) / 1024, 1),
        "job_tree_before_mib": round(jobs.samples[0][2] / 1024, 1) if jobs.samples else None,
        "load_1min": load,
    }


def markdown(data: dict) -> str:  # type: ignore[type-arg]
    rows = [
        [
            u["version"], f"{u['answer_s'] * 1000:,.0f}", f"{u['change_page_s'] * 1000:,.0f}",
            f"{u['web_steady_rss_mib']} → {u['web_peak_rss_mib']} (HWM {u['web_hwm_mib']})",
            ms((u["queue_wait_s"] or 0) * 1000), ms((u["check_s"] or 0) * 1000),
            f"{u['compile_seconds']} s, {u['compiler_peak_rss_mib']} MiB",
            f"{u['job_tree_before_mib']} → {u['job_tree_peak_mib']}", f"{u['load_1min']:.1f}",
        ]
        for u in data["uploads"]
    ]  # fmt: skip
    table = Table(
        [
            "upload", "POST answered, ms", "change page, ms", "web worker RSS MiB: steady → peak",
            "queue wait, ms", "check, ms", "native compile (CompiledArtifact)",
            "job worker tree (all qcluster processes + compile child) MiB: before → peak",
            "load avg",
        ],
        rows,
    )  # fmt: skip
    answers = [u["answer_s"] for u in data["uploads"]]
    peaks = [u["web_peak_rss_mib"] for u in data["uploads"]]
    return (
        f"### Admin upload of the dashboard ({data['component_bytes']:,} bytes)\n\n"
        f"{machine_line(data['machine'])}. A logged-in session posts the component and its "
        f"manifest through `/admin/plugins/pluginversion/add/` on gunicorn (production "
        f"settings, {data['uploads'][0]['web_workers']} sync workers); memory sampled every "
        f"20 ms from /proc. The check runs in the job worker (a native compile in a child).\n\n"
        f"* answer: median {statistics.median(answers) * 1000:,.0f} ms (before: the upload "
        f"compiled in the request, {OLD_ANSWER_S} s)\n"
        f"* web worker peak RSS: max {max(peaks)} MiB (before: {OLD_WORKER_MIB} MB)\n\n"
        f"{table.markdown()}\n"
    )


if __name__ == "__main__":
    main()
