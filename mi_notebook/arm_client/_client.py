"""``ArmClient``: ARM requests with a managed-identity token, retried, paged and explained; ``arm()``.

Example::

    >>> from mi_notebook.arm_client._client import ArmClient
    >>> ArmClient("http://127.0.0.1:9").url
    'http://127.0.0.1:9'
"""

from __future__ import annotations

import builtins  # in ArmClient, `list` is its method: annotations there say builtins.list
import logging
import os
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .. import errors
from ..clock import SYSTEM_CLOCK, Clock
from ..clouds import CloudSlot
from ..http import (
    USER_AGENT,
    Answer,
    Request,
    Transport,
    choose_transport,
    default_verify,
    exchange,
    is_loopback_host,
    timeout_pair,
)
from ..identity import Identity
from ..retry import AttemptOutcome, RetryPolicy, execute
from ._answers import arm_error, judge
from ._list import FRAME_LAYOUTS, ArmList
from ._urls import (
    ENV_ARM_CA_BUNDLE,
    ENV_ARM_URL,
    SUBSCRIPTIONS_API_VERSION,
    check_base_url,
    follow,
    locate,
    segment,
    target,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..connection import Connection
    from ..metadata import InstanceMetadata
    from ..retry import Timeline
    from ..tokens import AccessToken

__all__ = ["ArmClient", "arm"]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = (5.0, 30.0)
DEFAULT_PAGE_LIMIT = 50
REFRESH_CODES = frozenset({"ExpiredAuthenticationToken", "InvalidAuthenticationToken"})


# --- the client ----------------------------------------------------------------------------------
class ArmClient:
    """Reads from Azure Resource Manager as one managed identity.

    ``url``: ARM's base URL (default: from the connection, see the module doc); ``identity``: whose
    token (``None``: system-assigned; an :class:`~mi_notebook.identity.Identity` or text for
    ``Identity.parse``); ``connection``: where tokens and instance metadata come from (default: the
    current one, connecting on first use); ``retry``, ``clock``: the retry policy and its
    injectable time; ``verify``: TLS verification (True, False or a CA bundle path; default: the
    emulator's bundle for the emulator, else the system's trust store); ``page_limit``: at most this
    many pages per list; ``timeout``: ``(connect, read)`` seconds; ``transport``: what sends the
    requests (default: the real wire, through the environment's proxies for a non-loopback ARM;
    a :class:`~mi_notebook.http.MockTransport` in tests), or ``session``: a caller's
    ``requests.Session`` to send through under the same rules.

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
        transport: Transport | None = None,
        session: Any = None,
    ) -> None:
        if isinstance(page_limit, bool) or not isinstance(page_limit, int) or page_limit < 1:
            raise ValueError(f"page_limit must be a positive integer, got {page_limit!r}")
        if verify is not None and not isinstance(verify, (bool, str)):
            raise ValueError(f"verify must be True, False or a CA bundle path, got {verify!r}")
        if isinstance(verify, str) and not os.path.isfile(verify):
            raise ValueError(f"verify names a CA bundle that does not exist: {verify!r}")
        self.timeout = timeout_pair(timeout)
        self.transport = choose_transport(transport, session)
        self.identity = Identity.parse(identity)
        self._connection = connection
        if url is None:
            url, found_verify = locate(connection if connection is not None else _current_connection())
            if verify is None:
                verify = found_verify
        self.url = check_base_url(url)
        if verify is None:
            verify = os.environ.get(ENV_ARM_CA_BUNDLE) or default_verify()
        self.verify: bool | str = verify
        self.retry = retry if retry is not None else RetryPolicy()
        if not isinstance(clock, Clock):
            raise ValueError(f"clock must be a mi_notebook.clock.Clock (e.g. VirtualClock()); got {clock!r}")
        self.clock = clock
        self.page_limit = page_limit
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
        url, query = target(self.url, path, api_version, params)
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
        if kind not in FRAME_LAYOUTS:
            raise ValueError(f"kind must be one of {', '.join(FRAME_LAYOUTS)}; got {kind!r}")
        url, query = target(self.url, path, api_version, params)
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
            url, query = follow(self.url, str(next_link))

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
        from ..metadata import InstanceMetadata, instance_metadata
        from ..sources.imds import ImdsSource

        if self._metadata is not None:  # which VM this is does not change: ask IMDS (5 requests/s) once
            return self._metadata
        client = self.connection.client
        if not isinstance(client, ImdsSource):
            raise errors.UnsupportedHostError(
                f"Instance metadata comes from a VM's IMDS; this client's connection is to "
                f"{self.connection.endpoint} ({self.connection.host}), which has none.",
                hint="Pass the VM's resource id to get(), or connect to a VM's IMDS.")
        slot = getattr(self.connection, "cloud_slot", None)  # one compute document for the cloud and for this
        if isinstance(slot, CloudSlot) and slot.compute:
            md = InstanceMetadata.from_compute(slot.compute)
        else:
            md = instance_metadata(client)
            if isinstance(slot, CloudSlot):
                slot.offer(md.compute)
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
        return self.list(f"/subscriptions/{segment(sub, 'subscription_id')}/resourcegroups", kind="resource_groups")

    def resources(self, group: str | None = None, *, subscription_id: str | None = None) -> ArmList:
        """The resources in resource group ``group`` (default: this VM's resource group)."""
        for value, name in ((group, "group"), (subscription_id, "subscription_id")):
            if value is not None:
                segment(value, name)  # bad input: ValueError before any request
        if group is None or subscription_id is None:
            md = self.metadata()
            group = group or md.resource_group
            subscription_id = subscription_id or md.subscription_id
        path = (f"/subscriptions/{segment(subscription_id, 'subscription_id')}/resourceGroups/"
                f"{segment(group, 'group')}/resources")
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
        return self._connection if self._connection is not None else _current_connection()

    def token(self, *, force_refresh: bool = False) -> AccessToken:
        """The ARM token this client sends (from the connection's cache).

        A token the emulator issued is never sent anywhere but a loopback ARM (the emulator's own):
        Azure would only reject it, and it must not be mistaken for a credential there.
        """
        token = self.connection.get_token("arm", identity=self.identity, force_refresh=force_refresh)
        host = urlsplit(self.url).hostname or ""
        if token.emulated and not is_loopback_host(host):
            raise ValueError(
                f"refusing to send a token issued by the mi-notebook emulator to {self.url}: it is not an Azure "
                f"token. Point ARM at the emulator's own (set {ENV_ARM_URL} and {ENV_ARM_CA_BUNDLE} to the lines "
                "`mi-notebook emulator` printed, or pass url=...), or connect to a real Azure host."
            )
        return token

    def _request(self, url: str, query: builtins.list[tuple[str, str]], *,
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
            remaining = _ratelimit_remaining(answer)
            if remaining is not None:
                self.last_ratelimit_remaining = remaining
        if outcome.ok:
            return outcome.value, timeline
        token = token_holder[0] if token_holder else None
        raise arm_error(outcome, answer, timeline=timeline, endpoint=self.url, path=urlsplit(url).path,
                        who=self._who(token), refreshed=state["refreshed"], correlation_id=correlation_id)

    def _send(self, url: str, query: builtins.list[tuple[str, str]], token: AccessToken,
              correlation_id: str) -> tuple[AttemptOutcome, Answer]:
        client_request_id = str(uuid.uuid4())
        headers = {"Authorization": f"Bearer {token.reveal()}", "Accept": "application/json",
                   "User-Agent": USER_AGENT, "x-ms-client-request-id": client_request_id,
                   "x-ms-correlation-request-id": correlation_id}
        request = Request("GET", url, params=query, headers=headers, timeout=self.timeout, proxies=True,
                          verify=self.verify)
        answer = exchange(request, transport=self.transport, clock=self.clock)
        return judge(answer, client_request_id=client_request_id), answer

    def _who(self, token: AccessToken | None) -> dict[str, Any]:
        out: dict[str, Any] = {"identity": str(self.identity)}
        if token is not None:
            out["oid"] = _claim(token, "oid")
            out["appid"] = token.client_id or _claim(token, "appid")
        return out

    def close(self) -> None:
        """Nothing to release: the real transport is process-wide, a caller's session or transport is theirs."""

    def __enter__(self) -> ArmClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        verify = self.verify if isinstance(self.verify, bool) else "CA bundle"
        return f"ArmClient(url={self.url!r}, identity={str(self.identity)!r}, verify={verify!r})"


# --- helpers -------------------------------------------------------------------------------------
def _join(first: Timeline, second: Timeline) -> Timeline:
    """One timeline: ``second``'s attempts renumbered and shifted to follow ``first``'s."""
    import dataclasses

    from ..retry import Timeline

    offset = max(0.0, second.started_at - first.started_at)
    last = dataclasses.replace(first.attempts[-1], outcome="retried", wait=0.0, wait_reason="retry-after")
    shifted = [dataclasses.replace(a, number=len(first) + i + 1, start=a.start + max(offset, last.end))
               for i, a in enumerate(second.attempts)]
    return Timeline(attempts=(*first.attempts[:-1], last, *shifted), started_at=first.started_at,
                    policy=first.policy)


def _current_connection() -> Connection:
    from ..connection import current_or_connect

    return current_or_connect()


def _claim(token: AccessToken, name: str) -> Any:
    try:
        return token.claims.payload.get(name)
    except Exception:  # noqa: BLE001 - an undecodable token simply has no claims to show
        return None


def _ratelimit_remaining(answer: Answer) -> int | None:
    remaining = (answer.headers.get("x-ms-ratelimit-remaining-subscription-reads")
                 or answer.headers.get("x-ms-ratelimit-remaining-tenant-reads"))
    return int(remaining) if remaining is not None and remaining.strip().isdigit() else None


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
