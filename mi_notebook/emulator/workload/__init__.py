"""The ``workload`` profile: a JupyterHub pod on AKS with workload identity, and the Entra ID it talks to.

The mutating webhook of azure-workload-identity gives a labelled pod four variables:
``AZURE_CLIENT_ID``, ``AZURE_TENANT_ID``, ``AZURE_FEDERATED_TOKEN_FILE`` and ``AZURE_AUTHORITY_HOST``.
The kubelet keeps a projected service-account token in the file (audience ``api://AzureADTokenExchange``,
rotated at 80% of its lifetime); the client posts it as a ``client_assertion`` to
``{authority}/{tenant}/oauth2/v2.0/token`` and Entra ID, having checked it against a federated
identity credential of the user-assigned identity and against the cluster's OIDC issuer, answers with
an access token. The parts: :mod:`.options` (:class:`WorkloadOptions`), :mod:`.cluster` (the issuer,
its key, the projected tokens), :mod:`.tokenfile` (the file and its rotation), :mod:`.federation`
(federated credentials and the matching), :mod:`.aadsts` (Entra's error bodies), :mod:`.entra` (the
HTTPS endpoints) and :mod:`.pod` (:class:`WorkloadPod`, all of it for one emulator).

Example::

    >>> import requests
    >>> from mi_notebook.emulator import Emulator
    >>> with Emulator(profile="workload", arm=False, keyvault=False) as emu:
    ...     env = emu.environment
    ...     form = {"grant_type": "client_credentials", "client_id": env["AZURE_CLIENT_ID"],
    ...             "scope": "https://management.azure.com/.default",
    ...             "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    ...             "client_assertion": open(env["AZURE_FEDERATED_TOKEN_FILE"]).read()}
    ...     r = requests.post(env["AZURE_AUTHORITY_HOST"] + env["AZURE_TENANT_ID"] + "/oauth2/v2.0/token",
    ...                       data=form, verify=emu.ca_bundle)
    ...     r.status_code, sorted(r.json()), r.headers["X-Mi-Notebook-Emulator"]
    (200, ['access_token', 'expires_in', 'ext_expires_in', 'token_type'], '1')
"""

from __future__ import annotations

from .cluster import Cluster, ServiceAccountToken
from .federation import FederatedCredential, Refusal
from .options import WorkloadOptions
from .pod import WorkloadPod

__all__ = ["Cluster", "FederatedCredential", "Refusal", "ServiceAccountToken", "WorkloadOptions", "WorkloadPod"]
