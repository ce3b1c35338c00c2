"""Where are we? A managed-identity host, a given endpoint, real IMDS (verified), or the emulator.

``connect()`` decides once, says why in plain words, and makes the result the current connection;
``get_token()`` serves tokens through it and the process-wide cache (``cache.default_cache()``).

The decision, in order:

1. ``imds_url=`` (or ``MI_NOTEBOOK_IMDS_URL``): used as is, no probing (``chosen="given"``).
2. ``host=`` one of :data:`~mi_notebook.hosts.HOSTS`: that host's protocol, configured from the
   environment the host sets, no probing (``host="vm"`` is the VM's IMDS; ``chosen="requested"``).
3. ``mode="emulator"`` (or ``MI_NOTEBOOK_MODE=emulator``): start the embedded emulator (``profile=``
   picks the host it plays: ``"vm"``, ``"azureml"``, ``"appservice"``, ``"arc"``, ``"cloudshell"``).
4. ``mode="imds"``: real IMDS at ``probe_url`` without probing (you know you are on an Azure VM).
5. ``mode="auto"`` (the default): :func:`mi_notebook.detection.detect` reads the host variables in
   azure-identity's order (Service Fabric, App Service, Arc, Azure ML, Cloud Shell): when one host's
   are set, that host is used, with no network round trip at all. Otherwise this may be a VM: probe
   ``probe_url`` once with a short time-out. Only an answer that is recognisably Azure IMDS is
   accepted (a ``Server: IMDS/...`` header, or the documented 400 for a request without the
   ``Metadata`` header). If it is not, and the machine is **not** an Azure VM by its DMI asset tag,
   the embedded emulator is started, a banner says so (in a notebook, as display output), and the
   reason is kept in ``Connection.reason``. On an Azure VM whose IMDS did not answer the probe, the
   real IMDS is used all the same (its requests retried, failing clearly): never fake tokens on
   Azure. The probe is bounded by ``probe_timeout`` (default 0.8 s), instead of the 10-25 s other
   clients spend retrying a foreign metadata service.

Sharing: ``share=True`` (or ``MI_NOTEBOOK_SHARE=1``, e.g. in a JupyterHub spawner's environment) makes the
connection's cache a :class:`~mi_notebook.agent.client.SharedCache`: a token this process does not
hold is asked of this user's token agent (started on first use), which makes one request per refresh
for all the user's processes; when the agent cannot answer, the process asks the endpoint itself.
Off by default (docs/agent.md).

The probe sends a token request *without* ``Metadata: true``, which IMDS refuses with a 400 before
touching any identity: nothing is issued, nothing is throttled.

Example::

    >>> import mi_notebook as mi
    >>> conn = mi.connect(mode="emulator")
    >>> conn.host, conn.chosen, conn.emulated, conn.reason.startswith("Using the embedded emulator")
    ('vm', 'emulator', True, True)
    >>> tok = mi.get_token("graph", force_refresh=True)
    >>> tok.host, tok.emulated, tok.from_cache, mi.get_token("graph").from_cache
    ('vm', True, False, True)
    >>> disconnect()
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .cache import CacheKey, TokenCache, default_cache
from .clock import SYSTEM_CLOCK, Clock
from .detection import HIMDS_PATH, Detection, detect
from .hosts import HOST_LABELS, HOSTS, Chosen, Host, host_label, legacy_source
from .identity import Identity
from .probe import DEFAULT_PROBE_TIMEOUT, ProbeResult, probe_imds
from .resources import resolve_resource

if TYPE_CHECKING:  # pragma: no cover
    from .emulator import Emulator
    from .retry import RetryPolicy
    from .sources import Source
    from .tokens import AccessToken

__all__ = [
    "ENV_IMDS_URL",
    "ENV_MODE",
    "Connection",
    "ProbeResult",
    "connect",
    "current",
    "current_or_connect",
    "disconnect",
    "get_token",
    "probe_imds",
]

logger = logging.getLogger(__name__)

ENV_IMDS_URL = "MI_NOTEBOOK_IMDS_URL"
ENV_MODE = "MI_NOTEBOOK_MODE"
MODES = ("auto", "imds", "emulator")
#: the hosts ``connect(host=...)`` can be told to use (``"vm"``: the VM's IMDS)
CONNECTABLE = HOSTS
DMI_ROOT = "/sys/class/dmi/id"
IMDS_URL = "http://169.254.169.254"

_lock = threading.RLock()
_current: Connection | None = None


@dataclass
class Connection:
    """The endpoint in use, how it was chosen, and the source that talks to it.

    ``host`` is the kind of endpoint (:data:`~mi_notebook.hosts.HOSTS`: ``"vm"`` for a VM's IMDS,
    ``"azureml"``, ...); ``client`` that host's source (a :class:`~mi_notebook.sources.Source`);
    ``chosen`` how ``connect()`` picked it (:data:`~mi_notebook.hosts.CHOICES`: ``"given"``,
    ``"requested"``, ``"detected"``, ``"probed"``, ``"emulator"``); ``emulator`` the embedded emulator
    it started (``emulated`` says so). ``reason`` is one sentence for humans; ``probe`` and
    ``detection`` hold what auto mode found. ``cache`` is where its tokens are kept (the process-wide
    one by default).

    Example::

        >>> from mi_notebook.sources import ImdsSource
        >>> c = Connection("http://127.0.0.1:9", "vm", ImdsSource("http://127.0.0.1:9"), chosen="given",
        ...                reason="Using http://127.0.0.1:9 because it was given explicitly.")
        >>> str(c), c.emulated
        ('Using http://127.0.0.1:9 because it was given explicitly.', False)
    """

    endpoint: str
    host: Host
    client: Source
    chosen: Chosen = "given"
    emulator: Emulator | None = None
    reason: str = ""
    probe: ProbeResult | None = None
    detection: Detection | None = field(default=None, repr=False)
    cache: TokenCache = field(default_factory=default_cache, repr=False)
    closed: bool = field(default=False, repr=False)
    # (resource as given, identity as given) -> cache key: a cached get_token is on the path of every
    # Azure SDK call, so it must stay a few dictionary look-ups (resolving is pure: nothing goes stale)
    _keys: dict[tuple[Any, Any], tuple[CacheKey, Callable[[], AccessToken]]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        old = {"explicit": ("vm", "given"), "imds": ("vm", "given"), "emulator": ("vm", "emulator")}.get(self.host)
        if old is not None:  # the previous release's Connection(endpoint, kind, client): one more release
            import warnings

            warnings.warn(f"Connection(endpoint, {self.host!r}, client) is deprecated: the second argument is the "
                          "host ('vm', 'azureml', ...); say how it was chosen with chosen=...", DeprecationWarning,
                          stacklevel=3)
            self.host, self.chosen = old  # type: ignore[assignment]
        if self.host not in HOST_LABELS:
            raise ValueError(f"host must be one of {', '.join(HOST_LABELS)}; got {self.host!r}")

    @property
    def emulated(self) -> bool:
        """Whether the embedded emulator (started by ``connect()``) serves this connection."""
        return self.emulator is not None

    @property
    def label(self) -> str:
        """The host for people: ``"Azure VM (IMDS)"``, ``"the mi-notebook emulator (not Azure) playing Azure ML compute"``."""
        return host_label(self.host, emulated=self.emulated)

    @property
    def kind(self) -> str:
        """Deprecated (use :attr:`host`, :attr:`chosen` and :attr:`emulated`): ``"emulator"``,
        ``"explicit"`` for a given URL, ``"imds"`` for a VM's IMDS, else the host."""
        import warnings

        warnings.warn("Connection.kind is deprecated: use .host (the kind of endpoint), .chosen (how it was "
                      "chosen) and .emulated", DeprecationWarning, stacklevel=2)
        if self.emulated:
            return "emulator"
        return "explicit" if self.chosen == "given" else legacy_source(self.host, emulated=False)

    def get_token(
        self,
        resource: str = "arm",
        *,
        identity: Identity | str | None = None,
        force_refresh: bool = False,
        on_attempt: Callable[..., None] | None = None,
        cache: TokenCache | None = None,
    ) -> AccessToken:
        """A token through this connection and the process-wide cache (keyed by everything that chooses
        the token: the host, the endpoint, a fingerprint of its secret, the identity as the host
        resolves it, the resource; see :meth:`~mi_notebook.cache.CacheKey.of`).

        The one cached path of the package: ``mi.get_token`` and the SDK credential come here.
        ``identity``: ``None`` (system-assigned), an ``Identity``, or text for ``Identity.parse``;
        ``force_refresh=True`` skips the cached token (the endpoint itself may still return the same
        one); ``on_attempt(attempt, next_wait, max_attempts)`` reports progress of a fetch; ``cache``
        replaces the process-wide cache. Bad input raises ``ValueError`` before any request.

        Example::

            >>> conn = connect(mode="emulator")
            >>> conn.get_token("vault").resource
            'https://vault.azure.net'
            >>> disconnect()
        """
        if self.closed:
            raise RuntimeError(f"this connection to {self.endpoint} was closed; call mi.connect() again")
        try:
            key, fetch = self._keys[resource, identity]
        except (KeyError, TypeError):
            key, fetch = self._key_for(resource, identity)  # ValueError for bad input, before any request
        store = self.cache if cache is None else cache
        if not force_refresh and on_attempt is None:
            # TokenCache.get's lock-free hit, inlined: a cached token is on the path of every Azure SDK
            # call, so a hit stays two dictionary look-ups and a time comparison (no call, no lock)
            fresh = store._fresh.get(key)
            if fresh is not None and store._clock() < fresh[1]:
                next(store._fast_hits)
                return fresh[0]
        elif on_attempt is not None:
            def fetch() -> AccessToken:
                return self.client.request_token(key.resource, key.identity, on_attempt=on_attempt)
        return store.get(key, fetch, force_refresh=force_refresh)

    def _key_for(self, resource: str, identity: Identity | str | None) -> tuple[CacheKey, Callable[[], AccessToken]]:
        # the identity as the host resolves it (Azure ML: DEFAULT_IDENTITY_CLIENT_ID for "none named")
        ident = self.client.resolve_identity(identity)
        key = CacheKey.of(self.client, ident, resolve_resource(resource))

        def fetch() -> AccessToken:
            return self.client.request_token(key.resource, key.identity)

        try:
            if len(self._keys) >= _MEMO_LIMIT:
                self._keys.clear()
            self._keys[resource, identity] = (key, fetch)
        except TypeError:  # an unhashable argument: still served, just not memoised
            pass
        return key, fetch

    def close(self) -> None:
        """Stop the emulator if this connection started it; close the HTTP session."""
        if self.closed:
            return
        self.closed = True
        self.client.close()
        if self.emulator is not None:
            self.emulator.stop()

    def __str__(self) -> str:
        return self.reason

    def _repr_html_(self) -> str:
        import html

        return (
            f"<div><b>mi-notebook connection</b> ({html.escape(self.label)}): "
            f"<code>{html.escape(self.endpoint)}</code><br>{html.escape(self.reason)}</div>"
        )


