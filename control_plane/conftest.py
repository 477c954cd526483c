"""Fixtures for the control plane: Django on a real database, real components, a real key.

SQLite by default; PostgreSQL when ``CONTROL_PLANE_TEST_DATABASE_URL`` names a server
(Django creates and drops a ``test_`` database there). Uploads share one compiled-component
cache with the device host tests, so each distinct component is compiled once.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "control_plane.settings")
os.environ.setdefault("CONTROL_PLANE_SECRET_KEY", "tests-only-secret-key")
_static_root = tempfile.mkdtemp(prefix="cp-test-static-")
atexit.register(shutil.rmtree, _static_root, ignore_errors=True)
os.environ["CONTROL_PLANE_STATIC_ROOT"] = _static_root
os.environ["CONTROL_PLANE_JOBS_SYNC"] = "1"  # jobs run inside the call that queues them
os.environ["CONTROL_PLANE_DATABASE_URL"] = os.environ.get(
    "CONTROL_PLANE_TEST_DATABASE_URL", "sqlite:///:memory:"
)

import django  # noqa: E402

django.setup()

import pytest  # noqa: E402
from django.contrib.auth.models import Permission, User  # noqa: E402

from control_plane.builds.models import DeviceClass  # noqa: E402
from control_plane.builds.services import record_engine_key  # noqa: E402
from control_plane.devices.models import Device  # noqa: E402
from control_plane.devices.services import create_enrollment_token, enroll_device  # noqa: E402
from control_plane.plugins.models import PluginVersion  # noqa: E402
from control_plane.plugins.services import (  # noqa: E402
    approve_plugin_version,
    upload_plugin_version,
)
from control_plane.signing import create_signing_key  # noqa: E402
from fleet_common.compiler.settings import native_target  # noqa: E402
from tests.support import REPO  # noqa: E402


def pytest_report_header() -> str:
    from django.conf import settings

    database = settings.DATABASES["default"]
    return f"control plane database: {database['ENGINE'].rsplit('.', 1)[-1]} {database['NAME']}"


@dataclass(frozen=True)
class Built:
    """A built test plugin: its component bytes and its manifest.toml text."""

    component: bytes
    manifest: str


@pytest.fixture(scope="session")
def hello(build) -> Built:
    folder = build("hello")
    return Built((folder / "hello.wasm").read_bytes(), (folder / "manifest.toml").read_text())


@pytest.fixture(scope="session")
def lab(build) -> Built:
    folder = build("lab")
    return Built((folder / "lab.wasm").read_bytes(), (folder / "manifest.toml").read_text())


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker) -> None:  # type: ignore[no-untyped-def]
    """Compiles for this machine's class only: an emulated aarch64 compile takes over a
    minute of both cores, so only the one test about it (tests/compiler) pays for it. The
    class's engine key is asked of a compiler child once here, not again in every test."""
    with django_db_blocker.unblock():
        DeviceClass.objects.exclude(target=native_target()).update(enabled=False)
        for device_class in DeviceClass.objects.filter(target=native_target(), engine_key=""):
            record_engine_key(device_class)


@pytest.fixture(scope="session")
def signing_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("signing") / "fleet-key.pem"
    create_signing_key(path)
    return path


@pytest.fixture(autouse=True)
def control_plane_settings(settings, tmp_path: Path, signing_key_file: Path) -> None:
    """All tests share the key and compiled cache; none reads a developer's old artifacts."""
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.SIGNING_KEY_PATH = signing_key_file
    settings.COMPILED_CACHE_DIR = Path(
        os.environ.get("PI_FLEET_TEST_COMPILED", REPO / "var" / "test-compiled")
    )
    settings.HEARTBEAT_INTERVAL_S = 10.0
    settings.ARTIFACT_ZSTD_LEVEL = 1
    # PBKDF2 at Django's cost is 0.37 s per test user and per login, more than most tests.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def manifest_text(
    name: str = "hello",
    version: str = "1.0.0",
    world: str = "dashboard",
    *,
    dht22: list[int] | None = None,
    gpio_out: list[int] | None = None,
    kv: int | None = None,
    memory_mib: int | None = None,
) -> str:
    """A manifest.toml; hello's component fits any dashboard manifest (it imports only log)."""
    lines = [f'name = "{name}"', f'version = "{version}"', f'world = "{world}"']
    lines.append(f'component = "{name}.wasm"')
    capabilities = []
    if dht22 is not None:
        capabilities.append(f"dht22 = {dht22}")
    if gpio_out is not None:
        capabilities.append(f"gpio-out = {gpio_out}")
    if kv is not None:
        capabilities.append(f"kv-quota-bytes = {kv}")
    if capabilities:
        lines += ["[capabilities]", *capabilities]
    if memory_mib is not None:
        lines += ["[limits]", f"memory-mib = {memory_mib}"]
    return "\n".join(lines) + "\n"


Uploader = Callable[..., PluginVersion]


@pytest.fixture
def upload(hello: Built, db) -> Uploader:
    """Uploads hello's component under any manifest: ``upload("1.1.0", dht22=[4])``."""

    def _upload(version: str = "1.0.0", name: str = "hello", **grants: object) -> PluginVersion:
        return upload_plugin_version(
            component=hello.component,
            manifest_text=manifest_text(name, version, **grants),  # type: ignore[arg-type]
        )

    return _upload


@pytest.fixture
def approved(upload: Uploader, admin_user: User) -> Uploader:
    """Uploads and approves: ``approved("1.0.0", name="clock")``."""

    def _approved(version: str = "1.0.0", name: str = "hello", **grants: object) -> PluginVersion:
        return approve_plugin_version(
            version=upload(version, name, **grants), approved_by=admin_user
        )

    return _approved


DeviceFactory = Callable[..., tuple[Device, str]]


@pytest.fixture
def enroll(db) -> DeviceFactory:
    """Enrolls a device through the real service: ``device, token = enroll("pi-1")``."""

    def _enroll(name: str = "pi-1") -> tuple[Device, str]:
        _, secret = create_enrollment_token(label=f"for {name}")
        return enroll_device(enrollment_token=secret, name=name, host_version="0.1.0")

    return _enroll


@pytest.fixture
def reviewer(django_user_model) -> User:
    """A staff user who may upload, view and approve plugin versions."""
    user = django_user_model.objects.create_user("reviewer", password="x", is_staff=True)
    codenames = ["add_pluginversion", "view_pluginversion", "change_pluginversion"]
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="plugins", codename__in=[*codenames, "approve_pluginversion"]
        )
    )
    return user
