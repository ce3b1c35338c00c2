"""Authenticated Azure Resource Manager reads with a managed identity: paging, throttling, 401 refresh.

``ArmClient`` sends ``GET <ARM>/<path>?api-version=...`` with a bearer token from the current
connection (the process-wide cache in front of IMDS), through the same retry machinery as token
requests (:func:`mi_notebook.retry.execute`): 429 waits ``Retry-After``, 5xx and dropped connections
back off per the :class:`~mi_notebook.retry.RetryPolicy`, and every call leaves a
:class:`~mi_notebook.retry.Timeline`. Lists follow ``nextLink`` (up to ``page_limit`` pages).

Rules that protect the token:

* It is sent only over https, or over http to a loopback address you chose explicitly (the
  emulator, an ``url=`` you passed, ``MI_NOTEBOOK_ARM_URL``); anything else is a ``ValueError``
  before any request. ``nextLink`` URLs must stay on the same scheme, host and port.
* Redirects are never followed (a 3xx is reported, not obeyed).
* ``ExpiredAuthenticationToken`` / ``InvalidAuthenticationToken``: the token is refreshed once
  (``force_refresh``) and the request retried; any other 401 or a 403 is explained and raised.

Tabular results (:meth:`ArmClient.resource_groups`, :meth:`~ArmClient.resources`,
:meth:`~ArmClient.identities`, :meth:`~ArmClient.subscriptions`, :meth:`~ArmClient.list`) are an
:class:`ArmList`: a plain ``list`` of ARM's JSON objects (scripts index and loop as usual) with
``.to_frame()`` for a pandas DataFrame with sensible columns (pandas is imported only then), and a
table as its notebook display. Single reads (:meth:`~ArmClient.get`, :meth:`~ArmClient.vm`) return
ARM's JSON object as a dict.

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

import email.utils
import ipaddress
import logging
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import requests

from . import errors
from .clock import SYSTEM_CLOCK, Clock
from .identity import Identity
from .retry import AttemptOutcome, RetryPolicy, execute

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .connection import Connection
    from .metadata import InstanceMetadata
    from .retry import Timeline
    from .tokens import AccessToken

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
    "is_loopback_host",
]

logger = logging.getLogger(__name__)

ARM_URL = "https://management.azure.com"
ARM_RESOURCE = "https://management.azure.com/"
ENV_ARM_URL = "MI_NOTEBOOK_ARM_URL"
ENV_ARM_CA_BUNDLE = "MI_NOTEBOOK_ARM_CA_BUNDLE"
DEFAULT_TIMEOUT = (5.0, 30.0)
DEFAULT_PAGE_LIMIT = 50
USER_AGENT = "mi-notebook"

#: api-version used when none is given, by provider namespace (``None``: Microsoft.Resources paths).
API_VERSIONS: dict[str | None, str] = {
    None: "2021-04-01",
    "microsoft.compute": "2024-07-01",
    "microsoft.managedidentity": "2023-01-31",
}
SUBSCRIPTIONS_API_VERSION = "2022-12-01"
REFRESH_CODES = frozenset({"ExpiredAuthenticationToken", "InvalidAuthenticationToken"})

_FORBIDDEN = re.compile(r"perform action '(?P<action>[^']+)' over scope '(?P<scope>[^']+)'")


def default_api_version(path: str) -> str:
    """The api-version used for ``path`` when none is given (by the provider it names).

    Example::

        >>> default_api_version("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm")
        '2024-07-01'
        >>> default_api_version("/subscriptions"), default_api_version("/subscriptions/s/resourcegroups")
        ('2022-12-01', '2021-04-01')
    """
    segments = [s.lower() for s in urlsplit(path).path.split("/") if s]
    if segments[:1] == ["subscriptions"] and len(segments) <= 2:
        return SUBSCRIPTIONS_API_VERSION
    namespace = None
    if "providers" in segments:
        i = len(segments) - 1 - segments[::-1].index("providers")
        namespace = segments[i + 1] if i + 1 < len(segments) else None
    return API_VERSIONS.get(namespace, API_VERSIONS[None])


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (``127.0.0.0/8``, ``::1``); never resolves a name.

    Example::

        >>> is_loopback_host("127.0.0.1"), is_loopback_host("[::1]"), is_loopback_host("127.example.com")
        (True, True, False)
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_base_url(url: str) -> str:
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the ARM url must look like https://host[:port], got {url!r}")
    if parts.query or parts.fragment or parts.path.strip("/"):
        raise ValueError(f"the ARM url must be a base url (no path, query or fragment), got {url!r}")
    if parts.username or parts.password:
        raise ValueError("the ARM url must not carry user credentials")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError(
            f"refusing to send a bearer token over plain http to {parts.hostname}: use https "
            "(http is allowed only to a loopback address such as the emulator on 127.0.0.1)"
        )
    return f"{parts.scheme}://{parts.netloc}"


# --- results -------------------------------------------------------------------------------------
class ArmList(list):
    """ARM's list items (plain dicts) in order, all pages followed; ``.to_frame()`` for pandas.

    ``timelines`` holds one :class:`~mi_notebook.retry.Timeline` per page fetched; ``pages`` is how
    many; ``truncated`` says ``page_limit`` stopped the paging early; ``kind`` picks the frame's
    columns (``"resource_groups"``, ``"resources"``, ``"identities"``, ``"subscriptions"`` or
    ``"generic"``).

    Example::

        >>> rows = ArmList([{"name": "rg-a", "location": "westeurope", "id": "/subscriptions/s/resourceGroups/rg-a",
        ...                  "properties": {"provisioningState": "Succeeded"}}], kind="resource_groups")
        >>> rows[0]["name"], list(rows.to_frame().columns)
        ('rg-a', ['name', 'location', 'provisioning_state', 'tags', 'id'])
    """

    def __init__(self, items: Iterable[dict[str, Any]] = (), *, kind: str = "generic",
                 timelines: Iterable[Timeline] = (), truncated: bool = False) -> None:
        super().__init__(items)
        self.kind = kind
        self.timelines: list[Timeline] = list(timelines)
        self.truncated = truncated

    @property
    def pages(self) -> int:
        return len(self.timelines)

    def to_frame(self) -> pd.DataFrame:
        """A pandas DataFrame, one row per item, columns chosen for ``kind`` (see the class doc)."""
        import pandas as pd

        columns, row = _FRAMES.get(self.kind, _FRAMES["generic"])
        return pd.DataFrame([row(item) for item in self], columns=list(columns))

    def _repr_html_(self) -> str:
        frame = self.to_frame()
        note = f"<p>{len(self)} items from {self.pages} page(s){' (truncated by page_limit)' if self.truncated else ''}</p>"
        return frame.to_html(index=False, escape=True) + note

    def __repr__(self) -> str:
        return f"ArmList(kind={self.kind!r}, items={len(self)}, pages={self.pages}{', truncated' if self.truncated else ''})"


def _group_of(resource_id: str) -> str:
    parts = resource_id.split("/")
    low = [p.lower() for p in parts]
    return parts[low.index("resourcegroups") + 1] if "resourcegroups" in low and low.index("resourcegroups") + 1 < len(parts) else ""


_FRAMES: dict[str, tuple[tuple[str, ...], Callable[[dict[str, Any]], tuple[Any, ...]]]] = {
    "resource_groups": (("name", "location", "provisioning_state", "tags", "id"), lambda g: (
        g.get("name"), g.get("location"), (g.get("properties") or {}).get("provisioningState"),
        g.get("tags") or {}, g.get("id"))),
    "resources": (("name", "type", "resource_group", "location", "id"), lambda r: (
        r.get("name"), r.get("type"), _group_of(str(r.get("id", ""))), r.get("location"), r.get("id"))),
    "identities": (("kind", "name", "client_id", "principal_id", "resource_id"), lambda i: (
        i.get("kind"), i.get("name"), i.get("client_id"), i.get("principal_id"), i.get("resource_id"))),
    "subscriptions": (("subscription_id", "display_name", "state", "tenant_id"), lambda s: (
        s.get("subscriptionId"), s.get("displayName"), s.get("state"), s.get("tenantId"))),
    "generic": (("name", "type", "location", "id"), lambda r: (
        r.get("name"), r.get("type"), r.get("location"), r.get("id"))),
}


# --- the client ----------------------------------------------------------------------------------
class ArmClient:
    """Reads from Azure Resource Manager as one managed identity.

    ``url``: ARM's base URL (default: from the connection, see the module doc); ``identity``: whose
    token (``None``: system-assigned; an :class:`~mi_notebook.identity.Identity` or text for
    ``Identity.parse``); ``connection``: where tokens and instance metadata come from (default: the
    current one, connecting on first use); ``retry``, ``sleep``, ``clock``: the retry policy and its
    injectable time; ``verify``: TLS verification (True, False or a CA bundle path; default: the
    emulator's bundle for the emulator, else the system's trust store); ``page_limit``: at most this
    many pages per list; ``timeout``: ``(connect, read)`` seconds.

    After each call ``last_timeline``, ``last_request_id`` and ``last_ratelimit_remaining`` describe
    the final exchange.

    Example::

        >>> ArmClient("http://10.0.0.1:8080", connection=object())
        Traceback (most recent call last):
        ValueError: refusing to send a bearer token over plain http to 10.0.0.1: use https (http is allowed only to a loopback address such as the emulator on 127.0.0.1)
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        identity: Identity | str | None = None,
        connection: Connection | None = None,
        retry: RetryPolicy | None = None,
        clock: Clock = SYSTEM_CLOCK,
        verify: bool | str | None = None,
        page_limit: int = DEFAULT_PAGE_LIMIT,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
    ) -> None:
        if isinstance(page_limit, bool) or not isinstance(page_limit, int) or page_limit < 1:
            raise ValueError(f"page_limit must be a positive integer, got {page_limit!r}")
        if verify is not None and not isinstance(verify, (bool, str)):
            raise ValueError(f"verify must be True, False or a CA bundle path, got {verify!r}")
        if isinstance(verify, str) and not os.path.isfile(verify):
            raise ValueError(f"verify names a CA bundle that does not exist: {verify!r}")
        self.identity = Identity.parse(identity)
        self._connection = connection
        if url is None:
            url, found_verify = _locate_arm(connection)
            if verify is None:
                verify = found_verify
        self.url = _check_base_url(url)
        if verify is None:
            verify = os.environ.get(ENV_ARM_CA_BUNDLE) or _default_verify()
        self.verify: bool | str = verify
        self.retry = retry if retry is not None else RetryPolicy()
        if not isinstance(clock, Clock):
            raise ValueError(f"clock must be a mi_notebook.clock.Clock (e.g. VirtualClock()); got {clock!r}")
        self.clock = clock
        self.page_limit = page_limit
        self.timeout = (float(timeout), float(timeout)) if isinstance(timeout, (int, float)) else \
            (float(timeout[0]), float(timeout[1]))
        self._own_session = session is None
        if session is None:
            session = requests.Session()
            session.trust_env = False  # no .netrc (it would replace our Authorization header)
        self.session = session
        self.last_timeline: Timeline | None = None
        self.last_request_id: str | None = None
        self.last_correlation_id: str | None = None
        self.last_ratelimit_remaining: int | None = None
        self._metadata: InstanceMetadata | None = None
        self._lock = threading.Lock()

    # ---- generic reads -------------------------------------------------------------------------------
    def get(self, path: str, api_version: str | None = None, *, params: Mapping[str, str] | None = None,
            on_attempt: Callable[..., None] | None = None) -> dict[str, Any]:
        """``GET path`` (a path such as ``/subscriptions/...`` or a same-origin absolute URL) -> ARM's JSON.

        ``api_version``: default by provider (:func:`default_api_version`). Raises
        :class:`~mi_notebook.errors.ArmError` when ARM says no (after retries where they help).

        Example::

            >>> from mi_notebook.connection import connect, disconnect
            >>> from mi_notebook.emulator import Emulator
            >>> with Emulator(throttle=False) as emu:
            ...     client = ArmClient(emu.arm_url, verify=emu.ca_bundle, connection=connect(emu.imds_url))
            ...     client.get(emu.vm.resource_group_id)["location"]
            'westeurope'
            >>> disconnect()
        """
        url, query = self._target(path, api_version, params)
        document, _ = self._request(url, query, on_attempt=on_attempt)
        return document

    def list(self, path: str, api_version: str | None = None, *, params: Mapping[str, str] | None = None,
             page_limit: int | None = None, kind: str = "generic",
             on_attempt: Callable[..., None] | None = None) -> ArmList:
        """Every item of a list endpoint, following ``nextLink`` for at most ``page_limit`` pages.

        Example::

            >>> from mi_notebook.connection import connect, disconnect
            >>> from mi_notebook.emulator import Emulator
            >>> with Emulator(throttle=False, arm={"page_size": 2}) as emu:
            ...     client = ArmClient(emu.arm_url, verify=emu.ca_bundle, connection=connect(emu.imds_url))
            ...     groups = client.list(f"/subscriptions/{emu.vm.subscription_id}/resourcegroups")
            >>> len(groups), groups.pages
            (8, 4)
            >>> disconnect()
        """
        limit = self.page_limit if page_limit is None else page_limit
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"page_limit must be a positive integer, got {limit!r}")
        url, query = self._target(path, api_version, params)
        items: list[dict[str, Any]] = []
        timelines: list[Timeline] = []
        while True:
            document, timeline = self._request(url, query, on_attempt=on_attempt)
            timelines.append(timeline)
            value = document.get("value")
            if not isinstance(value, list):
                raise errors.UnexpectedResponseError(
                    f"ARM's answer to {path} is not a list (no 'value' array)", endpoint=url, timeline=timeline,
                    hint="Use get() for single resources; list() is for collection paths.")
            items.extend(v for v in value if isinstance(v, dict))
            next_link = document.get("nextLink")
            if not next_link:
                return ArmList(items, kind=kind, timelines=timelines)
            if len(timelines) >= limit:
                logger.warning("stopped after %d pages of %s (page_limit); more items exist", limit, path)
                return ArmList(items, kind=kind, timelines=timelines, truncated=True)
            url, query = self._next_link(str(next_link))

    # ---- the VM and its surroundings -----------------------------------------------------------------
    def vm(self) -> dict[str, Any]:
        """This VM's ARM record, found through instance metadata (no ids to type).

        Example::

            >>> from mi_notebook.connection import connect, disconnect
            >>> from mi_notebook.emulator import Emulator
            >>> with Emulator(throttle=False) as emu:
            ...     conn = connect(emu.imds_url)
            ...     record = ArmClient(emu.arm_url, verify=emu.ca_bundle, connection=conn).vm()
            ...     record["identity"]["principalId"] == emu.vm.system_identity.object_id
            True
            >>> disconnect()
        """
        return self.get(self.metadata().resource_id)

    def metadata(self) -> InstanceMetadata:
        """This VM's instance metadata (subscription, resource group, name, resource id).

        Example::

            >>> from mi_notebook.connection import connect, disconnect
            >>> from mi_notebook.emulator import Emulator
            >>> with Emulator(throttle=False) as emu:
            ...     md = ArmClient(emu.arm_url, verify=emu.ca_bundle, connection=connect(emu.imds_url)).metadata()
            >>> md.vm_name, md.resource_group
            ('vm-notebook', 'rg-notebooks')
            >>> disconnect()
        """
        from .metadata import instance_metadata

        if self._metadata is not None:  # which VM this is does not change: ask IMDS (5 requests/s) once
            return self._metadata
        md = instance_metadata(self.connection.client)
        if not md.resource_id:
            raise errors.UnexpectedResponseError(
                "instance metadata names no resource id for this VM", endpoint=self.connection.endpoint,
                hint="Is this a VM (not a scale-set instance or a container)? Pass paths to get() instead.")
        self._metadata = md
        return md

    def subscriptions(self) -> ArmList:
        """The subscriptions this identity can see (``GET /subscriptions``)."""
        return self.list("/subscriptions", SUBSCRIPTIONS_API_VERSION, kind="subscriptions")

    def resource_groups(self, subscription_id: str | None = None) -> ArmList:
        """The resource groups of ``subscription_id`` (default: this VM's subscription) that it may read."""
        sub = subscription_id or self.metadata().subscription_id
        return self.list(f"/subscriptions/{_segment(sub, 'subscription_id')}/resourcegroups", kind="resource_groups")

    def resources(self, group: str | None = None, *, subscription_id: str | None = None) -> ArmList:
        """The resources in resource group ``group`` (default: this VM's resource group)."""
        for value, name in ((group, "group"), (subscription_id, "subscription_id")):
            if value is not None:
                _segment(value, name)  # bad input: ValueError before any request
        if group is None or subscription_id is None:
            md = self.metadata()
            group = group or md.resource_group
            subscription_id = subscription_id or md.subscription_id
        path = (f"/subscriptions/{_segment(subscription_id, 'subscription_id')}/resourceGroups/"
                f"{_segment(group, 'group')}/resources")
        return self.list(path, kind="resources")

    def identities(self) -> ArmList:
        """The VM's managed identities: ``kind``, ``name``, ``client_id``, ``principal_id``,
        ``resource_id`` and an ``identity`` (:class:`~mi_notebook.identity.Identity`) for pickers.

        The VM record does not carry the system-assigned identity's client id; it is read from a token
        for that identity (served from the cache when there is one), else left ``None``. The other
        tabular reads (:meth:`subscriptions`, :meth:`resource_groups`, :meth:`resources`) work alike.

        Example::

            >>> from mi_notebook.connection import connect, disconnect
            >>> from mi_notebook.emulator import Emulator
            >>> with Emulator(throttle=False) as emu:
            ...     client = ArmClient(emu.arm_url, verify=emu.ca_bundle, connection=connect(emu.imds_url))
            ...     rows = client.identities()
            ...     kinds = [(r["kind"], r["name"]) for r in rows]
            ...     n_subs, n_res = len(client.subscriptions()), len(client.resources())
            >>> kinds
            [('system', 'vm-notebook'), ('user', 'id-notebook-1'), ('user', 'id-notebook-2')]
            >>> n_subs, n_res
            (1, 9)
            >>> disconnect()
        """
        record = self.vm()
        block = record.get("identity") or {}
        rows: list[dict[str, Any]] = []
        kinds = str(block.get("type", "")).replace(" ", "").lower().split(",")
        if "systemassigned" in kinds:
            rows.append({"kind": "system", "name": record.get("name"), "client_id": self._system_client_id(),
                         "principal_id": block.get("principalId"), "resource_id": record.get("id"),
                         "identity": Identity.system()})
        for resource_id, ids in (block.get("userAssignedIdentities") or {}).items():
            ids = ids or {}
            client_id = ids.get("clientId")
            ident = Identity.user(client_id=client_id) if client_id else Identity.user(resource_id=resource_id)
            rows.append({"kind": "user", "name": resource_id.rstrip("/").rsplit("/", 1)[-1],
                         "client_id": client_id, "principal_id": ids.get("principalId"),
                         "resource_id": resource_id, "identity": ident})
        timeline = self.last_timeline
        return ArmList(rows, kind="identities", timelines=[timeline] if timeline is not None else [])

    def _system_client_id(self) -> str | None:
        try:
            token = self.connection.get_token("arm", identity=Identity.system())
        except errors.ManagedIdentityError:
            return None
        return token.client_id or _claim(token, "appid")

    # ---- plumbing ------------------------------------------------------------------------------------
    @property
    def connection(self) -> Connection:
        """Where tokens come from (the current connection unless one was given)."""
        if self._connection is not None:
            return self._connection
        from .connection import current_or_connect

        return current_or_connect()

    def token(self, *, force_refresh: bool = False) -> AccessToken:
        """The ARM token this client sends (from the connection's cache)."""
        return self.connection.get_token("arm", identity=self.identity, force_refresh=force_refresh)

    def _target(self, path: str, api_version: str | None,
                params: Mapping[str, str] | None) -> tuple[str, list[tuple[str, str]]]:
        if not isinstance(path, str) or not path:
            raise ValueError(f"path must be a non-empty string such as '/subscriptions', got {path!r}")
        if "://" in path:
            url, query = self._next_link(path)
        else:
            if not path.startswith("/"):
                raise ValueError(f"path must start with '/' (e.g. '/subscriptions/...'), got {path!r}")
            if "?" in path or "#" in path:
                raise ValueError("put query parameters in params=..., not in the path")
            url, query = self.url + path, []
        if api_version is not None and (not isinstance(api_version, str) or not api_version.strip()):
            raise ValueError(f"api_version must be a non-empty string such as '2021-04-01', got {api_version!r}")
        query = [(k, v) for k, v in query if k.lower() != "api-version" or api_version is None]
        if not any(k.lower() == "api-version" for k, _ in query):
            query.insert(0, ("api-version", api_version or default_api_version(urlsplit(url).path)))
        for key, value in (params or {}).items():
            query = [(k, v) for k, v in query if k != key] + [(str(key), str(value))]
        return url, query

    def _next_link(self, link: str) -> tuple[str, list[tuple[str, str]]]:
        parts = urlsplit(link)
        mine = urlsplit(self.url)
        if (parts.scheme, (parts.hostname or "").lower(), parts.port or _default_port(parts.scheme)) != \
                (mine.scheme, (mine.hostname or "").lower(), mine.port or _default_port(mine.scheme)):
            raise ValueError(
                f"refusing to send the token to {parts.scheme}://{parts.netloc}: the link leaves {self.url}")
        return f"{mine.scheme}://{mine.netloc}{parts.path}", parse_qsl(parts.query, keep_blank_values=True)

    def _request(self, url: str, query: list[tuple[str, str]], *,
                 on_attempt: Callable[..., None] | None = None) -> tuple[dict[str, Any], Timeline]:
        correlation_id = str(uuid.uuid4())
        state: dict[str, Any] = {"refresh": False, "refreshed": False, "answers": {}}
        token_holder: list[AccessToken] = []

        def send(number: int) -> AttemptOutcome:
            if state["refresh"]:
                state["refresh"], state["refreshed"] = False, True
                token_holder[:] = [self.token(force_refresh=True)]
            elif not token_holder:
                token_holder.append(self.token())
            outcome, answer = self._send(url, query, token_holder[0], correlation_id)
            state["answers"][number] = answer
            if outcome.status == 401 and outcome.error in REFRESH_CODES and not state["refreshed"]:
                state["refresh"] = True  # one fresh token, then try again at once
                return AttemptOutcome(status=401, error=outcome.error, error_description=outcome.error_description,
                                      request_id=outcome.request_id, retry_after=0.0, retryable=True)
            return outcome

        outcome, timeline = execute(send, self.retry, clock=self.clock, on_attempt=on_attempt)
        if state["refresh"]:
            # The policy allowed no second attempt, but a stale token is not a transient failure:
            # fetch a fresh one and try once more under the same policy, as one timeline.
            base = max(state["answers"])
            more, extra = execute(lambda n: send(base + n), self.retry, clock=self.clock,
                                  on_attempt=on_attempt)
            outcome, timeline = more, _join(timeline, extra)
        answer = state["answers"][max(state["answers"])]
        with self._lock:
            self.last_timeline = timeline
            self.last_request_id = outcome.request_id
            self.last_correlation_id = correlation_id
            remaining = answer.get("ratelimit")
            if remaining is not None:
                self.last_ratelimit_remaining = remaining
        if outcome.ok:
            return outcome.value, timeline
        raise self._error(outcome, answer, timeline, url, token_holder[0] if token_holder else None,
                          refreshed=state["refreshed"])

    def _send(self, url: str, query: list[tuple[str, str]], token: AccessToken,
              correlation_id: str) -> tuple[AttemptOutcome, dict[str, Any]]:
        client_request_id = str(uuid.uuid4())
        headers = {"Authorization": f"Bearer {token.reveal()}", "Accept": "application/json",
                   "User-Agent": USER_AGENT, "x-ms-client-request-id": client_request_id,
                   "x-ms-correlation-request-id": correlation_id}
        host = urlsplit(url).hostname or ""
        proxies = {"http": None, "https": None, "all": None} if is_loopback_host(host) else \
            requests.utils.get_environ_proxies(url)
        try:
            response = self.session.get(url, params=query, headers=headers, timeout=self.timeout,
                                        allow_redirects=False, verify=self.verify, proxies=proxies, stream=True)
        except requests.exceptions.SSLError as exc:
            # A TLS failure is not transient: do not retry it, explain it.
            return AttemptOutcome(exception=exc, request_id=client_request_id, retryable=False), {"tls": True}
        except (requests.RequestException, OSError) as exc:
            return AttemptOutcome(exception=exc, request_id=client_request_id), {}
        status = response.status_code
        request_id = response.headers.get("x-ms-request-id") or client_request_id
        answer: dict[str, Any] = {"status": status, "correlation_id": response.headers.get(
            "x-ms-correlation-request-id"), "content_type": response.headers.get("Content-Type", "")}
        remaining = (response.headers.get("x-ms-ratelimit-remaining-subscription-reads")
                     or response.headers.get("x-ms-ratelimit-remaining-tenant-reads"))
        if remaining is not None and remaining.strip().isdigit():
            answer["ratelimit"] = int(remaining)
        retry_after = _retry_after(response.headers.get("Retry-After"), self.clock.wall)
        retryable = status == 429 or 500 <= status <= 599
        try:
            with response:
                response.content  # noqa: B018 - read here: a body cut short in transit still has a status
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError) as exc:
            answer["problem"] = "truncated"  # a transport failure: retried, and ARM did answer
            return AttemptOutcome(status=status, request_id=request_id, retry_after=retry_after,
                                  exception=exc, retryable=True), answer
        try:
            document = response.json()
        except ValueError as exc:
            if 200 <= status <= 299 or "html" in answer["content_type"].lower():
                answer["problem"] = "html" if "html" in answer["content_type"].lower() else "not-json"
                return AttemptOutcome(status=status, request_id=request_id, retry_after=retry_after,
                                      exception=exc, retryable=retryable or None), answer
            document = None
        if 300 <= status <= 399:
            answer["location"] = response.headers.get("Location")
            return AttemptOutcome(status=status, request_id=request_id, retryable=False), answer
        if 200 <= status <= 299:
            if not isinstance(document, dict):
                answer["problem"] = "not-object"
                return AttemptOutcome(status=status, request_id=request_id, retryable=False,
                                      exception=ValueError("the JSON answer is not an object")), answer
            return AttemptOutcome(status=status, request_id=request_id, value=document), answer
        err = (document or {}).get("error") if isinstance(document, dict) else None
        code = err.get("code") if isinstance(err, dict) else None
        message = err.get("message") if isinstance(err, dict) else None
        answer["www_authenticate"] = response.headers.get("WWW-Authenticate")
        return AttemptOutcome(status=status, error=code, error_description=message, request_id=request_id,
                              retry_after=retry_after, retryable=retryable), answer

    def _error(self, outcome: AttemptOutcome, answer: dict[str, Any], timeline: Timeline, url: str,
               token: AccessToken | None, *, refreshed: bool) -> errors.ManagedIdentityError:
        path = urlsplit(url).path
        common: dict[str, Any] = {"timeline": timeline, "endpoint": self.url, "request_id": outcome.request_id}
        status = outcome.status
        if status is None:
            exc = outcome.exception
            if answer.get("tls"):
                return errors.EndpointUnreachableError(
                    f"TLS verification of {self.url} failed: {exc}", **common,
                    hint=("For the emulator pass verify=emu.ca_bundle (mi.arm() does this for you); on a real "
                          "VM a proxy that intercepts TLS needs its CA in MI_NOTEBOOK_ARM_CA_BUNDLE."))
            timed_out = isinstance(exc, requests.Timeout)
            cls = errors.EndpointTimeoutError if timed_out else errors.EndpointUnreachableError
            what = "did not answer in time" if timed_out else "could not be reached"
            return cls(f"Azure Resource Manager at {self.url} {what} ({type(exc).__name__}).", **common,
                       hint="Check network access to ARM (proxy settings in HTTPS_PROXY / NO_PROXY, firewall, "
                            "NSG outbound rules), then try again.")
        if answer.get("problem") == "truncated":
            return errors.UnexpectedResponseError(
                f"{self.url} answered {path} with HTTP {status}, but the connection closed before the whole body "
                f"arrived ({type(outcome.exception).__name__}).", status=status, **common,
                hint="A network problem between this machine and ARM, or a proxy cutting answers short; try again.")
        if outcome.exception is not None or 300 <= status <= 399:
            kind = answer.get("problem")
            said = ("an HTML page" if kind == "html" else f"a redirect to {answer.get('location')!r} (not followed)"
                    if 300 <= status <= 399 else "a body that is not ARM's JSON")
            return errors.UnexpectedResponseError(
                f"{self.url} answered {path} with HTTP {status} and {said}: that is not Azure Resource Manager "
                "speaking.", status=status, **common,
                hint="A proxy or captive portal may be in the way; check HTTPS_PROXY / NO_PROXY and the ARM url.")
        code, arm_message = outcome.error, outcome.error_description
        who = self._who(token)
        message, hint = _explain(status, code, arm_message, path, who, refreshed=refreshed, url=self.url)
        match = _FORBIDDEN.search(arm_message or "")
        return errors.ArmError(
            message, code=code, arm_message=arm_message, status=status, hint=hint,
            correlation_id=answer.get("correlation_id") or self.last_correlation_id,
            principal_id=who.get("oid"),
            action=match.group("action") if match else None,
            scope=match.group("scope") if match else None,
            **common,
        )

    def _who(self, token: AccessToken | None) -> dict[str, Any]:
        out: dict[str, Any] = {"identity": str(self.identity)}
        if token is not None:
            out["oid"] = _claim(token, "oid")
            out["appid"] = token.client_id or _claim(token, "appid")
        return out

    def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._own_session:
            self.session.close()

    def __enter__(self) -> ArmClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        verify = self.verify if isinstance(self.verify, bool) else "CA bundle"
        return f"ArmClient(url={self.url!r}, identity={str(self.identity)!r}, verify={verify!r})"