# --- the current connection ----------------------------------------------------------------------
def connect(
    imds_url: str | None = None,
    *,
    mode: str | None = None,
    host: str | None = None,
    profile: str = "vm",
    probe_url: str = IMDS_URL,
    probe_timeout: float = DEFAULT_PROBE_TIMEOUT,
    retry: RetryPolicy | None = None,
    timeout: float | tuple[float, float] | None = None,
    clock: Clock = SYSTEM_CLOCK,
    emulator_factory: Callable[[], Emulator] | None = None,
    environ: Mapping[str, str] | None = None,
    sysfs_root: str = DMI_ROOT,
    himds_path: str = HIMDS_PATH,
    arc_key_dir: str | None = None,
    share: bool | None = None,
    agent_dir: str | None = None,
    source: str | None = None,
) -> Connection:
    """Choose the endpoint (see the module docstring), make it the current connection, return it.

    A previous current connection is closed (an emulator it started is stopped). ``retry``,
    ``timeout`` and ``clock`` configure the client (a host's own retry policy and time-outs when not
    given). ``emulator_factory`` builds the emulator (default ``Emulator(profile=profile)``).
    ``environ`` (default ``os.environ``), ``sysfs_root`` and ``himds_path`` are what detection reads:
    tests point them elsewhere; ``arc_key_dir`` is where an Arc agent's key files must be (default the
    platform's directory). ``share``: serve tokens through this user's token agent (default: the
    ``MI_NOTEBOOK_SHARE`` variable; see the module docstring), whose files are in ``agent_dir``
    (default ``$XDG_RUNTIME_DIR/mi-notebook``). ``source=`` is the deprecated name of ``host=``.
    Bad arguments -> ``ValueError``.

    Example::

        >>> conn = connect("http://127.0.0.1:8080")
        >>> conn.host, conn.chosen, conn.endpoint
        ('vm', 'given', 'http://127.0.0.1:8080')
        >>> conn = connect(host="azureml", environ={"MSI_ENDPOINT": "http://127.0.0.1:46808/MSI/auth",
        ...                                         "MSI_SECRET": "s3cr3t"})
        >>> conn.host, conn.chosen, conn.endpoint, "s3cr3t" in conn.reason
        ('azureml', 'requested', 'http://127.0.0.1:46808/MSI/auth', False)
        >>> disconnect()
    """
    global _current
    if source is not None:
        import warnings

        warnings.warn("connect(source=...) is deprecated: use connect(host=...)", DeprecationWarning, stacklevel=2)
        if host is not None:
            raise ValueError("give host= (source= is its deprecated name), not both")
        host = "vm" if source == "imds" else source
    if mode is not None and mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if host is not None and host not in CONNECTABLE:
        raise ValueError(f"host must be one of {', '.join(CONNECTABLE)}; got {host!r}")
    given = [name for name, value in (("imds_url", imds_url), ("host", host)) if value is not None]
    if mode not in (None, "auto"):
        given.append(f"mode={mode!r}")
    if len(given) > 1:
        raise ValueError(f"give one of imds_url, host or mode, not {' and '.join(given)}")
    env: Mapping[str, str] = os.environ if environ is None else environ
    sharing = False
    if share is not None or env.get("MI_NOTEBOOK_SHARE"):  # the agent's client loads only when it may be used
        from .agent.client import share_requested

        sharing = share_requested(share, env)
    options: dict[str, Any] = {"clock": clock}
    if retry is not None:
        options["retry"] = retry
    if timeout is not None:
        options["timeout"] = timeout
    if arc_key_dir:
        options["key_dir"] = arc_key_dir

    def starting(emu_profile: str, why: str) -> Connection:
        return _emulator_connection(emu_profile, why, emulator_factory, options)

    def detected() -> Detection:
        return detect(env, sysfs_root=sysfs_root, himds_path=himds_path)

    env_url = env.get(ENV_IMDS_URL, "").strip()
    env_mode = env.get(ENV_MODE, "").strip().lower()
    emulating = mode == "emulator" or (mode is None and host is None and imds_url is None and not env_url
                                       and env_mode == "emulator")
    if profile != "vm" and not emulating:
        raise ValueError(f"profile={profile!r} chooses the host the emulator plays: use it with mode='emulator'")
    if imds_url is not None:
        conn = _explicit(imds_url, "it was passed to connect()", options)
    elif host is not None:
        conn = _host_connection(detected(), host, f"host={host!r} was requested", probe_url, options,
                                chosen="requested")
    elif emulating:
        conn = starting(profile, "mode='emulator' was requested" if mode else f"{ENV_MODE}=emulator")
    elif mode == "imds" or (mode is None and not env_url and env_mode == "imds"):
        why = "mode='imds' was requested" if mode else f"{ENV_MODE}=imds"
        conn = _host_connection(detected(), "vm", why, probe_url, options, chosen="requested")
    elif mode is None and env_url:
        conn = _explicit(env_url, f"{ENV_IMDS_URL} is set", options)
    else:
        if env_mode not in ("", "auto", *MODES):
            raise ValueError(f"{ENV_MODE} must be one of {', '.join(MODES)}; got {env_mode!r}")
        conn = _auto(detected(), probe_url, probe_timeout, options, starting)
    if sharing:
        _share(conn, agent_dir, clock)
    logger.info("%s", conn.reason)
    with _lock:
        previous, _current = _current, conn
    if previous is not None and previous is not conn:
        previous.close()
    return conn


