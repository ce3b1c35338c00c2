"""The emulated Key Vault: a secrets data plane over HTTPS, with Key Vault's challenge and data-plane RBAC.

:class:`VaultService` (:mod:`.service`) is a pure dispatcher ``(HttpRequest) -> HttpResponse`` for one
seeded vault; :class:`VaultServer` (:mod:`.server`) serves it on its own loopback port for an
:class:`~mi_notebook.emulator.Emulator`, which starts it (option ``keyvault``, on by default) and
exposes ``emu.vault_url``, ``emu.vault`` and ``emu.vault_ca_bundle``.

Each request goes through, in order: the bearer token (:mod:`.auth`: a bare request gets the
401 challenge, a token for another audience ``AKV10022``); ``api-version`` (400 ``BadParameter``); the
route (404/405); data-plane RBAC (403 ``Forbidden`` / ``ForbiddenByRbac``: only roles with data actions,
such as *Key Vault Secrets User*, count; Owner or Reader on the vault do not); the secret (404
``SecretNotFound``); the answer. Served::

    GET /secrets                      list (metadata only, no values)   readMetadata/action
    GET /secrets/{name}[/{version}]   one secret, with its value        getSecret/action
    PUT /secrets/{name}               set: body {"value": ...}          setSecret/action

Example::

    >>> import requests
    >>> from mi_notebook.emulator import Emulator
    >>> with Emulator(throttle=False) as emu:
    ...     bare = requests.get(emu.vault_url + "/secrets/greeting", params={"api-version": "7.5"},
    ...                         verify=emu.vault_ca_bundle)
    ...     tok = requests.get(emu.token_url, headers={"Metadata": "true"},
    ...                        params={"api-version": "2018-02-01", "resource": "https://vault.azure.net"}
    ...                        ).json()["access_token"]
    ...     r = requests.get(emu.vault_url + "/secrets/greeting", params={"api-version": "7.5"},
    ...                      headers={"Authorization": "Bearer " + tok}, verify=emu.vault_ca_bundle)
    ...     bare.status_code, bare.headers["WWW-Authenticate"].split(",")[1], r.status_code, r.json()["value"]
    (401, ' resource="https://vault.azure.net"', 200, 'hello from the emulated Key Vault')
"""

from .auth import VAULT_AUDIENCES, VAULT_RESOURCE, VaultTokenCheck
from .server import VaultServer
from .service import API_VERSIONS, DEFAULT_SECRETS, SECRETS_USER, Secret, VaultService

__all__ = ["API_VERSIONS", "DEFAULT_SECRETS", "SECRETS_USER", "VAULT_AUDIENCES", "VAULT_RESOURCE", "Secret",
           "VaultServer", "VaultService", "VaultTokenCheck"]