def _explain(status: int, code: str | None, arm_message: str | None, path: str, who: dict[str, Any], *,
             refreshed: bool, url: str) -> tuple[str, str]:
    identity = who.get("identity", "this identity")
    oid = who.get("oid")
    principal = f"{identity} (object id {oid})" if oid else identity
    if status == 403:
        match = _FORBIDDEN.search(arm_message or "")
        action = match.group("action") if match else "this action"
        scope = match.group("scope") if match else path
        message = f"ARM refused: {principal} may not perform '{action}' on '{scope}'."
        hint = (f"Assign it a role that allows '{action}' (for reading: Reader) at '{scope}' or above, e.g. "
                f"az role assignment create --assignee-object-id {oid or '<principal id>'} "
                f"--assignee-principal-type ServicePrincipal --role Reader --scope {scope}. "
                "New role assignments take a few minutes to propagate, and managed-identity tokens are cached "
                "for about 24 hours (IMDS cannot be forced to renew them), so a new role may only show once "
                "the token is renewed.")
        return message, hint
    if status == 401:
        again = " even after fetching a fresh token" if refreshed else ""
        message = f"ARM rejected the token of {principal}{again} ({code})."
        if code == "InvalidAuthenticationTokenAudience":
            hint = "Request the token for Azure Resource Manager: resource 'arm' (https://management.azure.com/)."
        elif code == "ExpiredAuthenticationToken":
            hint = "The token had expired; check this machine's clock, then try again (a fresh token is fetched)."
        elif code == "InvalidAuthenticationTokenTenant":
            hint = "The subscription belongs to another tenant than the identity; use an identity of that tenant."
        else:
            hint = "Get a new token (force_refresh=True) and check it with mi.decode(token).checks(resource='arm')."
        return message, hint
    if status == 429:
        return (f"ARM throttled the reads of {principal} ({code}) and kept doing so through the retries.",
                "Make fewer requests (ARM allows about 250 reads in a burst, refilled at 25 per second per "
                "subscription and identity); wait for Retry-After and try again.")
    if status == 404:
        return (f"ARM found nothing at {path} ({code}).",
                "Check the subscription, resource group and resource names (the path is case-insensitive; "
                "names must exist).")
    if status == 400 and code in ("MissingApiVersionParameter", "InvalidApiVersionParameter",
                                  "NoRegisteredProviderFound"):
        return (f"ARM does not accept the api-version sent for {path} ({code}).",
                "Pass api_version=... with a version ARM lists as supported in the message above.")
    if status is not None and 500 <= status <= 599:
        return (f"ARM failed on its side for {path} (HTTP {status}, {code}) and kept failing through the retries.",
                "This is on Azure's side; try again later, and check Azure status if it persists.")
    return (f"ARM answered {path} with HTTP {status} ({code}).",
            "Fix the request; retrying the same request will not help.")


