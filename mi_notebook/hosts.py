"""The package's vocabulary for where tokens come from: hosts, their labels, how a connection was chosen.

* **host**: which kind of managed-identity endpoint (and protocol) issues tokens: :data:`HOSTS`.
  ``"vm"`` is an Azure VM's IMDS. The same word everywhere: ``Detection.host``, ``Connection.host``,
  a source's ``host``, ``AccessToken.host``.
* **emulated**: the embedded emulator issued the token (``AccessToken.emulated``, from the answer's
  ``X-Mi-Notebook-Emulator`` header) or serves the connection (``Connection.emulated``). An emulated
  token keeps the host whose protocol it came through: "issued by the emulator playing Azure ML compute".
* **chosen**: how ``mi.connect()`` picked a connection (:data:`CHOICES`).

Example::

    >>> HOST_LABELS["vm"], host_label("azureml", emulated=True)
    ('Azure VM (IMDS)', 'the mi-notebook emulator (not Azure) playing Azure ML compute')
    >>> legacy_source("vm", emulated=False), legacy_source("azureml", emulated=True)
    ('imds', 'emulator')
"""

from __future__ import annotations

from typing import Literal

__all__ = ["CHOICES", "HOSTS", "HOST_LABELS", "Chosen", "Host", "host_label", "legacy_source"]

Host = Literal["vm", "azureml", "appservice", "arc", "cloudshell", "servicefabric", "workload"]
#: every kind of managed-identity endpoint, and how each is named to people
HOST_LABELS: dict[str, str] = {
    "vm": "Azure VM (IMDS)",
    "azureml": "Azure ML compute",
    "appservice": "App Service",
    "arc": "Azure Arc",
    "cloudshell": "Azure Cloud Shell",
    "servicefabric": "Service Fabric",
    "workload": "AKS workload identity",
}
HOSTS: tuple[str, ...] = tuple(HOST_LABELS)

Chosen = Literal["given", "requested", "detected", "probed", "emulator"]
#: how a connection was chosen: a URL given (``connect(url)``, ``MI_NOTEBOOK_IMDS_URL``); a host or
#: mode requested (``connect(host=...)``, ``mode="imds"``); the host's variables detected; IMDS
#: probed (or the machine known to be an Azure VM); the embedded emulator started
CHOICES: tuple[str, ...] = ("given", "requested", "detected", "probed", "emulator")


def host_label(host: str, *, emulated: bool = False) -> str:
    """How ``host`` is named to people; an emulated one says it is the emulator first.

    Example::

        >>> host_label("arc")
        'Azure Arc'
    """
    label = HOST_LABELS.get(host, host)
    return f"the mi-notebook emulator (not Azure) playing {label}" if emulated else label


def legacy_source(host: str, *, emulated: bool) -> str:
    """The word the previous release used for who issued a token (``AccessToken.source``, deprecated):
    ``"emulator"`` for the emulator, ``"imds"`` for a VM's IMDS, else the host.

    Example::

        >>> legacy_source("appservice", emulated=False)
        'appservice'
    """
    if emulated:
        return "emulator"
    return "imds" if host == "vm" else host
