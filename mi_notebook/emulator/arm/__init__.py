"""The emulated Azure Resource Manager: authenticated, RBAC-checked, throttled, paged reads over HTTPS.

:class:`ArmService` (:mod:`.service`) is a pure dispatcher ``(HttpRequest) -> HttpResponse``;
:class:`ArmServer` (:mod:`.server`) serves it on its own loopback port (HTTPS with a per-run CA by
default, see :mod:`mi_notebook.emulator.tls`) for an
:class:`~mi_notebook.emulator.Emulator`, which starts it and exposes ``emu.arm_url`` / ``emu.ca_bundle``.

Each request goes through, in order: an injected fault (endpoint ``"arm"``); the bearer token
(:mod:`.auth`, 401s); the read throttle (:mod:`.throttle`, 429); ``api-version`` (400); the
subscription (404); role-based access (403 ``AuthorizationFailed``); the resource (404); the answer.
Lists are paged: ``{"value": [...], "nextLink": "<absolute URL with $skiptoken>"}``.

The parts: :mod:`.server` (the server), :mod:`.service` (the pipeline and handlers,
:class:`ArmOptions`), :mod:`.routes` (paths, api-versions, RBAC actions), :mod:`.paging` (the query
string and paged lists), :mod:`.answers` (error envelope, request ids, injected faults), :mod:`.auth`,
:mod:`.throttle` and :mod:`.catalog` (what the subscription holds).

Served paths (segment names are case-insensitive, as in ARM)::

    /subscriptions                                  /subscriptions/{s}
    /subscriptions/{s}/resourcegroups               /subscriptions/{s}/resourcegroups/{rg}
    /subscriptions/{s}/resourcegroups/{rg}/resources
    /subscriptions/{s}/resources                    /subscriptions/{s}/providers/{ns}/{type}
    /subscriptions/{s}/resourcegroups/{rg}/providers/{ns}/{type}[/{name}]

Example::

    >>> import requests
    >>> from mi_notebook.emulator import Emulator
    >>> with Emulator(throttle=False) as emu:
    ...     tok = requests.get(emu.token_url, headers={"Metadata": "true"},
    ...                        params={"api-version": "2018-02-01", "resource": "https://management.azure.com/"}
    ...                        ).json()["access_token"]
    ...     r = requests.get(emu.arm_url + emu.vm.resource_id, params={"api-version": "2024-07-01"},
    ...                      headers={"Authorization": "Bearer " + tok}, verify=emu.ca_bundle)
    ...     r.status_code, r.json()["identity"]["principalId"] == emu.vm.system_identity.object_id
    (200, True)
"""

from .routes import RESOURCES_API_VERSIONS
from .server import ArmServer
from .service import ArmOptions, ArmService

__all__ = ["RESOURCES_API_VERSIONS", "ArmOptions", "ArmServer", "ArmService"]