# --- helpers -------------------------------------------------------------------------------------
def _join(first: Timeline, second: Timeline) -> Timeline:
    """One timeline: ``second``'s attempts renumbered and shifted to follow ``first``'s."""
    import dataclasses

    from .retry import Timeline

    offset = max(0.0, second.started_at - first.started_at)
    last = dataclasses.replace(first.attempts[-1], outcome="retried", wait=0.0, wait_reason="retry-after")
    shifted = [dataclasses.replace(a, number=len(first) + i + 1, start=a.start + max(offset, last.end))
               for i, a in enumerate(second.attempts)]
    return Timeline(attempts=(*first.attempts[:-1], last, *shifted), started_at=first.started_at,
                    policy=first.policy)


def _locate_arm(connection: Connection | None) -> tuple[str, bool | str | None]:
    """ARM's URL and TLS verification for a connection: the emulator's own, the env's, or Azure's."""
    conn = connection
    if conn is None:
        from .connection import current_or_connect

        conn = current_or_connect()
    emulator = getattr(conn, "emulator", None)
    arm_url = getattr(emulator, "arm_url", None) if emulator is not None else None
    if arm_url:
        return str(arm_url), getattr(emulator, "ca_bundle", None) or None
    env_url = os.environ.get(ENV_ARM_URL, "").strip()
    if env_url:
        return env_url, os.environ.get(ENV_ARM_CA_BUNDLE) or None
    if getattr(conn, "kind", None) == "emulator":
        raise ValueError("this emulator has no ARM side (started with arm=False); pass url=... explicitly")
    imds_host = urlsplit(str(getattr(conn, "endpoint", ""))).hostname or ""
    if getattr(conn, "kind", None) == "explicit" and is_loopback_host(imds_host):
        # Tokens from a loopback IMDS (an emulator in another process) mean nothing to Azure's ARM.
        raise ValueError(
            f"IMDS is the loopback endpoint {conn.endpoint}, so Azure's ARM would reject its tokens: "
            f"set {ENV_ARM_URL} (and {ENV_ARM_CA_BUNDLE}) to the ARM and CA lines `mi-notebook emulator` "
            "printed, or pass url=... explicitly"
        )
    return ARM_URL, None


