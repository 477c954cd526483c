"""What a person does and sees: upload and approve in the admin, watch the fleet page; all
over HTTPS through the fleet's nginx, with Secure cookies and CSRF checked behind the proxy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.support import ARTIFACTS, http_get, wait_until


@pytest.fixture(scope="module")
def admin(browser, fleet) -> Iterator[Page]:
    page = browser.new_page(viewport={"width": 1200, "height": 900}, ignore_https_errors=True)
    page.goto(f"{fleet.control_plane.url}/admin/login/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", fleet.control_plane.admin_password)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_be_visible()
    yield page
    page.close()


def test_upload_approve_and_roll_out_in_the_admin_delivers_to_every_device(admin, fleet, build):
    folder = build("hello")
    cp = fleet.control_plane.url

    admin.goto(f"{cp}/admin/plugins/pluginversion/add/")
    admin.set_input_files("input[name=component]", str(folder / "hello.wasm"))
    admin.set_input_files("input[name=manifest_file]", str(folder / "manifest.toml"))
    admin.click("input[name=_save]")
    expect(admin.locator(".messagelist")).to_contain_text("being checked in the background")
    admin.screenshot(path=str(ARTIFACTS / "admin-uploaded.png"), full_page=True)

    def checked() -> bool:
        admin.reload()
        return "pending review" in admin.locator("#content").inner_text()

    wait_until(checked, 90, "the background check")
    expect(admin.locator("#content")).to_contain_text("x86_64")
    admin.screenshot(path=str(ARTIFACTS / "admin-checked.png"), full_page=True)

    admin.goto(f"{cp}/admin/plugins/pluginversion/")
    admin.locator("tr", has_text="1.0.0").locator("input.action-select").check()
    admin.select_option("select[name=action]", "approve")
    admin.click("button[name=index]")
    expect(admin.locator(".messagelist")).to_contain_text("serial 1")

    admin.locator("a", has_text="hello 1.0.0").first.click()
    expect(admin.locator("#content")).to_contain_text("approved versions reach devices only")
    admin.click("text=Start a rollout")
    expect(admin.locator("select[name=version]")).to_have_value(str(_version_id(admin)))
    admin.fill("input[name=soak_s]", "0")  # two devices: the canary, then the other
    admin.click("input[name=_save]")
    expect(admin.locator(".messagelist")).to_contain_text("added successfully")
    admin.screenshot(path=str(ARTIFACTS / "admin-rollout-started.png"), full_page=True)

    for device in fleet.devices:
        wait_until(
            lambda d=device: http_get(f"{d.url}/plugins/hello/") == (200, "hello from version 1"),
            90,
            "hello on every device",
        )


def _version_id(page: Page) -> int:
    """The id of the version whose rollout form is open (``?version=<id>`` in its URL)."""
    return int(page.url.rsplit("version=", 1)[1])


def test_the_rollout_completed_and_its_page_says_so(admin, fleet):
    admin.goto(f"{fleet.control_plane.url}/fleet/rollouts/")
    admin.locator("a[href^='/fleet/rollouts/']", has_text="#").first.click()

    expect(admin.locator("body")).to_contain_text("completed", timeout=30_000)
    expect(admin.locator("body")).to_contain_text("wave passed")


def test_the_fleet_page_shows_every_device_online_with_its_plugins(admin, fleet):
    admin.goto(f"{fleet.control_plane.url}/fleet/")

    for name in ("pi-kitchen", "pi-greenhouse"):
        row = admin.locator("tr", has_text=name)
        expect(row).to_contain_text("online", timeout=15_000)
        expect(row).to_contain_text("hello 1.0.0", timeout=15_000)
    admin.screenshot(path=str(ARTIFACTS / "fleet.png"), full_page=True)


def test_a_device_page_shows_history_and_events(admin, fleet):
    """The control plane has no address for a device (it may be behind NAT): the page links
    to nothing on the device, and shows what the device reported."""
    admin.goto(f"{fleet.control_plane.url}/fleet/")
    admin.click("text=pi-kitchen")

    expect(admin.locator("body")).to_contain_text("installed", timeout=15_000)
    expect(admin.locator("svg polyline").first).to_be_attached(timeout=15_000)
    assert admin.locator(f"a[href^='{fleet.devices[0].url}']").count() == 0
    admin.screenshot(path=str(ARTIFACTS / "device.png"), full_page=True)


def test_the_fleet_page_needs_a_login(browser, fleet):
    page = browser.new_page(ignore_https_errors=True)
    page.goto(f"{fleet.control_plane.url}/fleet/")

    assert "/login/" in page.url
    page.close()
