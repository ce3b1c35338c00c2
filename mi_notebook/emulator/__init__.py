"""An embedded Azure IMDS (+ ARM) emulator: real HTTP on loopback, real RS256 tokens, documented errors.

It is an independent implementation of the protocol (it imports nothing from the rest of
mi_notebook), so a misreading in the client cannot hide behind the same misreading here.

Example::

    >>> import requests
    >>> with Emulator(throttle=False) as emu:
    ...     r = requests.get(emu.imds_url + "/metadata/identity/oauth2/token",
    ...                      params={"api-version": "2018-02-01", "resource": "https://management.azure.com/"},
    ...                      headers={"Metadata": "true"})
    ...     claims = emu.verify(r.json()["access_token"])
    ...     (r.status_code, claims["oid"] == emu.vm.system_identity.object_id)
    (200, True)
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .admin import ADMIN_PREFIX, AdminEndpoint
from .faults import Fault, FaultQueue
from .imds import TOKEN_PATH, ImdsService
from .issuer import TokenIssuer
from .keys import SigningKeys
from .requestlog import RequestLog, RequestRecord
from .server import HttpRequest, HttpResponse, HttpServer
from .world import KnownResource, RoleAssignment, VirtualMachine, VmIdentity, load_config

__all__ = ["Emulator", "Fault", "KnownResource", "RequestRecord", "RoleAssignment", "VirtualMachine", "VmIdentity"]

# config keys that configure the emulator itself; everything else describes the VM
_EMULATOR_KEYS = {"throttle", "latency", "single_user_quirk", "faults", "host", "port", "arm", "server_version", "vm"}


class Emulator:
    """IMDS on ``http://127.0.0.1:<free port>`` in a background thread (and ARM, when available).

    Options (explicit arguments win over ``config``, a dict or a JSON/TOML file path):

    - ``seed``: every GUID is derived from it (same seed, same VM); ``system_assigned`` (default True);
      ``user_assigned``: a count (default 2) or a list of names / dicts; ``token_lifetime`` (s, 86400).
    - ``throttle`` (default **True**): IMDS's documented limits (identity endpoint 20 requests/s and 5
      concurrent, instance metadata 5/s); tests and benchmarks that hammer it pass ``False``.
    - ``latency``: seconds added to each identity-endpoint answer; ``single_user_quirk``: a VM with a
      system-assigned and exactly one user-assigned identity answers requests naming no identity with
      the user-assigned one (the known quirk; off by default). Without a system-assigned identity, a
      single user-assigned one is always picked when none is named, as documented.
    - ``clock``: epoch seconds for token times and rate windows (inject one for short-lived/expired tokens).
    - any other keyword is a :meth:`VirtualMachine.build` option (``name``, ``tags``, ``resource_group``,
      ``extra_resources``, ``role_assignments``, ...); ``vm`` passes a ready-made VM instead.
    - ``faults``: faults to inject at start (dicts as in :meth:`inject`); ``arm``: start the ARM side too
      (when the ARM module is installed), or a dict of ARM options (``tls``, ``page_size``, ``throttle``,
      ``read_capacity``, ``read_refill``, ``demo_data``, ``port``); ``host``/``port``: where IMDS listens.

    Attributes: ``imds_url``, ``arm_url`` / ``ca_bundle`` (None without ARM), ``vm``, ``requests``,
    ``faults``, ``keys``, ``jwks``, ``jwks_url``, ``issuer``, ``clock``, ``config``.
    """

    def __init__(
        self,
        *,
        config: Mapping[str, Any] | str | Path | None = None,
        seed: int | str | None = None,
        system_assigned: bool | None = None,
        user_assigned: int | Iterable[str | Mapping[str, Any]] | None = None,
        token_lifetime: int | None = None,
        throttle: bool | None = None,
        latency: float | None = None,
        single_user_quirk: bool | None = None,
        clock: Callable[[], float] = time.time,
        faults: Iterable[Mapping[str, Any]] | None = None,
        host: str | None = None,
        port: int | None = None,
        arm: bool | Mapping[str, Any] | None = None,
        vm: VirtualMachine | None = None,
        server_version: str | None = None,
        **vm_options: Any,
    ) -> None:
        cfg = load_config(config) if config is not None else {}
        self.config = cfg
        vm_cfg = dict(cfg.get("vm") or {})
        vm_cfg.update({k: v for k, v in cfg.items() if k not in _EMULATOR_KEYS})
        for key, value in (("seed", seed), ("system_assigned", system_assigned),
                           ("user_assigned", user_assigned), ("token_lifetime", token_lifetime)):
            if value is not None:
                vm_cfg[key] = value
        vm_cfg.update(vm_options)
        self.vm = vm if vm is not None else VirtualMachine.from_config(vm_cfg)
        self.clock = clock
        self.throttle = bool(_pick(throttle, cfg.get("throttle"), True))
        latency = float(_pick(latency, cfg.get("latency"), 0.0))
        if not 0 <= latency <= 60:
            raise ValueError(f"latency must be between 0 and 60 seconds, got {latency!r}")
        self.host = str(_pick(host, cfg.get("host"), "127.0.0.1"))
        self._port = int(_pick(port, cfg.get("port"), 0))
        self._arm_enabled = bool(_pick(arm, cfg.get("arm") if isinstance(cfg.get("arm"), bool) else None, True))
        # ARM side options (emulator/arm.py ArmOptions: tls, page_size, throttle, ...): arm={...} or config "arm"
        arm_cfg = arm if isinstance(arm, Mapping) else cfg.get("arm")
        self.arm_options: dict[str, Any] = dict(arm_cfg) if isinstance(arm_cfg, Mapping) else {}
        if isinstance(arm, Mapping):
            self._arm_enabled = True
        if self.arm_options and self._arm_enabled:
            from .arm import ArmOptions

            ArmOptions.from_mapping(self.arm_options)  # bad options: ValueError now, not at start()
        n = 1000 + int(hashlib.sha256(str(self.vm.seed).encode()).hexdigest(), 16) % 9000
        self.server_version = str(_pick(server_version, cfg.get("server_version"), f"IMDS/150.870.65.{n}"))

        self.keys = SigningKeys(issuer=f"https://sts.windows.net/{self.vm.tenant_id}/")
        self.issuer = TokenIssuer(self.vm, self.keys, clock=clock)
        self.faults = FaultQueue()
        self.requests = RequestLog()
        self._stopping = threading.Event()
        self.imds = ImdsService(self.vm, self.issuer, self.faults, throttle=self.throttle, clock=clock,
                                latency=latency,
                                single_user_quirk=bool(_pick(single_user_quirk, cfg.get("single_user_quirk"), False)),
                                stop=self._stopping)
        self.admin = AdminEndpoint(self)
        for spec in [*(cfg.get("faults") or []), *(faults or [])]:
            self.faults.add(Fault.from_dict(spec))
        self._server: HttpServer | None = None
        self.arm: Any = None  # the ARM side (mi_notebook/emulator/arm.py), when present and enabled
        self.arm_url: str | None = None
        self.ca_bundle: str | None = None
        self._lock = threading.Lock()

    # ---- life cycle --------------------------------------------------------------------------------
    def start(self) -> Emulator:
        """Bind and serve in background threads; idempotent. Returns self."""
        with self._lock:
            if self._server is not None:
                return self
            self._stopping.clear()
            server = HttpServer(self._dispatch, host=self.host, port=self._port,
                                server_header=self.server_version, request_log=self.requests,
                                clock=self.clock, service="imds")
            server.start()
            self._server = server
            try:
                self._start_arm()
            except BaseException:
                server.stop()
                self._server = None
                raise
        return self

    def _start_arm(self) -> None:
        if not self._arm_enabled:
            return
        try:
            from .arm import ArmServer  # type: ignore[import-not-found]
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.arm":
                return  # no ARM side installed: IMDS only
            raise
        self.arm = ArmServer(self)
        self.arm.start()
        self.arm_url = self.arm.url
        self.ca_bundle = getattr(self.arm, "ca_bundle", None)

    def stop(self) -> None:
        """Stop serving: wakes held ("hang") requests and closes keep-alive connections. Idempotent."""
        with self._lock:
            self._stopping.set()
            if self.arm is not None:
                self.arm.stop()
                self.arm = None
                self.arm_url = None
                self.ca_bundle = None
            if self._server is not None:
                self._server.stop()
                self._server = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def stopping(self) -> threading.Event:
        """Set while stopping: long waits (hang faults, latency) end early when it is set."""
        return self._stopping

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running: use `with Emulator() as emu:` or emu.start()")
        return self._server.port

    @property
    def imds_url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:PORT`` (the form AZURE_POD_IDENTITY_AUTHORITY_HOST takes)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def token_url(self) -> str:
        return self.imds_url + TOKEN_PATH

    @property
    def jwks_url(self) -> str:
        return self.imds_url + ADMIN_PREFIX + "/jwks"

    @property
    def jwks(self) -> dict[str, Any]:
        return self.keys.jwks()

    @property
    def issuer_url(self) -> str:
        """The tokens' ``iss``: ``https://sts.windows.net/<tenant>/``."""
        return self.issuer.issuer_url()

    # ---- faults and helpers ------------------------------------------------------------------------
    def inject(self, fault: int | str, endpoint: str = "any", count: int | None = 1, *,
               retry_after: float | None = None, seconds: float | None = None, status: int | None = None,
               variant: str | None = None) -> Fault:
        """Make the next ``count`` requests to ``endpoint`` ("token", "instance", "arm", "any") fail.

        ``fault``: 404, 410, 429, 500, 502, 503, 504, "hang", "drop", "truncated", "html" or
        "bad-expires"; see :class:`~mi_notebook.emulator.faults.Fault` for the options.

        Example::

            >>> with Emulator() as emu:
            ...     f = emu.inject(429, endpoint="token", retry_after=3)
            ...     len(emu.faults), f.retry_after
            (1, 3.0)
        """
        return self.faults.add(Fault.create(fault, endpoint=endpoint, count=count, retry_after=retry_after,
                                            seconds=seconds, status=status, variant=variant))

    def clear_faults(self) -> int:
        """Drop every pending fault; returns how many there were."""
        return self.faults.clear()

    def verify(self, token: str, *, audience: str | Iterable[str] | None = None,
               now: float | None = None) -> dict[str, Any]:
        """Check a token this emulator issued (signature, issuer, times by the emulator clock)."""
        return self.keys.verify(token, audience=audience, issuer=self.issuer_url,
                                now=self.clock() if now is None else now)

    def _dispatch(self, request: HttpRequest) -> HttpResponse:
        if request.path == ADMIN_PREFIX or request.path.startswith(ADMIN_PREFIX + "/"):
            return self.admin.handle(request)
        return self.imds.handle(request)

    def __repr__(self) -> str:
        where = self.imds_url if self.running else "stopped"
        return f"<Emulator imds={where} vm={self.vm.name!r} identities={len(self.vm.identities)}>"


def _pick(*values: Any) -> Any:
    return next(v for v in values if v is not None)
