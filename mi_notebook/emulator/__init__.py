"""An embedded Azure IMDS (+ ARM) emulator: real HTTP on loopback, real RS256 tokens, documented errors.

It is an independent implementation of the protocol (it imports nothing from the rest of
mi_notebook), so a misreading in the client cannot hide behind the same misreading here. Besides an
Azure VM's IMDS (the default ``profile="vm"``) it can play the other managed-identity hosts where
notebooks run: ``"azureml"``, ``"appservice"``, ``"arc"`` and ``"cloudshell"`` (see
:mod:`~mi_notebook.emulator.hosts`), and a JupyterHub pod on AKS with workload identity,
``"workload"`` (Entra ID's token endpoint over HTTPS and a rotating token file, see
:mod:`~mi_notebook.emulator.workload`); ``emu.environment`` holds the variables such a host sets.
``cloud=`` plays Azure US Government or China instead of the public cloud (:mod:`.clouds`).
Every answer carries the header ``X-Mi-Notebook-Emulator: 1``.

The parts, by what they emulate: :mod:`.imds` (a VM's IMDS), :mod:`.hosts` (the other hosts),
:mod:`.arm` (Azure Resource Manager), :mod:`.keyvault` (a Key Vault's secrets), :mod:`.azureopenai`
(Azure OpenAI's inference data plane; no model runs), :mod:`.azurite` (Microsoft's Storage emulator,
started as a second party) and :mod:`.workload` (an AKS pod and Entra ID); what they share:
:mod:`.clouds` (each cloud's names), :mod:`.world` (the VM and
its tenant), :mod:`.keys` and :mod:`.issuer` (signing, tokens), :mod:`.faults`, :mod:`.requestlog`,
:mod:`.server` (HTTP), :mod:`.tls`, :mod:`.admin` (the control plane) and :mod:`.options` (how an
emulator is set up: :class:`EmulatorOptions`). ``mi-notebook emulator`` is :mod:`.command`.

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

from ._emulator import Emulator
from .azurite import Azurite, AzuriteUnavailable
from .faults import Fault
from .hosts import PROFILES, SignedInUser
from .options import (
    ArmOptions,
    EmulatorOptions,
    EndpointOptions,
    OpenAIOptions,
    ProfileOptions,
    VaultOptions,
    WorkloadOptions,
)
from .requestlog import RequestRecord
from .server import MARKER_HEADER
from .tenant import KnownResource, RoleAssignment
from .world import VirtualMachine, VmIdentity

__all__ = ["MARKER_HEADER", "PROFILES", "ArmOptions", "Azurite", "AzuriteUnavailable", "Emulator", "EmulatorOptions",
           "EndpointOptions", "Fault", "KnownResource", "OpenAIOptions", "ProfileOptions", "RequestRecord",
           "RoleAssignment", "SignedInUser", "VaultOptions", "VirtualMachine", "VmIdentity", "WorkloadOptions"]
