"""Which managed-identity host is this process on? Decided from the environment, without the network.

:func:`detect` follows azure-identity 1.27's order (``ManagedIdentityCredential``), with MSAL 1.39's
Arc check by the ``himds`` binary added at Arc's place:

====  ===================  ===================================================================
 #    host                 when
====  ===================  ===================================================================
 1    ``servicefabric``    IDENTITY_ENDPOINT + IDENTITY_HEADER + IDENTITY_SERVER_THUMBPRINT
 2    ``appservice``       IDENTITY_ENDPOINT + IDENTITY_HEADER (no thumbprint)
 3    ``arc``              IDENTITY_ENDPOINT + IMDS_ENDPOINT, or the himds binary exists
 4    ``azureml``          MSI_ENDPOINT + MSI_SECRET
 5    ``cloudshell``       MSI_ENDPOINT without MSI_SECRET
 6    ``workload``         AZURE_AUTHORITY_HOST + AZURE_TENANT_ID + AZURE_FEDERATED_TOKEN_FILE
                           (AKS workload identity: azure-identity's own list; AZURE_CLIENT_ID
                           names the identity; tokens come from Entra ID at the authority)
 7    ``vm``               none of the above: the VM's IMDS (AZURE_POD_IDENTITY_AUTHORITY_HOST
                           overrides its base URL)
====  ===================  ===================================================================

A variable counts when it is set and not empty (azure-identity's test). Whether the machine **is an
Azure VM** comes from the DMI chassis asset tag ``7783-7084-3265-9085-8269-3286-77``
(``<sysfs_root>/chassis_asset_tag``; ``sys_vendor``/``product_name`` alone also match a plain
Hyper-V guest). :func:`default_azure_credential_chain` says what ``DefaultAzureCredential`` would
try in this process, for ``mi-notebook doctor``.

Example::

    >>> d = detect({"MSI_ENDPOINT": "http://127.0.0.1:46808/MSI/auth", "MSI_SECRET": "s3cr3t"},
    ...            sysfs_root="/nonexistent", himds_path="/nonexistent")
    >>> d.host, d.is_azure_host, "s3cr3t" in repr(d) + d.reason
    ('azureml', True, False)
    >>> d.reason
    'Azure ML compute: MSI_ENDPOINT=http://127.0.0.1:46808/MSI/auth and MSI_SECRET (value hidden) are set.'
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from .hosts import HOST_LABELS
from .secret import Secret

if TYPE_CHECKING:  # pragma: no cover
    from .sources import Source

__all__ = ["AZURE_ASSET_TAG", "HOST_RULES", "ChainEntry", "CredentialChain", "Detection", "HostRule",
           "default_azure_credential_chain", "detect"]

AZURE_ASSET_TAG = "7783-7084-3265-9085-8269-3286-77"
IMDS_URL = "http://169.254.169.254"
HIMDS_PATH = "/opt/azcmagent/bin/himds"
SECRET_VARIABLES = frozenset({"IDENTITY_HEADER", "MSI_SECRET", "AZURE_CLIENT_SECRET", "AZURE_PASSWORD"})
SEEN_VARIABLES = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT",
                  "MSI_ENDPOINT", "MSI_SECRET", "DEFAULT_IDENTITY_CLIENT_ID", "AZURE_AUTHORITY_HOST",
                  "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_ID",
                  "AZURE_POD_IDENTITY_AUTHORITY_HOST")


@dataclass(frozen=True)
class HostRule:
    """One row of the order: ``needs`` set, ``absent`` unset (Arc also matches on the himds binary).

    Example::

        >>> HOST_RULES[1].host, HOST_RULES[1].needs, HOST_RULES[1].absent
        ('appservice', ('IDENTITY_ENDPOINT', 'IDENTITY_HEADER'), ('IDENTITY_SERVER_THUMBPRINT',))
    """

    host: str
    label: str
    needs: tuple[str, ...]
    absent: tuple[str, ...] = ()

    def matches(self, env: Mapping[str, str], himds: bool = False) -> bool:
        """Whether this row applies to ``env`` (``himds``: the Arc agent's binary was found)."""
        by_env = all(env.get(v) for v in self.needs) and not any(env.get(v) for v in self.absent)
        return by_env or (self.host == "arc" and himds)

    def requirement(self) -> str:
        """What this host needs, in words."""
        text = " + ".join(self.needs) + "".join(f" without {v}" for v in self.absent)
        return text + (" (or the himds binary)" if self.host == "arc" else "")


HOST_RULES: tuple[HostRule, ...] = (
    HostRule("servicefabric", HOST_LABELS["servicefabric"],
             ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT")),
    HostRule("appservice", HOST_LABELS["appservice"] + " (or Functions, Container Apps)",
             ("IDENTITY_ENDPOINT", "IDENTITY_HEADER"), ("IDENTITY_SERVER_THUMBPRINT",)),
    HostRule("arc", HOST_LABELS["arc"], ("IDENTITY_ENDPOINT", "IMDS_ENDPOINT")),
    HostRule("azureml", HOST_LABELS["azureml"], ("MSI_ENDPOINT", "MSI_SECRET")),
    HostRule("cloudshell", HOST_LABELS["cloudshell"], ("MSI_ENDPOINT",), ("MSI_SECRET",)),
    HostRule("workload", HOST_LABELS["workload"],
             ("AZURE_AUTHORITY_HOST", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE")),
    HostRule("vm", HOST_LABELS["vm"], ()),
)
_RULE = {rule.host: rule for rule in HOST_RULES}


def _pick(env: Mapping[str, str], himds: bool, *, azure_identity: bool = False, workload: bool = True) -> str | None:
    """The first matching host. ``azure_identity=True``: 1.27's own choice (no himds; IDENTITY_ENDPOINT
    without IDENTITY_HEADER or IMDS_ENDPOINT ends the search with nothing). ``workload=False``: skip
    workload identity (``ManagedIdentityCredential`` does when DefaultAzureCredential excludes it)."""
    for rule in HOST_RULES:
        if rule.host == "workload" and not workload:
            continue
        if rule.matches(env, himds and not azure_identity):
            return rule.host
        if azure_identity and rule.host == "arc" and env.get("IDENTITY_ENDPOINT"):
            return None
    return "vm"  # pragma: no cover - the vm row always matches


def _shown(name: str, value: str) -> str:
    if not value:
        return "(empty)"
    if name in SECRET_VARIABLES:
        return "(value hidden)"
    return value if len(value) <= 100 else value[:97] + "..."


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read(256).strip()
    except OSError:
        return None


def _dmi(sysfs_root: str) -> tuple[bool, str]:
    """(is an Azure VM, the sentence saying why) from the DMI chassis asset tag."""
    tag = _read(os.path.join(sysfs_root, "chassis_asset_tag"))
    if tag == AZURE_ASSET_TAG:
        return True, f"the DMI chassis asset tag is Azure's ({AZURE_ASSET_TAG})"
    if tag is None:
        return False, f"no DMI chassis asset tag could be read under {sysfs_root}"
    vendor, product = (_read(os.path.join(sysfs_root, n)) for n in ("sys_vendor", "product_name"))
    if (vendor, product) == ("Microsoft Corporation", "Virtual Machine"):
        return False, ("the DMI says Hyper-V (Microsoft Corporation, Virtual Machine) but the chassis asset tag is "
                       f"{tag[:40]!r}, not Azure's: a Hyper-V guest, not an Azure VM")
    return False, f"the DMI chassis asset tag is {tag[:40]!r}, not Azure's"


@dataclass(frozen=True)
class Detection:
    """What :func:`detect` found. ``host`` won for ``reason``; ``variables`` are the host variables
    seen (secret values hidden); ``others`` what each other host would need; ``notes`` anything
    surprising (where azure-identity would decide differently, empty variables...).

    It keeps only the variables the sources read (``SEEN_VARIABLES``), their secrets as
    :class:`~mi_notebook.secret.Secret`: no dump (``dataclasses.asdict``, ``vars``, ``copy.deepcopy``,
    ``pickle``) shows a secret or any other variable. A pickled detection arrives without its secrets:
    its :meth:`build_source` then raises a ``HostConfigurationError`` (call :func:`detect` there).

    Example::

        >>> d = detect({}, sysfs_root="/nonexistent", himds_path="/nonexistent")
        >>> d.host, d.endpoint, d.is_azure_host, d.others["cloudshell"]
        ('vm', 'http://169.254.169.254', False, 'needs MSI_ENDPOINT without MSI_SECRET (missing: MSI_ENDPOINT)')
    """

    host: str
    label: str
    reason: str
    endpoint: str | None
    variables: Mapping[str, str]
    others: Mapping[str, str]
    is_azure_vm: bool
    vm_evidence: str
    himds_found: bool
    notes: tuple[str, ...] = ()
    azure_identity_host: str | None = None
    _environ: Mapping[str, str | Secret] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_azure_host(self) -> bool:
        """A host's variables are set (or the Arc agent is installed), or the DMI says Azure VM."""
        return self.host != "vm" or self.is_azure_vm

    def build_source(self, **options: Any) -> Source:
        """The winning host's source (``options``: ``retry``, ``clock``, ``timeout``, ``transport``,
        Arc's ``key_dir``, workload identity's ``verify``); for ``"vm"`` IMDS's at :attr:`endpoint`.
        Service Fabric's source is built (it names the host) but its ``request_token`` raises.

        Example::

            >>> detect({"IDENTITY_ENDPOINT": "http://localhost:4141/msi/token", "IDENTITY_HEADER": "h"},
            ...        sysfs_root="/nonexistent", himds_path="/nonexistent").build_source().host
            'appservice'
        """
        from .sources import source_class

        if self.host != "arc":
            options.pop("key_dir", None)  # only Arc reads key files
        if self.host != "workload":
            options.pop("verify", None)  # only workload identity speaks HTTPS to Entra ID
        cls: Any = source_class(self.host)  # each class its own constructor
        # the sources' secret_from takes a Secret as it takes a string
        environ = cast("Mapping[str, str]", self._environ)
        if self.host == "vm":
            source: Source = cls(self.endpoint or IMDS_URL, **options)
        elif self.host == "arc" and not _RULE["arc"].matches(environ):
            source = cls(**options)  # found by the himds binary: the agent's default endpoint
        else:
            source = cls.from_environment(environ, **options)
        return source


def detect(environ: Mapping[str, str] | None = None, *, sysfs_root: str = "/sys/class/dmi/id",
           himds_path: str = HIMDS_PATH) -> Detection:
    """Decide the host from ``environ`` (default ``os.environ``), the DMI under ``sysfs_root`` and the Arc
    agent's binary at ``himds_path``. Reads files; sends nothing.

    Example::

        >>> detect({"IDENTITY_ENDPOINT": "http://localhost:40342/metadata/identity/oauth2/token",
        ...         "IMDS_ENDPOINT": "http://localhost:40342"}, sysfs_root="/x", himds_path="/x").reason
        'Azure Arc: IDENTITY_ENDPOINT=http://localhost:40342/metadata/identity/oauth2/token and IMDS_ENDPOINT=http://localhost:40342 are set, IDENTITY_HEADER is not.'
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    himds = os.path.isfile(himds_path)
    host = _pick(env, himds) or "vm"
    ours_ai = _pick(env, False, azure_identity=True)
    rule = _RULE[host]
    is_vm, vm_evidence = _dmi(sysfs_root)
    variables = {name: _shown(name, env[name]) for name in SEEN_VARIABLES if name in env}
    endpoint = _endpoint(host, env, rule, himds)
    reason = _reason(host, rule, env, variables, himds_path, endpoint, vm_evidence, is_vm=is_vm)
    others: dict[str, str] = {}
    for other in HOST_RULES:
        if other.host == host:
            continue
        if other.host == "vm":
            others["vm"] = "is what remains when no host's variables are set"
        elif other.matches(env, himds):
            others[other.host] = f"would match too ({other.requirement()}), but {rule.label} comes first"
        else:
            missing = ", ".join(v for v in other.needs if not env.get(v))
            blocking = ", ".join(v for v in other.absent if env.get(v))
            why = f"missing: {missing}" if missing else f"but {blocking} is set" if blocking else "no himds binary"
            others[other.host] = f"needs {other.requirement()} ({why})"
    notes = [f"{name} is set but empty: it counts as unset." for name in SEEN_VARIABLES if name in env and not env[name]]
    if ours_ai is None:
        notes.append("IDENTITY_ENDPOINT is set without IDENTITY_HEADER or IMDS_ENDPOINT: azure-identity 1.27 finds no "
                     "managed identity here at all; mi-notebook goes on down the list as MSAL does.")
    elif ours_ai != host:
        notes.append(f"azure-identity 1.27 does not look for the himds binary: it would use {_RULE[ours_ai].label} here.")
    if host != "workload" and _RULE["workload"].matches(env):
        notes.append(f"AKS workload identity's variables are set too: DefaultAzureCredential tries "
                     f"WorkloadIdentityCredential before any managed identity, so it would not use {rule.label} here.")
    if host == "vm" and not is_vm:
        notes.append(f"This does not look like an Azure VM ({vm_evidence}): IMDS will most likely not answer; "
                     "use mi.connect(mode='emulator') to try things out.")
    return Detection(host, rule.label, reason, endpoint, variables, others, is_vm, vm_evidence, himds, tuple(notes),
                     ours_ai, _kept(env))


def _kept(env: Mapping[str, str]) -> dict[str, str | Secret]:
    """The variables a source may read, secrets wrapped: all a :class:`Detection` keeps of ``env``."""
    return {name: Secret(env[name]) if name in SECRET_VARIABLES and isinstance(env[name], str) and env[name]
            else env[name] for name in SEEN_VARIABLES if name in env}


def _endpoint(host: str, env: Mapping[str, str], rule: HostRule, himds: bool) -> str | None:
    if host == "vm":
        return (env.get("AZURE_POD_IDENTITY_AUTHORITY_HOST") or IMDS_URL).strip().rstrip("/")
    if host == "arc" and not rule.matches(env):
        from .sources.arc import DEFAULT_ENDPOINT

        return DEFAULT_ENDPOINT
    if host == "workload":
        return _workload_endpoint(env)
    return env.get(rule.needs[0])


def _workload_endpoint(env: Mapping[str, str]) -> str | None:
    """Entra ID's token URL the pod's variables name (``None`` when they do not make one)."""
    authority = env.get("AZURE_AUTHORITY_HOST", "").strip().rstrip("/")
    if authority and "://" not in authority:
        authority = "https://" + authority
    tenant = env.get("AZURE_TENANT_ID", "").strip()
    return f"{authority}/{tenant}/oauth2/v2.0/token" if authority and tenant else None


def _reason(host: str, rule: HostRule, env: Mapping[str, str], shown: Mapping[str, str], himds_path: str,
            endpoint: str | None, vm_evidence: str, *, is_vm: bool = True) -> str:
    def said(name: str) -> str:
        return f"{name} (value hidden)" if name in SECRET_VARIABLES else f"{name}={shown[name]}"

    if host == "vm":
        base = (f"IMDS at {endpoint} (from AZURE_POD_IDENTITY_AUTHORITY_HOST)" if env.get("AZURE_POD_IDENTITY_AUTHORITY_HOST")
                else f"IMDS at {endpoint}")
        partial = [v for rule in HOST_RULES for v in rule.needs if env.get(v)]
        seen = (f"no host's variables are complete (set: {', '.join(dict.fromkeys(partial))})" if partial
                else "no host's variables are set (IDENTITY_ENDPOINT, MSI_ENDPOINT, ...)")
        if not is_vm:  # not "Azure VM:": the DMI says otherwise, IMDS is only what is left
            return f"No managed-identity host found: {seen}, so the token would come from {base}; {vm_evidence}."
        return f"Azure VM: {seen}, so the token comes from {base}; {vm_evidence}."
    if host == "arc" and not rule.matches(env):
        return (f"Azure Arc: the agent's himds binary is at {himds_path} (IDENTITY_ENDPOINT and IMDS_ENDPOINT are not "
                f"both set), so the agent's default endpoint {endpoint} is used, as MSAL does.")
    names = [said(v) for v in rule.needs]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    unset = {"appservice": "IDENTITY_SERVER_THUMBPRINT", "arc": "IDENTITY_HEADER", "cloudshell": "MSI_SECRET"}.get(host)
    tail = f", {unset} is not" if unset else ""
    extra = {"cloudshell": "; tokens here are the signed-in user's, not a managed identity's"}.get(host, "")
    if host == "azureml" and env.get("DEFAULT_IDENTITY_CLIENT_ID"):
        extra = f"; DEFAULT_IDENTITY_CLIENT_ID={shown['DEFAULT_IDENTITY_CLIENT_ID']}"
    if host == "workload":
        extra = (f"; AZURE_CLIENT_ID={shown['AZURE_CLIENT_ID']}" if env.get("AZURE_CLIENT_ID") else
                 "; AZURE_CLIENT_ID is not set (each request must name the identity's client id)")
    verb = "is" if len(names) == 1 else "are"
    return f"{rule.label}: {listed} {verb} set{tail}{extra}."


# --- what DefaultAzureCredential would try ---------------------------------------------------------------
@dataclass(frozen=True)
class ChainEntry:
    """One credential of ``DefaultAzureCredential``'s chain: ``included`` or not, and what it would do.

    Example::

        >>> ChainEntry("AzureCliCredential", True, "the account of `az login`").line()
        '  + AzureCliCredential: the account of `az login`'
    """

    name: str
    included: bool
    detail: str

    def line(self) -> str:
        """One line for ``mi-notebook doctor``."""
        return f"  {'+' if self.included else '-'} {self.name}: {self.detail}"


@dataclass(frozen=True)
class CredentialChain:
    """``DefaultAzureCredential``'s chain in its order; ``problem`` when its constructor would raise.

    Example::

        >>> chain = default_azure_credential_chain({"AZURE_TOKEN_CREDENTIALS": "prod"}, platform="linux")
        >>> [e.name for e in chain.tried]
        ['EnvironmentCredential', 'WorkloadIdentityCredential', 'ManagedIdentityCredential']
    """

    entries: tuple[ChainEntry, ...]
    selection: str
    problem: str | None = None

    @property
    def tried(self) -> list[ChainEntry]:
        """The credentials that would be tried, in order."""
        return [entry for entry in self.entries if entry.included]

    def lines(self) -> list[str]:
        """The chain as text lines (``+`` tried, ``-`` left out)."""
        head = [f"DefaultAzureCredential (azure-identity 1.27): {self.selection}"]
        return head + ([f"  ! {self.problem}"] if self.problem else [e.line() for e in self.entries])


# (key, class name, AZURE_TOKEN_CREDENTIALS name, excluded by default), in DefaultAzureCredential's order
_CHAIN = (
    ("environment", "EnvironmentCredential", "environmentcredential", False),
    ("workload_identity", "WorkloadIdentityCredential", "workloadidentitycredential", False),
    ("managed_identity", "ManagedIdentityCredential", "managedidentitycredential", False),
    ("shared_token_cache", "SharedTokenCacheCredential", None, False),
    ("visual_studio_code", "VisualStudioCodeCredential", "visualstudiocodecredential", False),
    ("cli", "AzureCliCredential", "azureclicredential", False),
    ("powershell", "AzurePowerShellCredential", "azurepowershellcredential", False),
    ("developer_cli", "AzureDeveloperCliCredential", "azuredeveloperclicredential", False),
    ("interactive_browser", "InteractiveBrowserCredential", "interactivebrowsercredential", True),
    ("broker", "BrokerCredential", None, False),
)
_GROUPS = {"dev": {"visual_studio_code", "cli", "developer_cli", "powershell", "shared_token_cache", "broker"},
           "prod": {"environment", "workload_identity", "managed_identity"}}
_ENV_SP = (("a client secret", ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID")),
           ("a certificate", ("AZURE_CLIENT_ID", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_TENANT_ID")),
           ("a user name and password (deprecated: no MFA)", ("AZURE_CLIENT_ID", "AZURE_USERNAME", "AZURE_PASSWORD")))


def default_azure_credential_chain(environ: Mapping[str, str] | None = None, *, platform: str = sys.platform,
                                   windows_or_wsl_broker: bool = False) -> CredentialChain:
    """What ``DefaultAzureCredential()`` (azure-identity 1.27, default arguments) would try here, in order.

    Honours ``AZURE_TOKEN_CREDENTIALS`` (``dev``, ``prod`` or one credential's name; anything else makes
    the constructor raise) and ``AZURE_CLIENT_ID`` (the managed identity's and workload identity's
    client id). ``windows_or_wsl_broker``: azure-identity-broker is installed on Windows/WSL (the VS Code
    and broker credentials need it). Pure: no process is run, nothing is sent.

    Example::

        >>> chain = default_azure_credential_chain({"AZURE_TOKEN_CREDENTIALS": "dev"}, platform="linux")
        >>> [e.name for e in chain.tried][:3]
        ['SharedTokenCacheCredential', 'VisualStudioCodeCredential', 'AzureCliCredential']
        >>> default_azure_credential_chain({"AZURE_TOKEN_CREDENTIALS": "nope"}).problem[:60]
        'DefaultAzureCredential() raises ValueError: Invalid value fo'
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    choice = (env.get("AZURE_TOKEN_CREDENTIALS") or "").strip().lower()
    names = {name for _, _, name, _ in _CHAIN if name}
    if choice and choice not in _GROUPS and choice not in names:
        valid = ", ".join(["dev", "prod", *sorted(names)])
        return CredentialChain((), f"AZURE_TOKEN_CREDENTIALS={choice}", "DefaultAzureCredential() raises ValueError: "
                               f"Invalid value for AZURE_TOKEN_CREDENTIALS: {choice}. Valid values are: {valid}.")
    selection = f"AZURE_TOKEN_CREDENTIALS={choice}" if choice else "AZURE_TOKEN_CREDENTIALS not set (the full chain)"
    included = {}
    for key, _, name, default_off in _CHAIN:
        if choice in _GROUPS:
            included[key] = key in _GROUPS[choice]
        else:
            included[key] = name == choice if choice else not default_off
    why_not = f"left out by AZURE_TOKEN_CREDENTIALS={choice}" if choice else "excluded by default"
    client_id = env.get("AZURE_CLIENT_ID")
    mi_host = _pick(env, False, azure_identity=True, workload=included["workload_identity"])
    if included["managed_identity"] and mi_host == "workload" and not client_id:
        return CredentialChain((), selection, "DefaultAzureCredential() raises ValueError: ManagedIdentityCredential "
                               "selects workload identity (AZURE_AUTHORITY_HOST, AZURE_TENANT_ID and "
                               "AZURE_FEDERATED_TOKEN_FILE are set) but AZURE_CLIENT_ID is not set.")
    entries = []
    for key, cls, _, _ in _CHAIN:
        detail = (_chain_detail(key, env, client_id, mi_host, choice, platform, windows_or_wsl_broker)
                  if included[key] else why_not)
        entries.append(ChainEntry(cls, included[key], detail))
    return CredentialChain(tuple(entries), selection)


def _chain_detail(key: str, env: Mapping[str, str], client_id: str | None, mi_host: str | None, choice: str,
                  platform: str, broker: bool) -> str:
    if key == "environment":
        for what, needed in _ENV_SP:
            if all(env.get(v) is not None for v in needed):
                return f"a service principal with {what} ({', '.join(needed)} are set): used before any managed identity"
        return "unavailable: no complete service-principal configuration in AZURE_* variables"
    if key == "workload_identity":
        missing = [v for v in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE") if not env.get(v)]
        return f"unavailable (missing {', '.join(missing)})" if missing else "AKS workload identity (a federated token file)"
    if key == "managed_identity":
        return _managed_identity_detail(mi_host, client_id, probe=choice != "managedidentitycredential")
    if key == "shared_token_cache":
        supported = platform.startswith(("linux", "darwin", "win"))
        return "the MSAL cache of Microsoft developer tools (usually empty here)" if supported else "unsupported platform"
    if key in ("visual_studio_code", "broker"):
        return "the signed-in Windows/WSL account" if broker else "unavailable: needs azure-identity-broker on Windows or WSL"
    return {"cli": "the account of `az login`", "powershell": "the account of Connect-AzAccount",
            "developer_cli": "the account of `azd auth login`",
            "interactive_browser": "opens a browser to sign in (useless on a headless kernel)"}[key]


def _managed_identity_detail(host: str | None, client_id: str | None, *, probe: bool) -> str:
    if host is None:
        return "unavailable: IDENTITY_ENDPOINT without IDENTITY_HEADER or IMDS_ENDPOINT (no endpoint found)"
    who = f"client_id={client_id} (AZURE_CLIENT_ID)" if client_id else "no client id (system-assigned / the host's default)"
    text = f"{_RULE[host].label}, {who}"
    if host == "azureml" and not client_id:
        text += "; sends no clientid, so an SSO compute instance returns your own user token"
    if host == "cloudshell":
        text += "; the signed-in user's token"
    if host == "vm":
        text += ("; probes IMDS first (one attempt, 1 s connect time-out) and moves on if it does not answer" if probe
                 else "; no probe: IMDS with its full retries")
    return text