def _share(conn: Connection, agent_dir: str | None, clock: Clock) -> None:
    """Serve ``conn``'s tokens through this user's token agent (a process cache in front of it)."""
    from .agent.client import SharedCache

    shared = SharedCache.for_connection(conn, agent_dir, clock=clock)
    if shared is not None:
        conn.cache = shared
        conn.reason += (f" Tokens are shared with this user's other processes through the token agent at "
                        f"{shared.agent.paths.socket} (started on first use).")


def _auto(found: Detection, probe_url: str, probe_timeout: float, options: dict[str, Any],
          starting: Callable[[str, str], Connection]) -> Connection:
    """Auto mode: a host's variables win without any network; else probe for IMDS; else the emulator,
    unless this is an Azure VM (then the real IMDS, never a fake token)."""
    if found.host != "vm":
        detail = found.reason.split(": ", 1)[-1].rstrip(".")
        return _host_connection(found, found.host, f"its variables say so ({detail}); no network probe was needed",
                                probe_url, options, chosen="detected")
    result = probe_imds(probe_url, timeout=probe_timeout)
    base = probe_url.rstrip("/")
    if result.is_imds:
        conn = _host_connection(found, "vm", "", probe_url, options, chosen="probed",
                                reason=f"Using Azure IMDS at {base} because {result.detail}.")
    elif found.is_azure_vm:
        conn = _host_connection(found, "vm", "", probe_url, options, chosen="detected", reason=(
            f"Using Azure IMDS at {base} although {result.detail} in {result.elapsed:.2f} s: this machine is an "
            f"Azure VM ({found.vm_evidence}), so mi-notebook never falls back to its emulator here. Token requests "
            "are retried per the documented policy and fail with a clear error if IMDS stays unreachable "
            "(check that no firewall or proxy blocks 169.254.169.254)."))
    else:
        conn = starting("vm", (
            f"this does not look like an Azure host: no host variables are set, {found.vm_evidence}, and at "
            f"{base} {result.detail} (decided in {result.elapsed:.2f} s)"))
        conn.detection = found
        announce_emulator(conn)
    conn.probe = result
    return conn


