"""Authenticated Azure Resource Manager reads with a managed identity: paging, throttling, 401 refresh.

``ArmClient`` sends ``GET <ARM>/<path>?api-version=...`` with a bearer token from the current
connection (the process-wide cache in front of IMDS) through the one HTTP exchange
(:func:`mi_notebook.http.exchange`) and the same retry machinery as token requests
(:func:`mi_notebook.retry.execute`): 429 waits ``Retry-After``, 5xx and dropped connections back
off per the :class:`~mi_notebook.retry.RetryPolicy`, and every call leaves a
:class:`~mi_notebook.retry.Timeline`. Lists follow ``nextLink`` (up to ``page_limit`` pages).

Rules that protect the token (:mod:`mi_notebook.arm_client` checks them before any request):

* It is sent only over https, or over http to a loopback address you chose explicitly (the
  emulator, an ``url=`` you passed, ``MI_NOTEBOOK_ARM_URL``); anything else is a ``ValueError``
  before any request. ``nextLink`` URLs must stay on the same scheme, host and port.
* Redirects are never followed (a 3xx is reported, not obeyed); a non-loopback ARM is reached
  through the environment's proxies (``HTTPS_PROXY``, ``NO_PROXY``), a loopback one never.
* ``ExpiredAuthenticationToken`` / ``InvalidAuthenticationToken``: the token is refreshed once
  (``force_refresh``) and the request retried; any other 401 or a 403 is explained and raised
  (:mod:`mi_notebook.arm_client` says how each answer counts and what each error says).

Tabular results (:meth:`ArmClient.resource_groups`, :meth:`~ArmClient.resources`,
:meth:`~ArmClient.identities`, :meth:`~ArmClient.subscriptions`, :meth:`~ArmClient.list`) are an
:class:`~mi_notebook.arm_client._list.ArmList`: a plain ``list`` of ARM's JSON objects with ``.to_frame()``.
Single reads (:meth:`~ArmClient.get`, :meth:`~ArmClient.vm`) return ARM's JSON object as a dict.

Where ARM is: on a real VM ``https://management.azure.com`` with normal TLS verification; with the
embedded emulator, its ``arm_url`` and CA bundle (taken from the connection); or ``url=`` /
``verify=`` given explicitly, or ``MI_NOTEBOOK_ARM_URL`` / ``MI_NOTEBOOK_ARM_CA_BUNDLE``.

Example::

    >>> from mi_notebook.connection import connect, disconnect
    >>> from mi_notebook.emulator import Emulator
    >>> _ = connect(mode="emulator", emulator_factory=lambda: Emulator(throttle=False))
    >>> client = arm()                       # the emulator's ARM url and CA come from the connection
    >>> client.vm()["identity"]["type"]      # this VM, found through instance metadata
    'SystemAssigned, UserAssigned'
    >>> groups = client.resource_groups()
    >>> groups.pages > 1, groups.to_frame()[["name", "location"]].iloc[0].tolist()
    (True, ['rg-notebooks', 'westeurope'])
    >>> disconnect()
"""

from __future__ import annotations

from ._client import ArmClient, arm
from ._list import ArmList
from ._urls import API_VERSIONS, ARM_RESOURCE, ARM_URL, ENV_ARM_CA_BUNDLE, ENV_ARM_URL, default_api_version

__all__ = [
    "API_VERSIONS",
    "ARM_RESOURCE",
    "ARM_URL",
    "ENV_ARM_CA_BUNDLE",
    "ENV_ARM_URL",
    "ArmClient",
    "ArmList",
    "arm",
    "default_api_version",
]
