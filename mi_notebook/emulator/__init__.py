"""An embedded Azure IMDS (+ ARM) emulator: real HTTP on loopback, real RS256 tokens, documented errors.

It is an independent implementation of the protocol (it imports nothing from the rest of
mi_notebook), so a misreading in the client cannot hide behind the same misreading here. Besides an
Azure VM's IMDS (the default ``profile="vm"``) it can play the other managed-identity hosts where
notebooks run: ``"azureml"``, ``"appservice"``, ``"arc"`` and ``"cloudshell"`` (see
:mod:`~mi_notebook.emulator.profiles`); ``emu.environment`` holds the variables such a host sets.
Every answer carries the header ``X-Mi-Notebook-Emulator: 1``.

Example::

    >>> import requests
    >>> with Emulator(throttle=False) as emu:
    ...     r = requests.get(emu.imds_url + "/metadata/identity/oauth2/token",
    ...                      params={"api-version": "2018-02-01", "resource": "https://management.azure.com/"},
    ...                      headers={"Metadata": "true"})
    ...     claims = emu.verify(r.json()["access_token"])
    ...     (r.status_code, claims["oid"] == emu.vm.system_identity.object_id)
    (200, True)
    >>> with Emulator(profile="appservice", throttle=False) as emu:
    ...     env = emu.environment
    ...     r = requests.get(env["IDENTITY_ENDPOINT"], headers={"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]},
    ...                      params={"api-version": "2019-08-01", "resource": "https://vault.azure.net"})
    ...     (r.status_code, r.headers["X-Mi-Notebook-Emulator"], sorted(env))
    (200, '1', ['IDENTITY_ENDPOINT', 'IDENTITY_HEADER'])
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .admin import ADMIN_PREFIX, AdminEndpoint
from .arckeys import DEFAULT_KEY_DIR
from .azurite import Azurite, AzuriteUnavailable
from .config import load_config
from .faults import Fault, FaultQueue
from .hostbase import HostContext, HostService
from .imds import TOKEN_PATH, ImdsService
from .issuer import TokenIssuer
from .keys import SigningKeys
from .profiles import PROFILES, USER_TOKEN_PROFILES, check_profile, host_options, service_class
from .requestlog import RequestLog, RequestRecord
from .server import MARKER_HEADER, HttpRequest, HttpResponse, HttpServer
from .tenant import KnownResource, RoleAssignment
from .usertokens import SignedInUser, UserTokenIssuer
from .world import VirtualMachine, VmIdentity

__all__ = ["MARKER_HEADER", "PROFILES", "Azurite", "AzuriteUnavailable", "Emulator", "Fault", "KnownResource", "RequestRecord", "RoleAssignment",
           "SignedInUser", "VirtualMachine", "VmIdentity"]

# config keys that configure the emulator itself; everything else describes the VM
_EMULATOR_KEYS = {"throttle", "latency", "single_user_quirk", "strict_metadata", "faults", "host", "port", "arm",
                  "server_version", "vm",
                  "profile", "secret", "user", "sso", "azureml_expires_on", "arc_key_dir", "keyvault"}


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
      single user-assigned one is always picked when none is named, as documented. ``strict_metadata``:
      accept only ``Metadata: true`` in lower case (default: any case; docs/emulator.md says why).
    - ``clock``: epoch seconds for token times and rate windows (inject one for short-lived/expired tokens).
    - any other keyword is a :meth:`VirtualMachine.build` option (``name``, ``tags``, ``resource_group``,
      ``extra_resources``, ``role_assignments``, ...); ``vm`` passes a ready-made VM instead.
    - ``faults``: faults to inject at start (dicts as in :meth:`inject`); ``arm``: start the ARM side too
      (when the ARM module is installed), or a dict of ARM options (``tls``, ``page_size``, ``throttle``,
      ``read_capacity``, ``read_refill``, ``demo_data``, ``port``); ``host``/``port``: where IMDS listens.
    - ``profile``: the host to play, ``"vm"`` (default: IMDS, exactly as without a profile),
      ``"azureml"``, ``"appservice"``, ``"arc"`` or ``"cloudshell"``. ``secret``: the value of
      ``MSI_SECRET`` / ``IDENTITY_HEADER`` (default: random per emulator); ``user``: the signed-in
      user of azureml / cloudshell (``upn``, ``name``, ``object_id``...); ``sso`` (azureml): True
      (default), False or ``"unavailable"``; ``azureml_expires_on``: ``"int"`` (default),
      ``"string"`` or ``"date"``; ``arc_key_dir``: where Arc writes its key files (default
      ``/var/opt/azcmagent/tokens``, the directory the official clients insist on).
    - ``keyvault`` (default True): serve a seeded Key Vault's secrets over HTTPS
      (:mod:`~mi_notebook.emulator.keyvault`), or a dict ``{"secrets": {name: value}, "port": n}``. Unless
      ``role_assignments`` are given, the system-assigned identity is *Key Vault Secrets User* on it
      (the user-assigned ones are not, so they meet the data-plane 403).

    Attributes: ``imds_url`` (the base URL, whatever the profile), ``token_url``, ``profile``,
    ``environment``, ``arm_url`` / ``ca_bundle`` (None without ARM), ``vault_url`` / ``vault`` /
    ``vault_ca_bundle`` (the Key Vault's URL, :class:`~mi_notebook.emulator.keyvault.VaultService` and
    CA, the same file as ARM's when ARM speaks TLS; None without it), ``vm``, ``user``, ``requests``,
    ``faults``, ``keys``, ``jwks``, ``jwks_url``, ``issuer``, ``clock``, ``config``.

    Example::

        >>> with Emulator(seed=7, user_assigned=["app"], arm=False) as emu:
        ...     emu.running, [i.name for i in emu.vm.identities], emu.imds_url.startswith("http://127.0.0.1:")
        (True, ['vm-notebook', 'app'], True)
        >>> emu.running, Emulator(seed=7).vm.tenant_id == emu.vm.tenant_id  # same seed, same ids
        (False, True)
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
        strict_metadata: bool | None = None,
        clock: Callable[[], float] = time.time,
        faults: Iterable[Mapping[str, Any]] | None = None,
        host: str | None = None,
        port: int | None = None,
        arm: bool | Mapping[str, Any] | None = None,
        vm: VirtualMachine | None = None,
        server_version: str | None = None,
        profile: str | None = None,
        secret: str | None = None,
        user: Mapping[str, Any] | None = None,
        sso: bool | str | None = None,
        azureml_expires_on: str | None = None,
        arc_key_dir: str | Path | None = None,
        keyvault: bool | Mapping[str, Any] | None = None,
        **vm_options: Any,
    ) -> None:
        cfg = load_config(config) if config is not None else {}
        self.profile = check_profile(_pick(profile, cfg.get("profile"), "vm"))
        profile_options = host_options(self.profile, sso=_given(sso, cfg, "sso"),
                                       expires_on=_given(azureml_expires_on, cfg, "azureml_expires_on"),
                                       key_dir=_given(arc_key_dir, cfg, "arc_key_dir"))
        #: where the arc profile writes its challenge key files (None for the other profiles)
        self.arc_key_dir: str | None = (
            str(profile_options.get("key_dir") or DEFAULT_KEY_DIR) if self.profile == "arc" else None)
        self.config = cfg
        vm_cfg = dict(cfg.get("vm") or {})
        vm_cfg.update({k: v for k, v in cfg.items() if k not in _EMULATOR_KEYS})
        for key, value in (("seed", seed), ("system_assigned", system_assigned),
                           ("user_assigned", user_assigned), ("token_lifetime", token_lifetime)):
            if value is not None:
                vm_cfg[key] = value
        vm_cfg.update(vm_options)
        self.vm = vm if vm is not None else VirtualMachine.from_config(vm_cfg)
        self.user = SignedInUser.build(seed=self.vm.seed, spec=_given(user, cfg, "user"))
        if self.profile in USER_TOKEN_PROFILES and vm is None and "role_assignments" not in vm_cfg:
            # the signed-in user can read the subscription, so their tokens are of use on the ARM side
            self.vm.add_role_assignment(RoleAssignment(self.user.object_id, "Reader", self.vm.subscription_scope))
        kv = _given(keyvault, cfg, "keyvault")
        self._keyvault_options: dict[str, Any] = dict(kv) if isinstance(kv, Mapping) else {}
        self._keyvault_enabled = kv is None or isinstance(kv, Mapping) or bool(kv)
        unknown = set(self._keyvault_options) - {"secrets", "port"}
        if unknown:
            raise ValueError(f"unknown keyvault option(s) {sorted(unknown)}: use 'secrets' and 'port'")
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
        host_class = service_class(self.profile)
        default_server = f"IMDS/150.870.65.{n}" if host_class is None else host_class.server_header
        self.server_version: str | None = _pick(server_version, cfg.get("server_version"), default_server, "") or None

        self.keys = SigningKeys(issuer=f"https://sts.windows.net/{self.vm.tenant_id}/")
        self.issuer = TokenIssuer(self.vm, self.keys, clock=clock)
        self.faults = FaultQueue()
        self.requests = RequestLog()
        self._stopping = threading.Event()
        self.imds = ImdsService(self.vm, self.issuer, self.faults, throttle=self.throttle, clock=clock,
                                latency=latency,
                                single_user_quirk=bool(_pick(single_user_quirk, cfg.get("single_user_quirk"), False)),
                                strict_metadata=bool(_pick(strict_metadata, cfg.get("strict_metadata"), False)),
                                stop=self._stopping)
        self.user_tokens = UserTokenIssuer(self.vm, self.user, self.keys, clock=clock)
        self.secret = str(_pick(secret, cfg.get("secret"), str(uuid.uuid4())))
        self.host_service: HostService | None = None
        if host_class is not None:
            self.host_service = host_class(HostContext(
                self.vm, self.issuer, self.user_tokens, self.faults, self.secret, throttle=self.throttle,
                clock=clock, latency=latency, stop=self._stopping, options=profile_options))
        self.admin = AdminEndpoint(self)
        for spec in [*(cfg.get("faults") or []), *(faults or [])]:
            self.faults.add(Fault.from_dict(spec))
        self._server: HttpServer | None = None
        self.arm: Any = None  # the ARM side (mi_notebook/emulator/arm.py), when present and enabled
        self.arm_url: str | None = None
        self.ca_bundle: str | None = None
        self.keyvault: Any = None  # the Key Vault side (emulator/keyvault.py VaultServer), when enabled
        self.vault: Any = None
        if self._keyvault_enabled:
            from .keyvault import SECRETS_USER, VaultServer

            self.keyvault = VaultServer(self, secrets=self._keyvault_options.get("secrets"),
                                        port=int(self._keyvault_options.get("port", 0)))
            self.vault = self.keyvault.service
            system = self.vm.system_identity
            if vm is None and "role_assignments" not in vm_cfg and system is not None:
                self.vm.add_role_assignment(RoleAssignment(system.object_id, SECRETS_USER, self.vault.resource_id))
        self._lock = threading.Lock()

    # ---- life cycle --------------------------------------------------------------------------------
    def start(self) -> Emulator:
        """Bind and serve in background threads; idempotent. Returns self."""
        with self._lock:
            if self._server is not None:
                return self
            self._stopping.clear()
            if self.host_service is not None:
                self.host_service.start()  # Arc: the key directory must be writable (OSError if not)
            server = HttpServer(self._dispatch, host=self.host, port=self._port,
                                server_header=self.server_version, request_log=self.requests,
                                clock=self.clock, service="imds")
            try:
                server.start()
            except BaseException:
                if self.host_service is not None:
                    self.host_service.stop()
                raise
            self._server = server
            try:
                self._start_arm()
            except BaseException:
                if self.arm is not None:
                    self.arm.stop()
                    self.arm = None
                server.stop()
                self._server = None
                if self.host_service is not None:
                    self.host_service.stop()
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
            if self.keyvault is not None:
                self.keyvault.stop()
            if self.arm is not None:
                self.arm.stop()
                self.arm = None
                self.arm_url = None
                self.ca_bundle = None
            if self._server is not None:
                self._server.stop()
                self._server = None
            if self.host_service is not None:
                self.host_service.stop()  # Arc: removes the key files it wrote

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
        """The token endpoint of the profile (IMDS's ``/metadata/identity/oauth2/token`` on "vm")."""
        if self.host_service is not None:
            return self.host_service.token_url(self.imds_url)
        return self.imds_url + TOKEN_PATH

    @property
    def environment(self) -> dict[str, str]:
        """The environment variables a real host of this profile sets, pointing at this emulator.

        ``"vm"``: none (a VM's IMDS sits at a fixed address; point clients here with
        ``AZURE_POD_IDENTITY_AUTHORITY_HOST`` or ``MI_NOTEBOOK_IMDS_URL`` set to :attr:`imds_url`).

        Example::

            >>> import tempfile
            >>> with Emulator(profile="arc", arc_key_dir=tempfile.mkdtemp()) as emu:
            ...     env = emu.environment
            ...     env["IMDS_ENDPOINT"] == emu.imds_url, env["IDENTITY_ENDPOINT"] == emu.token_url
            (True, True)
            >>> Emulator().environment  # a VM sets none
            {}
        """
        if self.host_service is None:
            return {}
        return self.host_service.environment(self.imds_url)

    @property
    def vault_url(self) -> str | None:
        """The emulated Key Vault's URL (``https://127.0.0.1:PORT``), None when it is off or stopped.

        The vault's server starts on first use of this (or :attr:`vault_ca_bundle`): an emulator that
        never needs it does not pay for a third server (about 50 ms to stop one).
        """
        vault = self._started_vault()
        return vault.url if vault is not None else None

    @property
    def vault_ca_bundle(self) -> str | None:
        """The CA certificate the Key Vault's HTTPS presents (pass it as ``connection_verify=``)."""
        vault = self._started_vault()
        return vault.ca_bundle if vault is not None else None

    def _started_vault(self) -> Any:
        with self._lock:
            if self.keyvault is None or self._server is None:
                return None
            if self.keyvault.url is None:
                self.keyvault.start(self.arm.tls if self.arm is not None else None)
            return self.keyvault

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
        if self.host_service is not None:
            return self.host_service.handle(request)
        return self.imds.handle(request)

    def __repr__(self) -> str:
        where = self.imds_url if self.running else "stopped"
        shown = "" if self.profile == "vm" else f" profile={self.profile}"
        return f"<Emulator imds={where}{shown} vm={self.vm.name!r} identities={len(self.vm.identities)}>"


def _pick(*values: Any) -> Any:
    return next(v for v in values if v is not None)


def _given(value: Any, cfg: Mapping[str, Any], key: str) -> Any:
    """An explicit argument, else the config file's value (None when neither says)."""
    return value if value is not None else cfg.get(key)
