"""Host profiles: which kind of Azure host the emulator plays, and the options each one takes.

``"vm"`` (the default) is IMDS as on an Azure VM: it sets no environment variable (clients reach the
emulator through ``AZURE_POD_IDENTITY_AUTHORITY_HOST`` or ``MI_NOTEBOOK_IMDS_URL``). The others are
served by a :class:`~mi_notebook.emulator.hosts.base.HostService` and tell clients where they are
through the environment variables the real host sets:

======================  ===========================================================================
profile                 variables (example values)
======================  ===========================================================================
``azureml``             ``MSI_ENDPOINT=http://127.0.0.1:PORT/MSI/auth``, ``MSI_SECRET``, ``DEFAULT_IDENTITY_CLIENT_ID``
``appservice``          ``IDENTITY_ENDPOINT=http://127.0.0.1:PORT/msi/token``, ``IDENTITY_HEADER``
``arc``                 ``IDENTITY_ENDPOINT=http://127.0.0.1:PORT/metadata/identity/oauth2/token``, ``IMDS_ENDPOINT``
``cloudshell``          ``MSI_ENDPOINT=http://127.0.0.1:PORT/oauth2/token``, ``AZUREPS_HOST_ENVIRONMENT``
``workload``            ``AZURE_CLIENT_ID``, ``AZURE_TENANT_ID``, ``AZURE_FEDERATED_TOKEN_FILE``, ``AZURE_AUTHORITY_HOST``
======================  ===========================================================================

``"workload"`` (an AKS pod with workload identity) is no managed-identity host: its token endpoint is
Entra ID's own, served over HTTPS by :mod:`mi_notebook.emulator.workload`, not a :class:`HostService`.

Example::

    >>> host_options("azureml", sso="off", expires_on="string")
    {'sso': False, 'expires_on': 'string'}
    >>> host_options("vm", sso=True)
    Traceback (most recent call last):
    ValueError: sso only applies to the azureml profile
    >>> service_class("arc").__name__
    'ArcService'
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import HostService

__all__ = ["PROFILES", "USER_TOKEN_PROFILES", "check_profile", "host_options", "service_class"]

PROFILES = ("vm", "azureml", "appservice", "arc", "cloudshell", "workload")
USER_TOKEN_PROFILES = ("azureml", "cloudshell")  # hosts that hand out the signed-in user's tokens
EXPIRES_ON_FORMATS = ("int", "string", "date")  # azureml's expires_on: 1700000000, "1700000000", "11/14/2023 ..."
# imported when used, so that the command line's --help stays instant
_SERVICES = {"azureml": ("azureml", "AzureMlService"), "appservice": ("appservice", "AppServiceService"),
             "arc": ("arc", "ArcService"), "cloudshell": ("cloudshell", "CloudShellService")}
_SSO = {True: True, False: False, "on": True, "off": False, "true": True, "false": False,
        "unavailable": "unavailable"}


def check_profile(profile: str) -> str:
    """``profile`` lower-cased, or ``ValueError`` naming the known ones.

    Example::

        >>> check_profile(" AzureML ")
        'azureml'
        >>> check_profile("aks")
        Traceback (most recent call last):
        ValueError: unknown profile 'aks'; choose one of vm, azureml, appservice, arc, cloudshell, workload
    """
    name = str(profile).strip().lower()
    if name not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    return name


def service_class(profile: str) -> type[HostService] | None:
    """The host service serving ``profile`` (None for ``"vm"``, which is :class:`ImdsService`, and for
    ``"workload"``, which is Entra ID's endpoint: :class:`~mi_notebook.emulator.workload.WorkloadPod`).

    Example::

        >>> service_class("vm") is None, service_class("workload") is None, service_class("cloudshell").profile
        (True, True, 'cloudshell')
    """
    where = _SERVICES.get(check_profile(profile))
    if where is None:
        return None
    module = importlib.import_module(f"{__package__}.{where[0]}")
    cls: type[HostService] = getattr(module, where[1])
    return cls


def host_options(profile: str, *, sso: bool | str | None = None, expires_on: str | None = None,
                 key_dir: str | Path | None = None) -> dict[str, Any]:
    """Validate the profile-specific options; returns those that were given, normalised.

    ``sso`` (azureml): True / "on" (default), False / "off", "unavailable"; ``expires_on`` (azureml):
    "int" (default), "string", "date"; ``key_dir`` (arc): an absolute directory for the key files.

    Example::

        >>> host_options("azureml", sso="unavailable"), host_options("arc", key_dir="/srv/arc-keys")
        ({'sso': 'unavailable'}, {'key_dir': '/srv/arc-keys'})
        >>> host_options("arc", key_dir="keys")
        Traceback (most recent call last):
        ValueError: the Arc key directory must be an absolute path without '=', got 'keys'
    """
    profile = check_profile(profile)
    out: dict[str, Any] = {}
    if sso is not None:
        if profile != "azureml":
            raise ValueError("sso only applies to the azureml profile")
        key = sso.strip().lower() if isinstance(sso, str) else sso
        if key not in _SSO:
            raise ValueError(f"sso must be on, off or unavailable, got {sso!r}")
        out["sso"] = _SSO[key]
    if expires_on is not None:
        if profile != "azureml":
            raise ValueError("expires_on only applies to the azureml profile")
        if expires_on not in EXPIRES_ON_FORMATS:
            raise ValueError(f"expires_on must be one of {', '.join(EXPIRES_ON_FORMATS)}, got {expires_on!r}")
        out["expires_on"] = expires_on
    if key_dir is not None:
        if profile != "arc":
            raise ValueError("key_dir only applies to the arc profile")
        path = Path(key_dir)
        if not path.is_absolute() or "=" in str(path):
            raise ValueError(f"the Arc key directory must be an absolute path without '=', got {str(key_dir)!r}")
        out["key_dir"] = str(path)
    return out
