"""Pickers: which identity, which resource, validated as you type.

Both pickers validate with the same functions a script uses (``Identity.user``,
``resolve_resource``): the ``ValueError`` message appears next to the field and ``valid`` is
false until the input is usable. Callers (the explorers) register ``on_change`` callbacks to
enable or disable their buttons.

The identity picker can also offer the VM's identities by name, listed through ARM
(``mi_notebook.arm_client``) off the kernel's main thread. Listing needs a role that can read the VM;
when it fails, a short grey note says why and the id fields keep working.

Example::

    >>> from mi_notebook.widgets import IdentityPicker, ResourcePicker, SyncExecutor
    >>> p = IdentityPicker(list_identities=False)
    >>> p.kind.value = "client_id"; p.text.value = "not-a-guid"
    >>> p.valid, "GUID" in p.error
    (False, True)
    >>> p.text.value = "6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b"
    >>> p.valid, str(p.identity)
    (True, 'user-assigned (client_id=6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b)')
    >>> r = ResourcePicker("vault")
    >>> r.resource
    'https://vault.azure.net'
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from typing import Any

import ipywidgets as w

from ..errors import ManagedIdentityError
from ..identity import Identity
from ..resources import list_resources, resolve_resource
from . import panels
from ._display import widget_bundle
from ._executor import default_executor

__all__ = ["CUSTOM", "IdentityPicker", "ResourcePicker", "default_identity_lister"]

logger = logging.getLogger(__name__)

CUSTOM = "__custom__"
_PICK = "choose one of this VM's identities"
_LABEL = {"description_width": "80px"}
_KINDS = [
    ("system-assigned", "system"),
    ("user-assigned, by client id", "client_id"),
    ("user-assigned, by object id", "object_id"),
    ("user-assigned, by resource id", "resource_id"),
]
_PLACEHOLDERS = {
    "client_id": "client id, e.g. 6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b",
    "object_id": "object (principal) id, a GUID",
    "resource_id": "/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>",
}


def _message(text: str | None) -> str:
    return panels.note("\u26a0 " + text, colour="#cf222e") if text else ""


def _field(item: Any, *names: str) -> Any:
    for name in names:
        value = item.get(name) if isinstance(item, dict) else getattr(item, name, None)
        if value:
            return value
    return None


def _option_for(item: Any) -> tuple[str, Identity] | None:
    """A dropdown entry for one listed identity (``ArmClient.identities()`` rows, or similar objects)."""
    name = _field(item, "name") or "(unnamed)"
    kind = str(_field(item, "kind", "type") or "").lower()
    ident = _field(item, "identity")
    if not isinstance(ident, Identity):
        client_id = _field(item, "client_id", "clientId")
        if kind.startswith("system"):
            ident = Identity.system()
        elif client_id:
            ident = Identity.user(client_id=client_id)
        else:
            return None
    if ident.kind == "system":
        return f"{name} (system-assigned)", ident
    client_id = _field(item, "client_id", "clientId") or (ident.selector[1] if ident.selector else "")
    return f"{name} (user-assigned, client id {str(client_id)[:8]}\u2026)", ident


def default_identity_lister() -> list[Any]:
    """The VM's identities as ARM lists them (``mi_notebook.arm_client.arm().identities()``).

    Raises ``ModuleNotFoundError`` when the ARM client is not installed, or its own errors
    (``ArmError``, ``ManagedIdentityError``) when listing fails.

    Example::

        >>> from mi_notebook.connection import connect, disconnect
        >>> _ = connect(mode="emulator")
        >>> [(row["kind"], row["name"]) for row in default_identity_lister()][0]
        ('system', 'vm-notebook')
        >>> disconnect()
    """
    from ..arm_client import arm

    return list(arm().identities())


class IdentityPicker:
    """System-assigned, or user-assigned by client id / object id / resource id; or by name from ARM.

    ``identity``: the initial choice (an ``Identity`` or text for ``Identity.parse``).
    ``list_identities``: ``False`` (never list), ``None`` (list with :func:`default_identity_lister`),
    or a callable returning items with ``name``, ``client_id``, ``principal_id``/``object_id``
    and ``kind`` (attributes or dict keys). Listing starts at the first display, or when
    :meth:`load_identities` is called, and runs on ``executor``.

    Attributes: ``kind``, ``text``, ``known`` (the by-name dropdown), ``message``, ``note``,
    ``widget``; ``identity`` (an ``Identity`` or ``None`` while invalid), ``error``, ``valid``.

    Example::

        >>> p = IdentityPicker("object_id=0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0", list_identities=False)
        >>> p.kind.value, p.valid
        ('object_id', True)
    """

    def __init__(
        self,
        identity: Identity | str | None = None,
        *,
        list_identities: Callable[[], Iterable[Any]] | bool | None = None,
        executor: Executor | None = None,
    ) -> None:
        self._executor = executor
        self._lister = None if list_identities is False else (
            list_identities if callable(list_identities) else default_identity_lister)
        self._listing_started = False
        self._callbacks: list[Callable[[IdentityPicker], None]] = []
        self._syncing = False
        self.identities: list[Any] = []

        self.kind = w.Dropdown(options=_KINDS, value="system", description="Identity", style=_LABEL,
                               layout=w.Layout(width="300px"))
        self.text = w.Text(placeholder="", layout=w.Layout(width="420px", display="none"), continuous_update=True)
        self.known = w.Dropdown(options=[(_PICK, "")], value="", description="or by name",
                                style=_LABEL, layout=w.Layout(width="430px", display="none"))
        self.message = w.HTML()
        self.note = w.HTML()
        self.widget = w.VBox([w.HBox([self.kind, self.text]), self.message, self.known, self.note])
        self.widget.add_class("mi-identity-picker")

        self._identity: Identity | None = Identity.system()
        self._error: str | None = None
        self.kind.observe(self._on_input, names="value")
        self.text.observe(self._on_input, names="value")
        self.known.observe(self._on_known, names="value")
        if identity is not None:
            self.set_identity(identity)

    # --- state -------------------------------------------------------------------------------------
    @property
    def identity(self) -> Identity | None:
        """The chosen ``Identity``, or ``None`` while the input is invalid."""
        return self._identity

    @property
    def error(self) -> str | None:
        """Why the input is not usable (identity.py's ``ValueError`` text), or ``None``."""
        return self._error

    @property
    def valid(self) -> bool:
        return self._identity is not None

    def on_change(self, callback: Callable[[IdentityPicker], None]) -> None:
        """Call ``callback(picker)`` after every change of the choice or its validity."""
        self._callbacks.append(callback)

    def set_identity(self, identity: Identity | str) -> None:
        """Select ``identity`` (``ValueError`` if it is not one)."""
        ident = Identity.parse(identity)
        selector = ident.selector
        self._syncing = True
        try:
            self.kind.value = "system" if selector is None else selector[0]
            self.text.value = "" if selector is None else selector[1]
        finally:
            self._syncing = False
        self._on_input()

    def _on_input(self, change: dict[str, Any] | None = None) -> None:
        kind = self.kind.value
        self.text.layout.display = "none" if kind == "system" else ""
        self.text.placeholder = _PLACEHOLDERS.get(kind, "")
        value = self.text.value.strip()
        if kind == "system":
            self._identity, self._error = Identity.system(), None
        elif not value:
            self._identity, self._error = None, f"enter the identity's {kind.replace('_', ' ')}"
        else:
            try:
                self._identity, self._error = Identity.user(**{kind: value}), None
            except ValueError as exc:
                self._identity, self._error = None, str(exc)
        # a blank field is not an error yet: say what is needed, in grey
        if self._error and not value:
            self.message.value = panels.note(self._error)
        else:
            self.message.value = _message(self._error)
        if not self._syncing and self.known.value and self._identity != self.known.value:
            self._syncing = True
            try:
                self.known.value = ""
            finally:
                self._syncing = False
        for callback in list(self._callbacks):
            callback(self)

    # --- identities by name (ARM) ------------------------------------------------------------------
    def load_identities(self) -> None:
        """List the VM's identities off-thread and offer them by name (once; later calls do nothing)."""
        if self._lister is None or self._listing_started:
            return
        self._listing_started = True
        self.note.value = panels.note("Listing this VM's identities through Azure Resource Manager\u2026")
        (self._executor or default_executor()).submit(self._list_identities)

    def _list_identities(self) -> None:
        try:
            items = list(self._lister())  # type: ignore[misc]
        except ManagedIdentityError as exc:  # ARM or IMDS said no, or could not be reached
            code = getattr(exc, "code", None) or exc.status or type(exc).__name__
            logger.info("could not list the VM's identities: %s", panels.redact(exc))
            self.note.value = panels.note(
                f"The VM's identities could not be listed through ARM ({code}); choose one by id below.")
            return
        except Exception as exc:  # noqa: BLE001 - a bug: still a note (the picker stays usable), but named
            logger.warning("listing the VM's identities failed unexpectedly", exc_info=True)
            self.note.value = panels.note(
                f"Listing identities failed unexpectedly ({type(exc).__name__}: {panels.redact(exc)}); "
                "choose one by id below, and please report this.")
            return
        options: list[tuple[str, Identity | str]] = [(_PICK, "")]
        for item in items:
            option = _option_for(item)
            if option is not None:
                options.append(option)
        self.identities = items
        if len(options) == 1:
            self.note.value = panels.note("ARM lists no managed identity on this VM.")
            return
        self.known.options = options
        self.known.layout.display = ""
        self.note.value = ""

    def _on_known(self, change: dict[str, Any]) -> None:
        if self._syncing or not change["new"]:
            return
        self.set_identity(change["new"])

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        self.load_identities()
        return widget_bundle(self, self.widget, **kwargs)

    def __repr__(self) -> str:
        chosen = str(self._identity) if self._identity is not None else "invalid"
        return f"IdentityPicker({chosen})"


class ResourcePicker:
    """A well-known resource by friendly name, or a custom App ID URI (validated with ``resolve_resource``).

    Attributes: ``choice`` (the dropdown), ``custom`` (the URI field), ``message``, ``widget``;
    ``value`` (what ``get_token`` is given: an alias or the custom text), ``resource`` (the resolved
    URI or ``None``), ``error``, ``valid``.

    Example::

        >>> r = ResourcePicker()
        >>> r.choice.value = CUSTOM; r.custom.value = "not a uri"
        >>> r.valid
        False
        >>> r.custom.value = "api://my-app"
        >>> r.resource
        'api://my-app'
    """

    def __init__(self, resource: str = "arm") -> None:
        self._callbacks: list[Callable[[ResourcePicker], None]] = []
        options = [(f"{r.title} ({r.alias})", r.alias) for r in list_resources()]
        options.append(("Custom App ID URI\u2026", CUSTOM))
        self.choice = w.Dropdown(options=options, value="arm", description="Resource", style=_LABEL,
                                 layout=w.Layout(width="430px"))
        self.custom = w.Text(placeholder="App ID URI, e.g. api://my-app or https://myapi.contoso.com",
                             layout=w.Layout(width="420px", display="none"))
        self.message = w.HTML()
        self.widget = w.VBox([w.HBox([self.choice, self.custom]), self.message])
        self.widget.add_class("mi-resource-picker")
        self._resource: str | None = None
        self._error: str | None = None
        self.choice.observe(self._on_input, names="value")
        self.custom.observe(self._on_input, names="value")
        self.set_resource(resource)

    @property
    def value(self) -> str | None:
        """The text to pass to ``get_token`` (an alias or the custom URI), or ``None`` while invalid."""
        if self._resource is None:
            return None
        chosen: str | None = self.custom.value.strip() if self.choice.value == CUSTOM else self.choice.value
        return chosen

    @property
    def resource(self) -> str | None:
        """The resource URI IMDS will be asked for, or ``None`` while invalid."""
        return self._resource

    @property
    def error(self) -> str | None:
        return self._error

    @property
    def valid(self) -> bool:
        return self._resource is not None

    def on_change(self, callback: Callable[[ResourcePicker], None]) -> None:
        """Call ``callback(picker)`` after every change of the choice or its validity."""
        self._callbacks.append(callback)

    def set_resource(self, resource: str) -> None:
        """Select an alias, or put anything else in the custom field (then validated)."""
        aliases = {value for _, value in self.choice.options}
        if resource in aliases and resource != CUSTOM:
            self.choice.value = resource
        else:
            self.custom.value = resource
            self.choice.value = CUSTOM
        self._on_input()

    def _on_input(self, change: dict[str, Any] | None = None) -> None:
        custom = self.choice.value == CUSTOM
        self.custom.layout.display = "" if custom else "none"
        text = self.custom.value.strip() if custom else self.choice.value
        if custom and not text:
            self._resource, self._error = None, "enter the resource's App ID URI"
            self.message.value = panels.note(self._error)
        else:
            try:
                self._resource, self._error = resolve_resource(text), None
            except ValueError as exc:
                self._resource, self._error = None, str(exc)
            self.message.value = _message(self._error)
        for callback in list(self._callbacks):
            callback(self)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        return widget_bundle(self, self.widget, **kwargs)

    def __repr__(self) -> str:
        return f"ResourcePicker({self._resource or 'invalid'})"
