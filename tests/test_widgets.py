"""The widgets driven from Python against the emulator: set values, click, check what they show."""

from __future__ import annotations

import importlib
import threading
import time

import pytest

pytest.importorskip("ipywidgets")

from helpers import VirtualClock  # noqa: E402

from mi_notebook.errors import ArmError  # noqa: E402
from mi_notebook.resources import WELL_KNOWN_RESOURCES  # noqa: E402
from mi_notebook.widgets import (  # noqa: E402
    ArmExplorer,
    IdentityPicker,
    ResourcePicker,
    SyncExecutor,
    TokenExplorer,
    panels,
)
from mi_notebook.widgets.pickers import CUSTOM  # noqa: E402

connect_module = importlib.import_module("mi_notebook.connection")

PNG = b"\x89PNG"
UNKNOWN_GUID = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"


@pytest.fixture
def clock():
    return VirtualClock(time.time())  # its wall clock stamps fetched_at, so it starts at the real now


@pytest.fixture
def conn(clean_connection, clock):
    """The current connection: an emulator (IMDS + ARM, no rate limits) and a virtual-time client."""
    from mi_notebook.emulator import Emulator

    yield connect_module.connect(mode="emulator", clock=clock, timeout=(1.0, 2.0),
                                 emulator_factory=lambda: Emulator(throttle=False))


@pytest.fixture
def emu(conn):
    return conn.emulator


def explorer(**kw):
    kw.setdefault("executor", SyncExecutor())
    kw.setdefault("list_identities", False)
    return TokenExplorer(**kw)


def is_png(value) -> bool:
    return bytes(value)[:4] == PNG


def statuses(widget):
    """Every value the HTML widget takes from now on."""
    seen = []
    widget.observe(lambda change: seen.append(change["new"]), names="value")
    return seen


# --- pickers ------------------------------------------------------------------------------------------
def test_identity_picker_shows_identity_py_message_and_disables_the_button():
    ex = explorer()
    picker = ex.identity_picker
    assert picker.valid and not ex.button.disabled and picker.text.layout.display == "none"

    picker.kind.value = "client_id"
    assert not picker.valid and ex.button.disabled
    assert picker.text.layout.display == ""
    assert "enter the identity&#x27;s client id" in picker.message.value  # blank: what is needed, not red
    assert "#cf222e" not in picker.message.value

    picker.text.value = "not-a-guid"
    try:
        from mi_notebook.identity import Identity

        Identity.user(client_id="not-a-guid")
    except ValueError as exc:
        expected = str(exc)
    assert picker.error == expected
    assert panels._esc(expected) in picker.message.value and "#cf222e" in picker.message.value
    assert ex.button.disabled

    picker.text.value = UNKNOWN_GUID.upper()
    assert picker.valid and picker.message.value == "" and not ex.button.disabled
    assert picker.identity.client_id == UNKNOWN_GUID

    picker.kind.value = "resource_id"
    picker.text.value = "/subscriptions/x/resourceGroups/rg"
    assert not picker.valid and ex.button.disabled and "resource_id" in picker.error


def test_identity_picker_accepts_every_selector():
    rid = ("/subscriptions/6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b/resourceGroups/rg"
           "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-app")
    for text, kind in ((f"object_id={UNKNOWN_GUID}", "object_id"), (rid, "resource_id"),
                       (UNKNOWN_GUID, "client_id"), ("system", "system")):
        picker = IdentityPicker(text, list_identities=False)
        assert picker.kind.value == kind and picker.valid


def test_resource_picker_well_known_by_name_and_custom_uri_validated():
    ex = explorer(resource="vault")
    picker = ex.resource_picker
    labels = dict((value, label) for label, value in picker.choice.options)
    assert set(WELL_KNOWN_RESOURCES) < set(labels) and CUSTOM in labels
    assert labels["graph"] == "Microsoft Graph (graph)"
    assert picker.resource == "https://vault.azure.net" and picker.custom.layout.display == "none"

    picker.choice.value = CUSTOM
    assert picker.custom.layout.display == "" and not picker.valid and ex.button.disabled
    picker.custom.value = "no scheme here"
    assert not picker.valid and picker.error and "#cf222e" in picker.message.value and ex.button.disabled
    picker.custom.value = "api://my-app"
    assert picker.valid and picker.value == "api://my-app" and not ex.button.disabled

    assert ResourcePicker("https://storage.azure.com/").choice.value == CUSTOM