def _host_connection(found: Detection, host: str, why: str, vm_url: str, options: dict[str, Any], *,
                     chosen: Chosen, emulator: Emulator | None = None, reason: str | None = None) -> Connection:
    """A connection to ``host``'s endpoint as ``found`` (the environment) configures it; no probing.

    ``vm_url`` is IMDS's base URL (unless ``AZURE_POD_IDENTITY_AUTHORITY_HOST`` moved it)."""
    if found.host != host or host == "vm":  # forced, or IMDS at the URL asked for
        found = _forced(found, host, vm_url)
    client = found.build_source(**options)
    note = f" {client.note}" if client.note else ""
    name = "Azure IMDS" if host == "vm" else found.label
    if reason is None:
        reason = f"Using {name} at {client.endpoint} because {why}.{note}" if host != "vm" else \
            f"Using {name} at {client.endpoint} without probing because {why}."
    return Connection(client.endpoint, client.host, client, chosen=chosen, detection=found,  # type: ignore[arg-type]
                      emulator=emulator, reason=reason)


def _forced(found: Detection, host: str, vm_url: str) -> Detection:
    """``found`` made to name ``host`` (the VM's IMDS: at ``AZURE_POD_IDENTITY_AUTHORITY_HOST`` or ``vm_url``)."""
    import dataclasses

    from .detection import HOST_RULES

    label = next(rule.label for rule in HOST_RULES if rule.host == host)
    endpoint = found.endpoint
    if host == "vm":
        endpoint = (found.endpoint if found.host == "vm" and found.endpoint and found.endpoint != IMDS_URL
                    else vm_url).rstrip("/")
    return dataclasses.replace(found, host=host, label=label, endpoint=endpoint)