def _default_verify() -> bool | str:
    # trust_env is off on our session, so honour a corporate CA bundle from the usual variables here.
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _segment(value: str | None, name: str) -> str:
    if not value or not isinstance(value, str) or "/" in value or "?" in value or "#" in value:
        raise ValueError(f"{name} must be a plain name or id without '/', '?' or '#', got {value!r}")
    return value


def _claim(token: AccessToken, name: str) -> Any:
    try:
        return token.claims.payload.get(name)
    except Exception:  # noqa: BLE001 - an undecodable token simply has no claims to show
        return None


def _retry_after(value: str | None, wall_clock: Callable[[], float]) -> float | None:
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - wall_clock())



def arm(identity: Identity | str | None = None, **kwargs: Any) -> ArmClient:
    """An :class:`ArmClient` for the current connection (connecting on first use) as ``identity``.

    With the embedded emulator it talks to the emulator's ARM side and trusts its CA; on a real VM
    it talks to https://management.azure.com with normal TLS verification.

    Example::

        >>> from mi_notebook.connection import connect, disconnect
        >>> from mi_notebook.emulator import Emulator
        >>> _ = connect(mode="emulator", emulator_factory=lambda: Emulator(throttle=False))
        >>> arm().resource_groups().to_frame().name.tolist()[:3]
        ['rg-notebooks', 'rg-data', 'rg-network']
        >>> disconnect()
    """
    return ArmClient(identity=identity, **kwargs)