# --- TokenExplorer: success -----------------------------------------------------------------------------
def test_get_token_shows_card_claims_and_charts(conn, emu):
    ex = explorer(resource="graph")
    seen = statuses(ex.status)
    ex.button.click()  # the same path as the browser (handler errors would be swallowed: check effects)

    token = ex.token
    assert token is not None and ex.error is None and not token.from_cache
    assert token.resource == "https://graph.microsoft.com/"
    raw = token.reveal()
    shown = ex.token_card.value + ex.claims_card.value + ex.status.value + ex.error_panel.value + "".join(seen)
    assert raw not in shown and raw.split(".")[1] not in shown
    assert token.fingerprint in ex.token_card.value
    assert "Claims (" in ex.claims_card.value and "meaning" in ex.claims_card.value
    assert emu.vm.system_identity.object_id in ex.claims_card.value  # the oid claim
    assert "https://graph.microsoft.com/" in ex.claims_card.value
    assert is_png(ex.lifetime_chart.value) and ex.lifetime_chart.layout.display == ""
    assert is_png(ex.timeline_chart.value) and ex.timeline_chart.layout.display == ""
    assert ex.error_panel.value == ""
    assert any("Attempt 1 of 5</b>: HTTP 200 (success)" in s for s in seen)
    assert "Got a token: 1 attempt" in ex.status.value
    assert not ex.button.disabled and ex.button.description == "Get token" and not ex.running
    assert "embedded emulator (not Azure) at " + conn.endpoint in ex.title.value

    ex.on_get()  # second time: from the cache, said so
    assert ex.token.from_cache and "Served from the cache" in ex.status.value
    ex.force_refresh.value = True
    ex.on_get()
    assert not ex.token.from_cache


def test_retries_show_live_progress_in_virtual_time(conn, emu, clock):
    emu.inject(503, endpoint="token", count=2)
    ex = explorer()
    seen = statuses(ex.status)
    bars = []
    ex.progress.observe(lambda c: bars.append(c["new"]), names="value")
    ex.on_get()

    progress = [s for s in seen if "Attempt" in s]
    assert progress[0].startswith("<b>Attempt 1 of 5</b>: HTTP 503, retrying in ")
    assert progress[1].startswith("<b>Attempt 2 of 5</b>: HTTP 503, retrying in ")
    assert progress[2] == "<b>Attempt 3 of 5</b>: HTTP 200 (success)"
    assert bars[-3:] == [1, 2, 3] and ex.progress.bar_style == "success"
    assert sum(clock.slept) > 1.0  # backoff happened, in virtual time
    assert "3 attempts" in ex.status.value and ex.token.timeline.statuses == ["503", "503", "200"]


# --- TokenExplorer: errors ----------------------------------------------------------------------------
def test_failed_fetch_shows_readable_error_panel_with_timeline(conn, emu):
    emu.inject(500, endpoint="token", count=None)
    ex = explorer()
    ex.on_get()
    panel = ex.error_panel.value
    assert ex.token is None and type(ex.error).__name__ == "ServerError"
    assert "Azure failed on its side" in panel and "What to do:" in panel
    assert "HTTP status" in panel and ">500<" in panel and "5 attempts" in panel
    assert "Traceback" not in panel and "mi-error-panel" in panel
    assert is_png(ex.timeline_chart.value) and ex.timeline_chart.layout.display == ""
    assert ex.lifetime_chart.layout.display == "none" and ex.token_card.value == "" == ex.claims_card.value
    assert "Failed" in ex.status.value and ex.progress.bar_style == "danger"
    assert not ex.button.disabled

    emu.clear_faults()  # the next click recovers and clears the panel
    ex.on_get()
    assert ex.token is not None and ex.error_panel.value == ""


def test_unknown_identity_explained(conn):
    ex = explorer(identity=f"client_id={UNKNOWN_GUID}")
    ex.on_get()
    assert type(ex.error).__name__ == "IdentityNotFoundError"
    assert "This identity is not assigned to the VM" in ex.error_panel.value
    assert "Identity blade" in ex.error_panel.value  # the hint