def _emulator_connection(profile: str, why: str, factory: Callable[[], Emulator] | None,
                         options: dict[str, Any]) -> Connection:
    """Start the emulator playing ``profile`` and connect to it with that host's protocol."""
    if factory is None:
        from .emulator import Emulator  # lazily: only connect may start the emulator

        def factory() -> Emulator:
            return Emulator(profile=profile)

    emu = factory()
    emu.start()
    url = str(emu.imds_url).rstrip("/")
    played: str = getattr(emu, "profile", "vm")  # a stand-in emulator in tests plays a VM
    environ = emu.environment if played != "vm" else {}
    found = detect(environ, sysfs_root="/nonexistent", himds_path="/nonexistent")
    if played in ("arc", "workload"):  # Arc's key directory; the CA of the emulated Entra ID's HTTPS
        options = {**options, **({"key_dir": emu.arc_key_dir} if played == "arc" else {"verify": emu.ca_bundle})}
    if played == "vm":
        return _host_connection(found, "vm", "", url, options, chosen="emulator", emulator=emu,
                                reason=f"Using the embedded emulator at {url} because {why}.")
    conn = _host_connection(found, played, "", url, options, chosen="emulator", emulator=emu, reason="")
    conn.reason = (f"Using the embedded emulator playing {found.label} at {conn.endpoint} because {why}: the "
                   f"protocol is {found.label}'s, the tokens are the emulator's.")
    return conn


