"""How an emulator is set up: :class:`EmulatorOptions` and the grouped values it holds.

``Emulator(options=EmulatorOptions(...))`` takes one immutable object instead of two dozen keywords,
grouped by what they set: the VM (:meth:`~.world.VirtualMachine.build`'s keywords, or a ready VM),
how the token endpoint behaves (:class:`EndpointOptions`), the host to play (:class:`ProfileOptions`),
the ARM side (:class:`~.arm.ArmOptions`, None for none), the Key Vault (:class:`VaultOptions`, None
for none) and the Azure OpenAI account (:class:`~.azureopenai.OpenAIOptions`, None for none). The
keywords ``Emulator(throttle=False, profile="azureml", arm={...})`` and config files still work:
:meth:`EmulatorOptions.from_keywords` maps them onto the same object (explicit keywords win over the
config file). Bad values raise ``ValueError`` when the options are built, before any
server starts.

Example::

    >>> opts = EmulatorOptions(vm={"seed": 7}, endpoint=EndpointOptions(throttle=False), arm=None)
    >>> opts.endpoint.throttle, opts.arm, opts.keyvault
    (False, None, VaultOptions(port=0))
    >>> EmulatorOptions.from_keywords(seed=7, throttle=False, arm=False) == opts
    True
    >>> EmulatorOptions(endpoint=EndpointOptions(latency=90))
    Traceback (most recent call last):
    ValueError: latency must be between 0 and 60 seconds, got 90
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .admin import check_admin_token
from .arm.service import ArmOptions
from .azureopenai.deployments import OpenAIOptions
from .clouds import check_cloud
from .config import load_config
from .faults import Fault
from .hosts.profiles import check_profile, host_options
from .workload.options import WorkloadOptions
from .world import VirtualMachine

__all__ = ["ArmOptions", "EmulatorOptions", "EndpointOptions", "OpenAIOptions", "ProfileOptions", "VaultOptions",
           "WorkloadOptions"]

# config keys that configure the emulator itself; everything else describes the VM
_EMULATOR_KEYS = {"throttle", "latency", "single_user_quirk", "strict_metadata", "faults", "host", "port", "arm",
                  "server_version", "vm", "profile", "secret", "user", "sso", "azureml_expires_on", "arc_key_dir",
                  "keyvault", "openai", "cloud", "workload"}


@dataclass(frozen=True)
class EndpointOptions:
    """How the token endpoint (IMDS's, or the profile host's) behaves.

    ``throttle`` (default **True**): IMDS's documented limits (identity endpoint 20 requests/s and 5
    concurrent, instance metadata 5/s; the other hosts get the identity limits too); tests and
    benchmarks that hammer it pass ``False``. ``latency``: seconds (0-60) added to each identity answer.
    ``single_user_quirk``: a VM with a system-assigned and exactly one user-assigned identity answers
    requests naming no identity with the user-assigned one (the known quirk). ``strict_metadata``:
    accept only ``Metadata: true`` in lower case. ``server_version``: the ``Server`` header (None: the
    profile's own, ``IMDS/150.870.65.<n>`` on a VM; ``""``: none).

    Example::

        >>> EndpointOptions(throttle=False, latency=0.5)
        EndpointOptions(throttle=False, latency=0.5, single_user_quirk=False, strict_metadata=False, server_version=None)
    """

    throttle: bool = True
    latency: float = 0.0
    single_user_quirk: bool = False
    strict_metadata: bool = False
    server_version: str | None = None

    def __post_init__(self) -> None:
        latency = self.latency
        if isinstance(latency, bool) or not isinstance(latency, (int, float)) or not 0 <= latency <= 60:
            raise ValueError(f"latency must be between 0 and 60 seconds, got {latency!r}")


@dataclass(frozen=True)
class ProfileOptions:
    """The host to play and its own options (``profile``, ``secret``, ``user``, ``sso``, ...).

    ``name``: ``"vm"`` (IMDS), ``"azureml"``, ``"appservice"``, ``"arc"`` or ``"cloudshell"`` (any
    case). ``secret``: the value of ``MSI_SECRET`` / ``IDENTITY_HEADER`` (default: random per
    emulator; never shown in the repr); ``user``: the signed-in user of azureml / cloudshell
    (``upn``, ``name``, ``object_id``...); ``sso`` (azureml): True (default), False or
    ``"unavailable"``; ``azureml_expires_on``: ``"int"`` (default), ``"string"`` or ``"date"``;
    ``arc_key_dir`` (arc): an absolute directory for the key files (default
    ``/var/opt/azcmagent/tokens``, the one the official clients insist on).

    Example::

        >>> ProfileOptions("AzureML", sso="off", secret="s3cr3t")
        ProfileOptions(name='azureml', user=None, sso='off', azureml_expires_on=None, arc_key_dir=None)
        >>> ProfileOptions("appservice", sso=True)
        Traceback (most recent call last):
        ValueError: sso only applies to the azureml profile
    """

    name: str = "vm"
    secret: str | None = field(default=None, repr=False)
    user: Mapping[str, Any] | None = None
    sso: bool | str | None = None
    azureml_expires_on: str | None = None
    arc_key_dir: str | Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", check_profile(self.name))
        self.settings()  # validates sso, azureml_expires_on and arc_key_dir against the profile

    def settings(self) -> dict[str, Any]:
        """The profile-specific options that were given, normalised (what the host service reads).

        Example::

            >>> ProfileOptions("azureml", sso="off").settings()
            {'sso': False}
        """
        return host_options(self.name, sso=self.sso, expires_on=self.azureml_expires_on, key_dir=self.arc_key_dir)


@dataclass(frozen=True)
class VaultOptions:
    """The emulated Key Vault: ``secrets`` (name -> value; None: the seeded ones) and its ``port``.

    Example::

        >>> VaultOptions.from_mapping({"secrets": {"api-key": "k"}}).port
        0
        >>> VaultOptions.from_mapping({"secret": {}})
        Traceback (most recent call last):
        ValueError: unknown keyvault option(s) ['secret']: use 'secrets' and 'port'
    """

    secrets: Mapping[str, str] | None = field(default=None, repr=False)
    port: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ValueError(f"keyvault port must be 0..65535, got {self.port!r}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | VaultOptions) -> VaultOptions:
        if isinstance(data, VaultOptions):
            return data
        unknown = set(data) - {"secrets", "port"}
        if unknown:
            raise ValueError(f"unknown keyvault option(s) {sorted(unknown)}: use 'secrets' and 'port'")
        return cls(secrets=data.get("secrets"), port=int(data.get("port", 0)))


@dataclass(frozen=True)
class EmulatorOptions:
    """Everything an :class:`~mi_notebook.emulator.Emulator` is built from.

    ``vm``: :meth:`~.world.VirtualMachine.build`'s keywords (``seed``, ``user_assigned``,
    ``role_assignments``, ...) or a ready :class:`~.world.VirtualMachine` (used as is, without the
    default role assignments the emulator adds for the signed-in user, the Key Vault and Azure OpenAI);
    ``endpoint``, ``profile``: :class:`EndpointOptions`, :class:`ProfileOptions`; ``arm``: the ARM side's
    :class:`~.arm.ArmOptions`, None for no ARM side; ``keyvault``: :class:`VaultOptions`, None for no
    vault; ``openai``: :class:`~.azureopenai.OpenAIOptions`, None for no Azure OpenAI; ``faults``:
    faults to queue at start (dicts, as for :meth:`~mi_notebook.emulator.Emulator.inject`);
    ``host`` / ``port``: where the token endpoint listens; ``clock``: epoch seconds for token times and
    rate windows (inject one for short-lived or expired tokens); ``admin_token``: the control plane's
    token (None: ``$MI_NOTEBOOK_EMULATOR_ADMIN_TOKEN`` if set, else a random one per emulator; never in
    the repr); ``cloud``: the cloud to play, ``"AzurePublicCloud"``, ``"AzureUSGovernmentCloud"`` or
    ``"AzureChinaCloud"`` (None: the VM's, public unless a ready VM says otherwise); ``workload``: the
    pod the ``"workload"`` profile plays (:class:`~.workload.options.WorkloadOptions`; other profiles
    take none).

    Example::

        >>> opts = EmulatorOptions(profile=ProfileOptions("cloudshell"), keyvault=None)
        >>> opts.profile.name, opts.arm.page_size, opts.host
        ('cloudshell', 3, '127.0.0.1')
        >>> EmulatorOptions(cloud="azurechinacloud").cloud
        'AzureChinaCloud'
    """

    vm: Mapping[str, Any] | VirtualMachine = field(default_factory=dict)
    endpoint: EndpointOptions = field(default_factory=EndpointOptions)
    profile: ProfileOptions = field(default_factory=ProfileOptions)
    arm: ArmOptions | None = field(default_factory=ArmOptions)
    keyvault: VaultOptions | None = field(default_factory=VaultOptions)
    openai: OpenAIOptions | None = field(default_factory=OpenAIOptions)
    faults: tuple[Mapping[str, Any], ...] = ()
    host: str = "127.0.0.1"
    port: int = 0
    clock: Callable[[], float] = time.time
    admin_token: str | None = field(default=None, repr=False)
    cloud: str | None = None
    workload: WorkloadOptions = field(default_factory=WorkloadOptions)

    def __post_init__(self) -> None:
        if self.admin_token is not None:
            check_admin_token(self.admin_token)
        if self.profile.name != "workload" and self.workload != WorkloadOptions():
            raise ValueError("workload options only apply to the workload profile")
        if self.cloud is not None:
            object.__setattr__(self, "cloud", check_cloud(self.cloud))
            said = self.vm.cloud if isinstance(self.vm, VirtualMachine) else self.vm.get("cloud")
            if said is not None and check_cloud(said) != self.cloud:
                raise ValueError(f"cloud={self.cloud!r} but the VM says {said!r}: give the cloud once")
        object.__setattr__(self, "faults", tuple(self.faults))
        for spec in self.faults:
            Fault.from_dict(spec)  # a bad fault: ValueError now, not at start
        if not isinstance(self.vm, VirtualMachine):
            VirtualMachine.from_config(self.vm)  # unknown or bad VM keys: ValueError now
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port!r}")
        if not isinstance(self.host, str) or not self.host:
            raise ValueError(f"host must be an address, got {self.host!r}")

    @classmethod
    def from_keywords(
        cls,
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
        clock: Callable[[], float] | None = None,
        faults: Iterable[Mapping[str, Any]] | None = None,
        host: str | None = None,
        port: int | None = None,
        arm: bool | Mapping[str, Any] | ArmOptions | None = None,
        vm: VirtualMachine | None = None,
        server_version: str | None = None,
        profile: str | None = None,
        secret: str | None = None,
        user: Mapping[str, Any] | None = None,
        sso: bool | str | None = None,
        azureml_expires_on: str | None = None,
        arc_key_dir: str | Path | None = None,
        keyvault: bool | Mapping[str, Any] | VaultOptions | None = None,
        openai: bool | Mapping[str, Any] | OpenAIOptions | None = None,
        admin_token: str | None = None,
        cloud: str | None = None,
        workload: Mapping[str, Any] | WorkloadOptions | None = None,
        **vm_options: Any,
    ) -> EmulatorOptions:
        """The options the flat keywords (and a config file) describe: ``Emulator(**keywords)``'s meaning.

        ``config``: a dict or a JSON/TOML file with the same names (docs/emulator.md, "Options"); an
        explicit keyword wins over it. ``arm``: True/False, or a dict of :class:`~.arm.ArmOptions`
        (which turns the ARM side on); ``keyvault``: True/False or ``{"secrets": ..., "port": ...}``;
        ``openai``: True/False or a dict of :class:`~.azureopenai.OpenAIOptions` (``deployments``...);
        ``workload``: a dict of :class:`~.workload.options.WorkloadOptions` (``profile="workload"`` only);
        any other keyword is a VM option (``name``, ``tags``, ``resource_group``, ``extra_resources``,
        ``role_assignments``...); ``vm`` passes a ready-made VM instead. ``admin_token`` is not read
        from the config file (a file is no place for it).

        Example::

            >>> opts = EmulatorOptions.from_keywords(config={"seed": 3, "throttle": False}, throttle=True,
            ...                                      profile="azureml", sso="off", arm={"page_size": 2})
            >>> opts.vm, opts.endpoint.throttle, opts.profile.settings(), opts.arm.page_size
            ({'seed': 3}, True, {'sso': False}, 2)
        """
        cfg = load_config(config) if config is not None else {}
        if "admin_token" in cfg:
            raise ValueError("admin_token does not belong in a config file: pass it as a keyword, or set "
                             "MI_NOTEBOOK_EMULATOR_ADMIN_TOKEN")
        vm_cfg: dict[str, Any] = dict(cfg.get("vm") or {})
        vm_cfg.update({k: v for k, v in cfg.items() if k not in _EMULATOR_KEYS})
        for key, value in (("seed", seed), ("system_assigned", system_assigned),
                           ("user_assigned", user_assigned), ("token_lifetime", token_lifetime)):
            if value is not None:
                vm_cfg[key] = value
        vm_cfg.update(vm_options)
        endpoint = EndpointOptions(
            throttle=bool(_first(throttle, cfg.get("throttle"), True)),
            latency=float(_first(latency, cfg.get("latency"), 0.0)),
            single_user_quirk=bool(_first(single_user_quirk, cfg.get("single_user_quirk"), False)),
            strict_metadata=bool(_first(strict_metadata, cfg.get("strict_metadata"), False)),
            server_version=_first(server_version, cfg.get("server_version")))
        chosen = ProfileOptions(
            name=str(_first(profile, cfg.get("profile"), "vm")), secret=_first(secret, cfg.get("secret")),
            user=_first(user, cfg.get("user")), sso=_first(sso, cfg.get("sso")),
            azureml_expires_on=_first(azureml_expires_on, cfg.get("azureml_expires_on")),
            arc_key_dir=_first(arc_key_dir, cfg.get("arc_key_dir")))
        return cls(
            vm=vm if vm is not None else vm_cfg, endpoint=endpoint, profile=chosen,
            arm=_arm_options(arm, cfg.get("arm")), keyvault=_vault_options(_first(keyvault, cfg.get("keyvault"))),
            openai=_openai_options(_first(openai, cfg.get("openai"))),
            faults=(*(cfg.get("faults") or []), *(faults or [])),
            host=str(_first(host, cfg.get("host"), "127.0.0.1")), port=int(_first(port, cfg.get("port"), 0)),
            clock=clock if clock is not None else time.time, admin_token=admin_token,
            cloud=_first(cloud, cfg.get("cloud")),
            workload=WorkloadOptions.from_mapping(_first(workload, cfg.get("workload"))))

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | str | Path) -> EmulatorOptions:
        """The options a config file (or dict) describes.

        Example::

            >>> EmulatorOptions.from_config({"profile": "arc", "arm": False}).profile.name
            'arc'
        """
        return cls.from_keywords(config=config)


def _first(*values: Any) -> Any:
    """The first value that is not None (None when all are)."""
    return next((v for v in values if v is not None), None)


def _arm_options(arm: bool | Mapping[str, Any] | ArmOptions | None, configured: Any) -> ArmOptions | None:
    """The ARM side: a keyword's options (or on/off) win over the config file's ``"arm"``."""
    if isinstance(arm, (Mapping, ArmOptions)):
        return ArmOptions.from_mapping(arm)
    enabled = arm if arm is not None else (configured if isinstance(configured, bool) else True)
    if not enabled:
        return None
    return ArmOptions.from_mapping(configured if isinstance(configured, Mapping) else None)


def _vault_options(keyvault: bool | Mapping[str, Any] | VaultOptions | None) -> VaultOptions | None:
    if isinstance(keyvault, (Mapping, VaultOptions)):
        return VaultOptions.from_mapping(keyvault)
    return VaultOptions() if keyvault is None or keyvault else None


def _openai_options(openai: bool | Mapping[str, Any] | OpenAIOptions | None) -> OpenAIOptions | None:
    if isinstance(openai, (Mapping, OpenAIOptions)):
        return OpenAIOptions.from_mapping(openai)
    return OpenAIOptions() if openai is None or openai else None