def test_unexpected_exception_is_a_bug_panel_without_the_token(conn, monkeypatch):
    secret = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ4In0.c2lnbmF0dXJlc2ln"

    def broken(*args, **kwargs):
        raise RuntimeError(f"exploded near {secret}")

    monkeypatch.setattr(connect_module, "get_token", broken)
    ex = explorer()
    ex.on_get()
    panel = ex.error_panel.value
    assert "bug in mi-notebook" in panel and "RuntimeError" in panel and "exploded near" in panel
    assert secret not in panel and "&lt;redacted&gt;" in panel
    assert "Traceback" not in panel and not ex.button.disabled


def test_value_error_from_get_token_is_an_input_panel(conn, monkeypatch):
    def refuse(*args, **kwargs):
        raise ValueError("resource: 'x' is not an App ID URI")

    monkeypatch.setattr(connect_module, "get_token", refuse)
    ex = explorer()
    ex.on_get()
    assert "Check the input" in ex.error_panel.value and "nothing was sent" in ex.error_panel.value


# --- off the main thread ------------------------------------------------------------------------------
def test_default_executor_runs_off_thread_and_ignores_double_clicks(conn, monkeypatch):
    release = threading.Event()
    threads = []
    real = connect_module.get_token

    def slow(*args, **kwargs):
        threads.append(threading.current_thread().name)
        assert release.wait(5)
        return real(*args, **kwargs)

    monkeypatch.setattr(connect_module, "get_token", slow)
    ex = TokenExplorer(list_identities=False)  # default executor: a worker thread
    future = ex.on_get()
    try:
        assert ex.running and ex.button.disabled and ex.button.description.startswith("Fetching")
        assert ex.progress.layout.display == "" and "Asking for a token" in ex.status.value
        assert ex.on_get() is future  # a second click while running starts nothing new
    finally:
        release.set()
    future.result(timeout=10)
    assert threads and threads[0].startswith("mi-notebook-widget") and len(threads) == 1
    assert ex.token is not None and not ex.button.disabled and ex.button.description == "Get token"
    assert ex.progress.layout.display == "none"  # the bar shows only while a request runs


# --- stable text repr -----------------------------------------------------------------------------------
def test_text_repr_is_stable():
    a, b = explorer(), explorer()
    for x, y in ((a, b), (a.identity_picker, b.identity_picker), (a.resource_picker, b.resource_picker),
                 (ArmExplorer(executor=SyncExecutor(), list_identities=False),
                  ArmExplorer(executor=SyncExecutor(), list_identities=False))):
        bundle_x, bundle_y = x._repr_mimebundle_(), y._repr_mimebundle_()
        assert bundle_x["text/plain"] == bundle_y["text/plain"] == repr(x)
        assert "0x" not in repr(x) and x.widget.model_id not in repr(x)
        assert "application/vnd.jupyter.widget-view+json" in bundle_x
    assert repr(a) == "TokenExplorer(resource='https://management.azure.com/', identity='system-assigned')"
    a.identity_picker.kind.value = "object_id"
    assert repr(a) == "TokenExplorer(resource='https://management.azure.com/', identity='invalid')"


# --- identities by name ------------------------------------------------------------------------------
def test_identities_listed_by_name_through_arm(conn, emu):
    ex = explorer(list_identities=None)  # the default lister: mi_notebook.arm
    picker = ex.identity_picker
    assert picker.known.layout.display == "none"
    ex._repr_mimebundle_()  # first display starts the listing (synchronous here)
    labels = [label for label, _ in picker.known.options]
    user = emu.vm.identities[1]
    assert picker.known.layout.display == "" and picker.note.value == ""
    assert f"{emu.vm.name} (system-assigned)" in labels
    assert any(label.startswith(f"{user.name} (user-assigned, client id {user.client_id[:8]}") for label in labels)

    chosen = next(value for label, value in picker.known.options if label.startswith(user.name))
    picker.known.value = chosen
    assert picker.kind.value == "client_id" and picker.text.value == user.client_id and picker.valid
    ex.on_get()
    assert ex.token.identity.client_id == user.client_id

    picker.kind.value = "system"  # typing something else forgets the named choice
    assert picker.known.value == ""