_announced = threading.Event()


def announce_emulator(conn: Connection) -> None:
    """Say, once per process and visibly, that auto mode fell back to the emulator.

    In a notebook this is display output (a banner above the cell's result), elsewhere a line on
    stderr; a log record alone is too easy to miss.

    Example::

        >>> import io, contextlib
        >>> from mi_notebook.sources import ImdsSource
        >>> conn = Connection("http://127.0.0.1:1", "vm", ImdsSource("http://127.0.0.1:1"), chosen="emulator",
        ...                   reason="Using the embedded emulator.")
        >>> _announced.clear()
        >>> err = io.StringIO()
        >>> with contextlib.redirect_stderr(err):
        ...     announce_emulator(conn); announce_emulator(conn)
        >>> err.getvalue().count("NOT Azure")
        1
    """
    if _announced.is_set():
        return
    _announced.set()
    text = f"mi-notebook: NOT Azure: every token now comes from the embedded emulator. {conn.reason}"
    try:
        from IPython.core.getipython import get_ipython
        from IPython.display import display
    except ImportError:
        shell = None
    else:
        shell = get_ipython()
    if shell is not None and getattr(shell, "kernel", None) is not None:
        import html

        banner = (
            '<div style="border:2px solid #bf8700;background:#fff8c5;padding:6px 10px;border-radius:6px">'
            "<b>mi-notebook: not Azure.</b> Every token now comes from the embedded emulator: signed, "
            f"realistic, and useless against Azure.<br><small>{html.escape(conn.reason)}</small></div>"
        )
        display({"text/plain": text, "text/html": banner}, raw=True)
    else:
        import sys

        print(text, file=sys.stderr)


def current() -> Connection | None:
    """The current connection, or ``None`` before the first ``connect()`` / ``get_token()``.

    Example::

        >>> disconnect(); current() is None
        True
    """
    return _current


def disconnect() -> None:
    """Forget the current connection and stop the emulator it started (if any).

    Example::

        >>> disconnect()
    """
    global _current
    with _lock:
        previous, _current = _current, None
    if previous is not None:
        previous.close()


def current_or_connect() -> Connection:
    """The current connection, connecting (auto mode, see the module doc) if there is none.

    Example::

        >>> disconnect(); current_or_connect().chosen
        'emulator'
        >>> disconnect()
    """
    conn = _current
    if conn is not None and not conn.closed:
        return conn
    with _lock:
        conn = _current
        if conn is None or conn.closed:
            conn = connect()
        return conn


def get_token(
    resource: str = "arm",
    *,
    identity: Identity | str | None = None,
    force_refresh: bool = False,
    on_attempt: Callable[..., None] | None = None,
) -> AccessToken:
    """A token for ``resource`` through the current connection (connecting on first use) and the cache.

    ``identity``: ``None`` (system-assigned), an ``Identity``, or text for ``Identity.parse``.
    ``force_refresh=True`` skips the cached token (IMDS itself may still return the same one).

    Example::

        >>> import mi_notebook as mi
        >>> _ = mi.connect(mode="emulator")
        >>> tok = mi.get_token("arm")
        >>> mi.get_token("arm").from_cache, mi.get_token("arm").expires_on == tok.expires_on
        (True, True)
        >>> disconnect()
    """
    conn = _current
    if conn is None or conn.closed:  # a cached get_token is on every SDK call's path: skip the lock
        conn = current_or_connect()
    if not force_refresh and on_attempt is None:  # Connection.get_token's hot path, inlined once more
        try:
            key = conn._keys[resource, identity][0]
        except (KeyError, TypeError):
            pass
        else:
            store = conn.cache
            fresh = store._fresh.get(key)
            if fresh is not None and store._clock() < fresh[1]:
                next(store._fast_hits)
                return fresh[0]
    return conn.get_token(resource, identity=identity, force_refresh=force_refresh, on_attempt=on_attempt)


# --- helpers -------------------------------------------------------------------------------------
_MEMO_LIMIT = 512


def _explicit(url: str, why: str, options: dict[str, Any]) -> Connection:
    from .sources.imds import ImdsSource

    client = ImdsSource(url, **{k: v for k, v in options.items() if k != "key_dir"})  # validates the URL
    return Connection(client.endpoint, "vm", client, chosen="given", reason=f"Using {client.endpoint} because {why}.")

