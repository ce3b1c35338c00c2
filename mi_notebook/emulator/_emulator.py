"""The :class:`Emulator`: IMDS (or another host's token endpoint), ARM, a Key Vault and Azure OpenAI on loopback.

Example::

    >>> with Emulator(seed=7, arm=False, keyvault=False, openai=False) as emu:
    ...     emu.running, emu.arm_url, emu.openai_url, emu.imds_url.startswith("http://127.0.0.1:")
    (True, None, None, True)
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections.abc import Iterable
from typing import Any

from .admin import ADMIN_PREFIX, ADMIN_TOKEN_ENV, AdminEndpoint, check_admin_token, new_admin_token
from .arm import ArmServer
from .azureopenai import OPENAI_USER, OpenAIServer, OpenAIService
from .config import load_config
from .faults import Fault, FaultQueue
from .hosts import (
    DEFAULT_KEY_DIR,
    USER_TOKEN_PROFILES,
    HostContext,
    HostService,
    SignedInUser,
    UserTokenIssuer,
    service_class,
)
from .imds import TOKEN_PATH, ImdsService
from .issuer import TokenIssuer
from .keys import SigningKeys
from .keyvault import SECRETS_USER, VaultServer, VaultService
from .options import EmulatorOptions
from .requestlog import RequestLog
from .server import HttpRequest, HttpResponse, HttpServer
from .tenant import RoleAssignment
from .tls import TlsMaterial
from .workload import ServiceAccountToken, WorkloadPod
from .world import VirtualMachine

__all__ = ["Emulator"]


class Emulator:
    """IMDS on ``http://127.0.0.1:<free port>`` in a background thread, with ARM, a Key Vault and Azure OpenAI.

    Built from one :class:`~mi_notebook.emulator.options.EmulatorOptions` (``Emulator(options=...)``)
    or from the keywords that map onto it (:meth:`EmulatorOptions.from_keywords
    <mi_notebook.emulator.options.EmulatorOptions.from_keywords>`), not both:

    - the VM: ``seed`` (every GUID is derived from it: same seed, same VM), ``system_assigned``
      (default True), ``user_assigned`` (a count, default 2, or a list of names / dicts),
      ``token_lifetime`` (s, 86400), any other :meth:`VirtualMachine.build` keyword (``name``, ``tags``,
      ``role_assignments``...), or ``vm``: a ready-made VM;
    - the token endpoint: ``throttle`` (default **True**: IMDS's documented limits; tests and
      benchmarks that hammer it pass ``False``), ``latency``, ``single_user_quirk``,
      ``strict_metadata``, ``server_version``;
    - the host: ``profile`` (``"vm"``, ``"azureml"``, ``"appservice"``, ``"arc"``, ``"cloudshell"``,
      ``"workload"``), ``secret``, ``user``, ``sso``, ``azureml_expires_on``, ``arc_key_dir``, ``workload``
      (the AKS pod's options: :class:`~mi_notebook.emulator.workload.WorkloadOptions`);
    - the cloud: ``cloud`` (``"AzurePublicCloud"``, ``"AzureUSGovernmentCloud"``, ``"AzureChinaCloud"``):
      IMDS's ``azEnvironment``, the audiences the tenant knows, the tokens' issuer, ARM's and the Key
      Vault's audiences;
    - ``arm``: False for no ARM side, or a dict of ARM options (``tls``, ``page_size``, ``throttle``,
      ``read_capacity``, ``read_refill``, ``demo_data``, ``port``); ``keyvault``: False, or
      ``{"secrets": {name: value}, "port": n}`` (:mod:`~mi_notebook.emulator.keyvault`; unless
      ``role_assignments`` are given, the system-assigned identity is *Key Vault Secrets User* on it);
      ``openai``: False, or a dict of :class:`~mi_notebook.emulator.azureopenai.OpenAIOptions`
      (``deployments``, ``audiences``, ``requests_per_minute``, ``port``; unless ``role_assignments``
      are given, the system-assigned identity is *Cognitive Services OpenAI User* on the account);
    - ``faults`` to inject at start, ``host`` / ``port`` where the token endpoint listens, ``clock``
      (epoch seconds for token times and rate windows), ``admin_token`` (the control plane's; default:
      ``$MI_NOTEBOOK_EMULATOR_ADMIN_TOKEN`` if set, else random), ``config`` (a dict or a JSON/TOML
      file path with any of these names but ``admin_token``; explicit keywords win over it).

    Attributes: ``options``, ``imds_url`` (the base URL, whatever the profile), ``token_url``,
    ``profile``, ``cloud``, ``environment``, ``arm_url``, ``ca_bundle`` (the CA of the HTTPS sides: ARM's,
    or Entra ID's for the workload profile; None when neither runs), ``workload`` (the AKS pod of the
    workload profile, else None), ``vault_url`` /
    ``vault`` / ``vault_ca_bundle`` (the Key Vault's URL,
    :class:`~mi_notebook.emulator.keyvault.VaultService` and CA, the same file as ARM's when ARM speaks
    TLS; None without it), ``openai_url`` / ``openai`` / ``openai_ca_bundle`` (the same for Azure OpenAI:
    :class:`~mi_notebook.emulator.azureopenai.OpenAIService`), ``vm``, ``user``, ``requests``, ``faults``, ``keys``, ``jwks``, ``jwks_url``,
    ``issuer``, ``clock``, ``admin_token`` / ``admin_headers`` (for the control plane over HTTP,
    ``/__emulator__/...``: the methods of this object need neither).

    Example::

        >>> with Emulator(seed=7, user_assigned=["app"], arm=False) as emu:
        ...     emu.running, [i.name for i in emu.vm.identities], emu.imds_url.startswith("http://127.0.0.1:")
        (True, ['vm-notebook', 'app'], True)
        >>> emu.running, Emulator(seed=7).vm.tenant_id == emu.vm.tenant_id  # same seed, same ids
        (False, True)
        >>> Emulator(EmulatorOptions(vm={"seed": 7}, arm=None)).vm.tenant_id == emu.vm.tenant_id
        True
    """

    def __init__(self, options: EmulatorOptions | None = None, **keywords: Any) -> None:
        config: dict[str, Any] = {}
        if options is None:
            if keywords.get("config") is not None:
                config = keywords["config"] = load_config(keywords["config"])
            options = EmulatorOptions.from_keywords(**keywords)
        elif keywords:
            raise TypeError(f"Emulator() takes options= or keywords, not both (got {', '.join(sorted(keywords))}); "
                            "use dataclasses.replace(options, ...) to vary options")
        self.options = options
        self.config = config
        self.profile = options.profile.name
        profile_settings = options.profile.settings()
        #: where the arc profile writes its challenge key files (None for the other profiles)
        self.arc_key_dir: str | None = (
            str(profile_settings.get("key_dir") or DEFAULT_KEY_DIR) if self.profile == "arc" else None)
        # the emulator's default role assignments, unless the VM came ready-made or with its own
        if isinstance(options.vm, VirtualMachine):
            self.vm, defaults = options.vm, False
        else:
            vm_config = dict(options.vm) if options.cloud is None else {**options.vm, "cloud": options.cloud}
            self.vm, defaults = VirtualMachine.from_config(vm_config), "role_assignments" not in options.vm
        self.user = SignedInUser.build(seed=self.vm.seed, spec=options.profile.user)
        if self.profile in USER_TOKEN_PROFILES and defaults:
            # the signed-in user can read the subscription, so their tokens are of use on the ARM side
            self.vm.add_role_assignment(RoleAssignment(self.user.object_id, "Reader", self.vm.subscription_scope))
        self.clock = options.clock
        endpoint = options.endpoint
        self.throttle = endpoint.throttle
        self.host = options.host
        self._port = options.port
        n = 1000 + int(hashlib.sha256(str(self.vm.seed).encode()).hexdigest(), 16) % 9000
        host_class = service_class(self.profile)
        default_server = (f"IMDS/150.870.65.{n}" if self.profile == "vm"
                          else host_class.server_header if host_class is not None else None)
        server_version = default_server if endpoint.server_version is None else endpoint.server_version
        self.server_version: str | None = server_version or None

        self.keys = SigningKeys(issuer=self.vm.issuer_url)
        self.issuer = TokenIssuer(self.vm, self.keys, clock=self.clock)
        self.faults = FaultQueue()
        self.requests = RequestLog()
        self._stopping = threading.Event()
        self.imds = ImdsService(self.vm, self.issuer, self.faults, throttle=self.throttle, clock=self.clock,
                                latency=endpoint.latency, single_user_quirk=endpoint.single_user_quirk,
                                strict_metadata=endpoint.strict_metadata, stop=self._stopping)
        self.user_tokens = UserTokenIssuer(self.vm, self.user, self.keys, clock=self.clock)
        self.secret = options.profile.secret if options.profile.secret is not None else str(uuid.uuid4())
        self.host_service: HostService | None = None
        if host_class is not None:
            self.host_service = host_class(HostContext(
                self.vm, self.issuer, self.user_tokens, self.faults, self.secret, throttle=self.throttle,
                clock=self.clock, latency=endpoint.latency, stop=self._stopping, options=profile_settings))
        chosen = options.admin_token or os.environ.get(ADMIN_TOKEN_ENV)
        #: the control plane's token (``Authorization: Bearer <admin_token>`` on ``/__emulator__/...``)
        self.admin_token = check_admin_token(chosen, ADMIN_TOKEN_ENV) if chosen else new_admin_token()
        self.admin = AdminEndpoint(self)
        for spec in options.faults:
            self.faults.add(Fault.from_dict(spec))
        self._server: HttpServer | None = None
        self.arm: ArmServer | None = None  # the ARM side, while it runs
        self.arm_url: str | None = None
        self.ca_bundle: str | None = None
        self.keyvault: VaultServer | None = None  # the Key Vault side (it starts on first use of vault_url)
        self.vault: VaultService | None = None
        system = self.vm.system_identity if defaults else None
        if options.keyvault is not None:
            self.keyvault = VaultServer(self, secrets=options.keyvault.secrets, port=options.keyvault.port)
            self.vault = self.keyvault.service
            if system is not None:
                self.vm.add_role_assignment(RoleAssignment(system.object_id, SECRETS_USER, self.vault.resource_id))
        #: the Azure OpenAI side (it starts on first use of openai_url)
        self.openai_server: OpenAIServer | None = None
        self.openai: OpenAIService | None = None
        if options.openai is not None:
            self.openai_server = OpenAIServer(self, options.openai)
            self.openai = self.openai_server.service
            if system is not None:
                self.vm.add_role_assignment(RoleAssignment(system.object_id, OPENAI_USER, self.openai.resource_id))
        #: the AKS pod the workload profile plays (Entra ID over HTTPS, the token file), else None
        self.workload: WorkloadPod | None = (
            WorkloadPod(self, options.workload) if self.profile == "workload" else None)
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
                if self.workload is not None:
                    self.workload.start(self._https_tls())
                    self.ca_bundle = self.ca_bundle or self.workload.ca_bundle
            except BaseException:
                if self.workload is not None:
                    self.workload.stop()
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
        if self.options.arm is None:
            return
        self.arm = ArmServer(self, self.options.arm)
        self.arm.start()
        self.arm_url = self.arm.url
        self.ca_bundle = self.arm.ca_bundle

    def stop(self) -> None:
        """Stop serving: wakes held ("hang") requests and closes keep-alive connections. Idempotent."""
        with self._lock:
            self._stopping.set()
            if self.keyvault is not None:
                self.keyvault.stop()
            if self.openai_server is not None:
                self.openai_server.stop()
            if self.workload is not None:
                self.workload.stop()
            if self.arm is not None:
                self.arm.stop()
                self.arm = None
                self.arm_url = None
                self.ca_bundle = None
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
        """The token endpoint of the profile (IMDS's ``/metadata/identity/oauth2/token`` on "vm", Entra ID's on
        "workload")."""
        if self.workload is not None:
            return self.workload.token_url
        if self.host_service is not None:
            return self.host_service.token_url(self.imds_url)
        return self.imds_url + TOKEN_PATH

    @property
    def environment(self) -> dict[str, str]:
        """The environment variables a real host of this profile sets, pointing at this emulator.

        ``"vm"``: none (a VM's IMDS sits at a fixed address; point clients here with
        ``AZURE_POD_IDENTITY_AUTHORITY_HOST`` or ``MI_NOTEBOOK_IMDS_URL`` set to :attr:`imds_url`).
        ``"workload"``: the webhook's four (``AZURE_AUTHORITY_HOST`` is this emulator's HTTPS login
        port: a client also needs to trust :attr:`ca_bundle`, e.g. through ``REQUESTS_CA_BUNDLE``).

        Example::

            >>> import tempfile
            >>> with Emulator(profile="arc", arc_key_dir=tempfile.mkdtemp()) as emu:
            ...     env = emu.environment
            ...     env["IMDS_ENDPOINT"] == emu.imds_url, env["IDENTITY_ENDPOINT"] == emu.token_url
            (True, True)
            >>> Emulator().environment  # a VM sets none
            {}
        """
        if self.workload is not None:
            return self.workload.environment()
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

    def _started_vault(self) -> VaultServer | None:
        with self._lock:
            if self.keyvault is None or self._server is None:
                return None
            if self.keyvault.url is None:
                self.keyvault.start(self._https_tls())
            return self.keyvault

    def _https_tls(self) -> TlsMaterial | None:
        """The certificate material the HTTPS sides share: ARM's, else the workload pod's Entra ID's."""
        if self.arm is not None and self.arm.tls is not None:
            return self.arm.tls
        return self.workload.tls if self.workload is not None else None

    @property
    def openai_url(self) -> str | None:
        """The emulated Azure OpenAI endpoint (``https://127.0.0.1:PORT``), None when it is off or stopped.

        Pass it as ``azure_endpoint=`` (``AzureOpenAI``) or ``base_url=openai_url + "/openai/v1/"``
        (``OpenAI``); like the vault, its server starts on first use of this (or of
        :attr:`openai_ca_bundle`).

        Example::

            >>> with Emulator(arm=False, keyvault=False) as emu:
            ...     emu.openai_url.startswith("https://127.0.0.1:"), sorted(emu.openai.deployments)
            (True, ['gpt-4o-mini', 'text-embedding-3-small'])
        """
        server = self._started_openai()
        return server.url if server is not None else None

    @property
    def openai_ca_bundle(self) -> str | None:
        """The CA certificate Azure OpenAI's HTTPS presents (``ssl.create_default_context(cafile=...)``)."""
        server = self._started_openai()
        return server.ca_bundle if server is not None else None

    def _started_openai(self) -> OpenAIServer | None:
        with self._lock:
            if self.openai_server is None or self._server is None:
                return None
            if self.openai_server.url is None:
                self.openai_server.start(self.arm.tls if self.arm is not None else None)
            return self.openai_server

    @property
    def admin_headers(self) -> dict[str, str]:
        """The header the control plane (``/__emulator__/...``) wants: ``Authorization: Bearer <admin_token>``.

        Example::

            >>> import requests
            >>> with Emulator(arm=False, keyvault=False) as emu:
            ...     url = emu.imds_url + "/__emulator__/vm"
            ...     requests.get(url).status_code, requests.get(url, headers=emu.admin_headers).status_code
            (401, 200)
        """
        return {"Authorization": f"Bearer {self.admin_token}"}

    @property
    def jwks_url(self) -> str:
        return self.imds_url + ADMIN_PREFIX + "/jwks"

    @property
    def jwks(self) -> dict[str, Any]:
        return self.keys.jwks()

    @property
    def issuer_url(self) -> str:
        """The tokens' ``iss``: the cloud's v1 issuer, ``https://sts.windows.net/<tenant>/`` in the public cloud."""
        return self.issuer.issuer_url()

    @property
    def cloud(self) -> str:
        """The cloud played (IMDS's ``azEnvironment``): ``"AzurePublicCloud"`` unless ``cloud=`` said otherwise.

        Example::

            >>> Emulator(cloud="AzureUSGovernmentCloud", arm=False).cloud
            'AzureUSGovernmentCloud'
        """
        return self.vm.cloud

    # ---- faults and helpers ------------------------------------------------------------------------
    def inject(self, fault: int | str, endpoint: str = "any", count: int | None = 1, *,
               retry_after: float | None = None, seconds: float | None = None, status: int | None = None,
               variant: str | None = None) -> Fault:
        """Make the next ``count`` requests to ``endpoint`` ("token", "instance", "arm", "openai", "any") fail.

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

    def rotate_service_account_token(self) -> ServiceAccountToken:
        """Workload profile: rotate the projected token file now (as the kubelet does at 80% of its lifetime).

        Example::

            >>> with Emulator(profile="workload", arm=False, keyvault=False) as emu:
            ...     before = open(emu.environment["AZURE_FEDERATED_TOKEN_FILE"]).read()
            ...     token = emu.rotate_service_account_token()
            ...     token.serial, open(emu.environment["AZURE_FEDERATED_TOKEN_FILE"]).read() != before
            (2, True)
        """
        if self.workload is None:
            raise RuntimeError(f"only the workload profile has a service-account token (this is {self.profile!r})")
        return self.workload.rotate_service_account_token()

    def _dispatch(self, request: HttpRequest) -> HttpResponse:
        if request.path == ADMIN_PREFIX or request.path.startswith(ADMIN_PREFIX + "/"):
            return self.admin.handle(request)
        if self.workload is not None:
            return self.workload.pod_answer(request)
        if self.host_service is not None:
            return self.host_service.handle(request)
        return self.imds.handle(request)

    def __repr__(self) -> str:
        where = self.imds_url if self.running else "stopped"
        shown = "" if self.profile == "vm" else f" profile={self.profile}"
        return f"<Emulator imds={where}{shown} vm={self.vm.name!r} identities={len(self.vm.identities)}>"