def test_identity_listing_failure_is_a_note_not_a_panel():
    def denied():
        raise ArmError("no", code="AuthorizationFailed", status=403)

    ex = explorer(list_identities=denied)
    ex.identity_picker.load_identities()
    note = ex.identity_picker.note.value
    assert "could not be listed through ARM (AuthorizationFailed)" in note and "choose one by id" in note
    assert ex.error_panel.value == "" and ex.identity_picker.known.layout.display == "none"
    assert ex.identity_picker.valid and not ex.button.disabled


def test_a_bug_in_listing_is_named_not_blamed_on_a_missing_module(caplog):
    def broken():
        raise ModuleNotFoundError("No module named 'somewhere_else'", name="somewhere_else")

    ex = explorer(list_identities=broken)
    ex.identity_picker.load_identities()
    note = ex.identity_picker.note.value
    assert "ModuleNotFoundError" in note and "somewhere_else" in note and "mi_notebook.arm" not in note
    assert "through ARM" not in note and "choose one by id" in note
    assert any("failed unexpectedly" in r.getMessage() for r in caplog.records)


# --- ArmExplorer -------------------------------------------------------------------------------------------
def test_arm_explorer_lists_subscriptions_groups_and_resources(conn, emu):
    ex = ArmExplorer(executor=SyncExecutor(), list_identities=False)
    assert ex.group.disabled
    ex.list_button.click()
    assert not ex.errors, ex.error_panel.value
    assert emu.vm.subscription_id in ex.subscriptions_html.value and "Subscriptions (1 item)" in ex.subscriptions_html.value
    assert emu.vm.resource_group in ex.groups_html.value
    names = [value for _, value in ex.group.options if value]
    assert emu.vm.resource_group in names and not ex.group.disabled and ex.resources_html.value == ""

    ex.group.value = emu.vm.resource_group  # choosing a group lists its resources
    assert ex.resources and f"Resources in {emu.vm.resource_group}" in ex.resources_html.value
    assert emu.vm.name in ex.resources_html.value
    assert "Done." in ex.status.value and not ex.list_button.disabled


def test_arm_403_is_the_rbac_lesson(conn, emu):
    stranger = next(i for i in emu.vm.identities[1:] if not emu.vm.assignments_for(i.object_id))
    ex = ArmExplorer(f"client_id={stranger.client_id}", executor=SyncExecutor(), list_identities=False)
    ex.on_list()
    panel = ex.error_panel.value
    assert set(ex.errors) == {"resource_groups"}  # GET /subscriptions answers an empty list, as ARM does
    assert ex.subscriptions == [] and "no subscription this identity may see" in ex.subscriptions_html.value
    assert all(getattr(e, "status", None) == 403 for e in ex.errors.values())
    assert "403: this identity may not do that (RBAC)" in panel
    assert stranger.object_id in panel and stranger.client_id in panel  # which identity
    assert "Microsoft.Resources/subscriptions/resourceGroups/read" in panel  # which action
    assert f"/subscriptions/{emu.vm.subscription_id}" in panel  # which scope
    assert "Reader" in panel and "az role assignment create" in panel  # what to assign
    assert "ARM refused part of it" in ex.status.value and "Traceback" not in panel


# --- panels ----------------------------------------------------------------------------------------------
def test_progress_text_variants():
    from mi_notebook.retry import Attempt

    a = Attempt(number=5, start=0, duration=0.1, status=None, exception="ReadTimeout: slow", outcome="failed")
    assert panels.progress_text(a, None, 5) == "<b>Attempt 5 of 5</b>: ReadTimeout, giving up"
    b = Attempt(number=1, start=0, duration=0.1, status=429, outcome="retried", wait=3, wait_reason="retry-after")
    assert panels.progress_text(b, 3.0, 5) == "<b>Attempt 1 of 5</b>: HTTP 429, retrying in 3.0 s (Retry-After)"


def test_opaque_token_is_shown_without_claims(conn, monkeypatch):
    import time

    from mi_notebook.tokens import AccessToken

    now = int(time.time())
    opaque = AccessToken("not-a-jwt-but-a-token", resource="https://vault.azure.net", fetched_at=now,
                         expires_on=now + 3600, endpoint=conn.endpoint)
    monkeypatch.setattr(connect_module, "get_token", lambda *a, **k: opaque)
    ex = explorer()
    ex.on_get()
    assert ex.token is opaque and ex.error_panel.value == ""
    assert "Not decoded" in ex.checks_card.value and ex.claims_card.value == ""
    assert opaque.fingerprint in ex.token_card.value and "not-a-jwt" not in ex.token_card.value
    assert is_png(ex.lifetime_chart.value)


