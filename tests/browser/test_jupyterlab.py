"""TokenExplorer and ArmExplorer in a real JupyterLab, in Debian's chromium driven by Playwright, all on loopback.

Runs the helper notebook (a connection to the embedded emulator, then a TokenExplorer), clicks
"Get token", checks that the claims and both charts render and that no widget error or traceback
shows; then injects a fault into the kernel's emulator over its admin endpoint and checks the
error panel. Screenshots go to ``artifacts/`` (git-ignored); with ``MI_NOTEBOOK_UPDATE_SCREENSHOTS=1``
the clean one is also written to ``docs/images/token-explorer.png`` for the README, and all four to
``notebooks/images/`` for notebook 6, whose static readers see the widgets only through them.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from .conftest import CHROMIUM_ARGS, REPO

pytestmark = [pytest.mark.browser, pytest.mark.timeout(170)]

NOTEBOOK = "token_explorer.ipynb"
STEP = 60_000  # ms: the longest any single wait may take
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob", "about") or parts.hostname in LOCAL_HOSTS


def _admin(imds_url: str, admin_token: str, route: str, *, method: str = "GET", body: object = None) -> int:
    """Call the kernel's emulator's admin endpoint (``/__emulator__/...``) from the test process, with the
    admin token the kernel's emulator took from ``MI_NOTEBOOK_EMULATOR_ADMIN_TOKEN``."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(imds_url + "/__emulator__" + route, data=data, method=method,
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {admin_token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status


def _assert_no_widget_errors(page) -> None:
    outputs = page.locator(".jp-Notebook").inner_text(timeout=STEP)
    assert "Error displaying widget" not in outputs
    assert "Traceback" not in outputs
    assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count() == 0


def _screenshot_without_errors(page, element, path: Path) -> Path:
    """Check that no widget error or traceback shows on ``page``, then save ``element``'s screenshot."""
    _assert_no_widget_errors(page)
    element.screenshot(path=str(path))
    return path


def test_token_explorer_in_jupyterlab(jupyter_lab, chromium_path, artifacts_dir):
    from playwright.sync_api import expect, sync_playwright

    shots = []
    offsite: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True,
                                     timeout=STEP)
        try:
            context = browser.new_context(viewport={"width": 1440, "height": 3400}, device_scale_factor=1)

            def guard(route):
                if _is_local(route.request.url):
                    route.continue_()
                else:
                    offsite.append(route.request.url)
                    route.abort()

            context.route("**/*", guard)
            page = context.new_page()
            page.set_default_timeout(STEP)
            page.goto(jupyter_lab.page_url(NOTEBOOK), wait_until="domcontentloaded")
            expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle", timeout=STEP)

            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            explorer = page.locator(".mi-token-explorer")
            button = explorer.locator("button.mi-get-token")
            expect(button).to_be_enabled(timeout=STEP)
            imds_url = page.locator(".jp-OutputArea-output code").filter(has_text="http://127.0.0.1").first.inner_text()
            assert imds_url.startswith("http://127.0.0.1:")

            # the VM's identities by name, listed through the emulator's ARM side off the main thread
            by_name = explorer.locator(".mi-identity-picker select").nth(1)
            expect(by_name).to_be_visible()
            names = by_name.evaluate("s => Array.from(s.options).map(o => o.text.replace(/\\u00a0/g, ' '))")
            assert "vm-notebook (system-assigned)" in names and len(names) == 4, names

            # a successful fetch: token card, checks, claims table, both charts
            button.click()
            expect(explorer.locator(".mi-claims table").first).to_be_visible()
            expect(explorer.locator(".mi-token-card")).to_contain_text("https://storage.azure.com/")
            expect(explorer.locator(".mi-checks")).to_contain_text("audience")
            expect(explorer.locator(".mi-claims")).to_contain_text("aud")
            for chart in ("img.mi-lifetime-chart", "img.mi-timeline-chart"):
                expect(explorer.locator(chart)).to_be_visible()
                assert explorer.locator(chart).evaluate("img => img.complete && img.naturalWidth > 300")
            expect(explorer.locator(".mi-progress")).to_contain_text("Got a token: 1 attempt")
            expect(button).to_be_enabled()
            shots.append(_screenshot_without_errors(page, explorer, artifacts_dir / "token-explorer.png"))

            # a failing fetch: IMDS answers 500 until cleared; skip the cache so IMDS is asked
            assert _admin(imds_url, jupyter_lab.admin_token, "/faults", method="POST", body={"fault": 500, "endpoint": "token", "count": None}) == 201
            explorer.locator(".mi-force-refresh input[type=checkbox]").check()
            button.click()
            panel = explorer.locator(".mi-error-panel")
            expect(panel).to_be_visible()
            expect(panel).to_contain_text("Azure failed on its side")
            expect(panel).to_contain_text("ServerError")
            expect(panel).to_contain_text("What to do")
            expect(panel).to_contain_text("3 attempts")
            expect(explorer.locator("img.mi-timeline-chart")).to_be_visible()
            expect(explorer.locator(".mi-claims table")).to_have_count(0)
            expect(explorer.locator(".mi-progress")).to_contain_text("Failed")
            expect(button).to_be_enabled()
            shots.append(_screenshot_without_errors(page, explorer, artifacts_dir / "token-explorer-error.png"))
            _admin(imds_url, jupyter_lab.admin_token, "/faults", method="DELETE")

            # ArmExplorer: what the system-assigned identity may read, then a 403 as the RBAC lesson
            arm = page.locator(".mi-arm-explorer")
            arm.scroll_into_view_if_needed()
            arm_by_name = arm.locator(".mi-identity-picker select").nth(1)
            expect(arm_by_name).to_be_visible()
            arm.locator("button.mi-arm-list").click()
            expect(arm.locator(".mi-arm-groups table")).to_be_visible()
            expect(arm.locator(".mi-arm-subscriptions")).to_contain_text("Subscriptions (1 item)")
            group = arm.locator("select").last  # the resource group dropdown
            expect(group).to_be_enabled()
            group.select_option(label="rg-notebooks")
            expect(arm.locator(".mi-arm-resources")).to_contain_text("vm-notebook")
            shots.append(_screenshot_without_errors(page, arm, artifacts_dir / "arm-explorer.png"))

            stranger = next(n for n in arm_by_name.evaluate("s => Array.from(s.options).map(o => o.text)")
                            if n.startswith("id-notebook-2"))
            arm_by_name.select_option(label=stranger)
            arm.locator("button.mi-arm-list").click()
            rbac = arm.locator(".mi-error-panel")
            expect(rbac).to_contain_text("403: this identity may not do that (RBAC)")
            expect(rbac).to_contain_text("Microsoft.Resources/subscriptions/resourceGroups/read")
            expect(rbac).to_contain_text("az role assignment create")
            shots.append(_screenshot_without_errors(page, arm, artifacts_dir / "arm-explorer-rbac.png"))
            page.screenshot(path=str(artifacts_dir / "jupyterlab-page.png"))
        except Exception:
            with_page = locals().get("page")
            if with_page is not None:
                with_page.screenshot(path=str(artifacts_dir / "jupyterlab-failure.png"))
                print("failure screenshot:", artifacts_dir / "jupyterlab-failure.png")
            print("JupyterLab log tail:\n" + jupyter_lab.log_tail())
            raise
        finally:
            browser.close()

    assert not offsite, f"the page tried to reach non-loopback addresses: {offsite}"
    for shot in shots:
        print("screenshot:", shot)
    if os.environ.get("MI_NOTEBOOK_UPDATE_SCREENSHOTS") == "1":
        target = REPO / "docs" / "images" / "token-explorer.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        _save_small_png(shots[0], target)
        print("updated:", target)
        # notebook 6 shows each widget, whole, as a static reader would see it after the clicks above
        for shot in shots:
            target = NOTEBOOK_IMAGES / shot.name
            target.parent.mkdir(parents=True, exist_ok=True)
            _save_small_png(shot, target, max_ratio=None)
            print("updated:", target)


#: the pictures of notebooks/06-widgets.ipynb (its markdown links them as images/<name>.png)
NOTEBOOK_IMAGES = REPO / "notebooks" / "images"


def _save_small_png(source: Path, target: Path, max_ratio: float | None = 1.66) -> None:
    """A copy in 256 colours, at most ``max_ratio`` times as tall as wide (None: whole). The README's
    1.66 keeps the token explorer down to the claims table (cards, checks, both charts)."""
    from PIL import Image

    with Image.open(source) as shot:
        width, height = shot.size
        bottom = height if max_ratio is None else min(height, int(width * max_ratio))
        top = shot.crop((0, 0, width, bottom)).convert("RGB")
        top.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)
