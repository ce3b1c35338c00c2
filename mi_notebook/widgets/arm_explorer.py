"""ArmExplorer: what can this identity see in Azure Resource Manager?

Pick an identity, press "List": the subscriptions it can see and the resource groups of the VM's
subscription; pick a group to list its resources. Every call goes through ``mi_notebook.arm_client``
(the functions a script calls), off the kernel's main thread. A 403 is shown as the RBAC lesson
it is: which identity, which action, which scope, what role to assign.

Example::

    >>> from mi_notebook.widgets import ArmExplorer, SyncExecutor
    >>> ex = ArmExplorer(executor=SyncExecutor(), list_identities=False)
    >>> ex
    ArmExplorer(identity='system-assigned')
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

import ipywidgets as w

from ..errors import ArmError, ManagedIdentityError
from ..identity import Identity
from . import panels
from ._display import widget_bundle
from ._executor import default_executor
from .pickers import IdentityPicker

__all__ = ["ArmExplorer"]

logger = logging.getLogger(__name__)

def _title() -> str:
    from ..connection import current

    return panels.title("ARM Explorer", f"what this identity may read; tokens from {panels.where(current())}")


def _default_client(identity: Identity) -> Any:
    from ..arm_client import arm

    return arm(identity)


def _tags(tags: Any) -> str:
    return ", ".join(f"{k}={v}" for k, v in (tags or {}).items())


class ArmExplorer:
    """Subscriptions, resource groups and resources, read with the chosen identity.

    ``identity``: the initial choice. ``executor``: where ARM calls run (default: a shared worker
    thread pool; ``SyncExecutor()`` in tests). ``list_identities``: as for :class:`IdentityPicker`.
    ``client_factory(identity) -> ArmClient``: default ``mi_notebook.arm_client.arm(identity)``.
    After a load: ``subscriptions``, ``groups``, ``resources`` (ARM's lists) and ``errors``
    (``section -> exception``); ``future`` is the last submitted job.

    Example::

        >>> from mi_notebook.widgets import SyncExecutor
        >>> ex = ArmExplorer(executor=SyncExecutor(), list_identities=False)
        >>> ex.list_button.description, ex.group.disabled
        ('List', True)
    """

    def __init__(
        self,
        identity: Identity | str | None = None,
        *,
        executor: Executor | None = None,
        list_identities: Any = None,
        client_factory: Callable[[Identity], Any] | None = None,
    ) -> None:
        self._executor = executor
        self._client_factory = client_factory or _default_client
        self._lock = threading.Lock()
        self.running = False
        self.future: Future[None] | None = None
        self.subscriptions: list[Any] = []
        self.groups: list[Any] = []
        self.resources: list[Any] = []
        self.errors: dict[str, BaseException] = {}
        self._identity: Identity | None = None

        self.identity_picker = IdentityPicker(identity, list_identities=list_identities, executor=executor)
        self.title = w.HTML(_title())
        self.list_button = w.Button(description="List", button_style="primary", icon="list",
                                    tooltip="List subscriptions and resource groups with this identity",
                                    layout=w.Layout(width="140px"))
        self.group = w.Dropdown(options=[("(list first)", "")], value="", description="Group",
                                disabled=True, style={"description_width": "50px"}, layout=w.Layout(width="360px"))
        self.status = w.HTML(panels.note("Choose an identity, then List."))
        self.subscriptions_html = w.HTML()
        self.groups_html = w.HTML()
        self.resources_html = w.HTML()
        self.error_panel = w.HTML()
        for widget, name in ((self.list_button, "mi-arm-list"), (self.status, "mi-progress"),
                             (self.subscriptions_html, "mi-arm-subscriptions"), (self.groups_html, "mi-arm-groups"),
                             (self.resources_html, "mi-arm-resources"), (self.error_panel, "mi-error")):
            widget.add_class(name)
        self.widget = w.VBox([
            self.title,
            self.identity_picker.widget,
            w.HBox([self.list_button, self.group], layout=w.Layout(align_items="center", margin="4px 0 0 84px")),
            w.HBox([self.status], layout=w.Layout(margin="0 0 0 84px")),
            self.error_panel,
            self.subscriptions_html,
            self.groups_html,
            self.resources_html,
        ], layout=w.Layout(max_width="980px"))
        self.widget.add_class("mi-arm-explorer")

        self.list_button.on_click(self.on_list)
        self.group.observe(self.on_group, names="value")
        self.identity_picker.on_change(lambda _p: self._update_buttons())
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.list_button.disabled = self.running or not self.identity_picker.valid
        self.group.disabled = self.running or not self.groups

    def _submit(self, fn: Callable[..., None], *args: Any) -> Future[None] | None:
        with self._lock:
            if self.running:
                return self.future
            self.running = True
        self._update_buttons()
        self.future = (self._executor or default_executor()).submit(self._guard, fn, *args)
        return self.future

    def _guard(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - the page shows a bug panel, never a traceback
            logger.exception("ArmExplorer: unexpected error")
            self.error_panel.value = panels.bug_panel(exc, "reading from Azure Resource Manager")
            self.status.value = panels.note("Failed: unexpected error.", colour="#cf222e")
        finally:
            with self._lock:
                self.running = False
            self._update_buttons()

    # --- handlers ------------------------------------------------------------------------------------
    def on_list(self, _button: Any = None) -> Future[None] | None:
        """List subscriptions and resource groups (on the executor). Returns the job's future."""
        identity = self.identity_picker.identity
        if identity is None:
            self._update_buttons()
            return None
        self.status.value = panels.note(f"Reading from ARM as {identity}\u2026")
        self.title.value = _title()  # the connection may have been chosen since the widget was made
        return self._submit(self._list, identity)

    def on_group(self, change: dict[str, Any] | None = None) -> Future[None] | None:
        """List the chosen group's resources (on the executor). Returns the job's future."""
        name = self.group.value
        if not name or self._identity is None:
            return None
        self.status.value = panels.note(f"Listing the resources in {name}\u2026")
        return self._submit(self._list_resources, self._identity, name)

    # --- work (on the executor) ------------------------------------------------------------------------
    def _call(self, section: str, identity: Identity, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except ManagedIdentityError as exc:
            self.errors[section] = exc
            self.error_panel.value += panels.arm_error_panel(exc, str(identity))
        except ValueError as exc:
            self.errors[section] = exc
            self.error_panel.value += panels.input_panel(exc)
        return None

    def _list(self, identity: Identity) -> None:
        self._identity = identity
        self.errors = {}
        self.error_panel.value = self.subscriptions_html.value = ""
        self.groups_html.value = self.resources_html.value = ""
        self.groups, self.resources = [], []
        client = self._client_factory(identity)
        subs = self._call("subscriptions", identity, client.subscriptions)
        self.subscriptions = list(subs or [])
        if subs is not None:
            self.subscriptions_html.value = panels.results_table(
                "Subscriptions", ["name", "subscription id", "state"],
                [(s.get("displayName"), s.get("subscriptionId"), s.get("state")) for s in subs],
                empty="no subscription this identity may see (it needs a role in one)")
        failed = self.errors.get("subscriptions")
        if failed is not None and not isinstance(failed, ArmError):  # no token: the next call fails the same way
            self._finish_status()
            return
        groups = self._call("resource_groups", identity, client.resource_groups)
        self.groups = list(groups or [])
        if groups is not None:
            self.groups_html.value = panels.results_table(
                "Resource groups", ["name", "location", "tags"],
                [(g.get("name"), g.get("location"), _tags(g.get("tags"))) for g in groups],
                empty="no resource group this identity may read")
        self.group.unobserve(self.on_group, names="value")
        try:
            first = "choose a group" if self.groups else "(no group to choose)"
            self.group.options = [(first, "")] + [(g.get("name"), g.get("name")) for g in self.groups]
            self.group.value = ""
        finally:
            self.group.observe(self.on_group, names="value")
        self._finish_status()

    def _list_resources(self, identity: Identity, group: str) -> None:
        self.errors.pop("resources", None)
        self.error_panel.value = ""
        self.resources_html.value = ""
        client = self._client_factory(identity)
        items = self._call("resources", identity, lambda: client.resources(group))
        self.resources = list(items or [])
        if items is not None:
            self.resources_html.value = panels.results_table(
                f"Resources in {group}", ["name", "type", "location"],
                [(r.get("name"), r.get("type"), r.get("location")) for r in items],
                empty="this group holds no resources")
        self._finish_status()

    def _finish_status(self) -> None:
        if self.errors:
            which = ", ".join(s.replace("_", " ") for s in self.errors)
            self.status.value = panels.note(f"ARM refused part of it ({which}): see below.", colour="#9a6700")
        else:
            self.status.value = panels.note("Done.", colour="#1a7f37")

    # --- display -------------------------------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        self.identity_picker.load_identities()
        return widget_bundle(self, self.widget, **kwargs)

    def __repr__(self) -> str:
        identity = self.identity_picker.identity
        return f"ArmExplorer(identity={str(identity) if identity is not None else 'invalid'!r})"