def test_arm_explorer_token_failure_is_one_panel(conn, emu):
    emu.inject(500, endpoint="token", count=None)
    ex = ArmExplorer(f"client_id={emu.vm.identities[1].client_id}", executor=SyncExecutor(),
                     list_identities=False)
    ex.on_list()
    assert set(ex.errors) == {"subscriptions"} and ex.error_panel.value.count("mi-error-panel") == 1
    assert "Azure failed on its side" in ex.error_panel.value and ex.groups_html.value == ""
    assert not ex.list_button.disabled and ex.group.disabled


def test_the_arm_explorer_title_says_the_emulator_is_not_azure(conn):
    ex = ArmExplorer(executor=SyncExecutor(), list_identities=False)
    assert "tokens from embedded emulator (not Azure) at " + conn.endpoint in ex.title.value


# --- what notebook 6 used to drive in code (its readers now click, and see pictures) ---------------------
def test_the_clicks_notebook_6_describes_work_on_the_worker_thread(conn, emu):
    """Pick an identity and a resource, Get token; a bad resource greys the button; List, then a group;
    an identity without a role: the flows notebook 6 tells its readers to click, with the default
    (threaded) executor the page uses, each job's future awaited as the page would see it finish."""
    user, stranger = emu.vm.user_identities
    ex = TokenExplorer(list_identities=False)
    ex.identity_picker.set_identity(f"client_id={user.client_id}")
    ex.resource_picker.set_resource("vault")
    ex.on_get().result(timeout=30)
    assert ex.error is None and ex.token.resource == "https://vault.azure.net"
    assert ex.token.claims.client_id == user.client_id and user.name in ex.claims_card.value
    assert repr(ex) == f"TokenExplorer(resource='https://vault.azure.net', identity='user-assigned (client_id={user.client_id})')"

    ex.resource_picker.set_resource("ftp://example.com")  # not an App ID URI: caught before anything is sent
    assert ex.button.disabled and "not an App ID URI" in ex.resource_picker.error and ex.on_get() is None
    ex.resource_picker.set_resource("arm")
    assert not ex.button.disabled

    arm = ArmExplorer(list_identities=False)
    arm.on_list().result(timeout=30)
    names = [g["name"] for g in arm.groups]
    assert not arm.errors and emu.vm.resource_group in names and len(arm.subscriptions) == 1
    arm.group.value = emu.vm.resource_group  # choosing it in the drop-down starts the listing
    arm.future.result(timeout=30)
    assert emu.vm.name in [r["name"] for r in arm.resources] and f"Resources in {emu.vm.resource_group}" in arm.resources_html.value

    arm.identity_picker.set_identity(f"client_id={stranger.client_id}")
    arm.on_list().result(timeout=30)
    assert set(arm.errors) == {"resource_groups"} and arm.errors["resource_groups"].status == 403
    assert "403: this identity may not do that (RBAC)" in arm.error_panel.value and arm.groups == []


def test_the_token_card_names_the_identity_the_claims_show(clean_connection, clock):
    """On Azure ML, DEFAULT_IDENTITY_CLIENT_ID names the compute's identity, which is system-assigned: the card
    says what the token's claims say, not what was sent (a client id, so "user-assigned" by the request)."""
    from mi_notebook.emulator import Emulator

    conn = connect_module.connect(mode="emulator", profile="azureml", clock=clock, timeout=(1.0, 2.0),
                                  emulator_factory=lambda: Emulator(profile="azureml", throttle=False, arm=False))
    ex = explorer(resource="arm")
    ex.button.click()
    assert ex.error is None and ex.token is not None
    assert ex.token.identity.client_id == conn.emulator.vm.system_identity.client_id  # what was sent
    assert ">identity</td><td style=\"padding:2px 8px;text-align:left;vertical-align:top;border:none\">" \
           "system-assigned</td>" in ex.token_card.value
    assert "user-assigned" not in ex.token_card.value
