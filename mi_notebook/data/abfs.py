"""``abfs://`` paths with a managed identity: the ``storage_options`` pandas and Dask hand to adlfs.

``pd.read_csv("abfs://<container>/<path>.csv", storage_options=...)`` goes through fsspec's adlfs
(``AzureBlobFileSystem``), which calls Blob Storage with azure-storage-blob's *async* client. So the
credential must be an async one (azure-core's ``AsyncTokenCredential``): ``mi.credential()`` is the
sync one, and adlfs would fail with ``object AccessToken can't be used in 'await' expression``
(adlfs#312). :func:`abfs_options` builds the dict: the account, the async credential, and, for an
account that is not ``https://<account>.blob.core.windows.net`` (another cloud, or Azurite on
loopback), ``account_host``, from which adlfs builds ``https://{account_host}``.

adlfs cannot hand its HTTP client a certificate authority (it forwards no ``connection_verify``):
aiohttp trusts what OpenSSL's default paths hold, which ``SSL_CERT_FILE`` overrides, and reads them
once, when ``aiohttp`` is imported. ``REQUESTS_CA_BUNDLE`` is not read. :func:`trust_ca` is for an
emulator's own authority (Azurite's, on loopback); on Azure nothing is needed.

Example::

    >>> options = abfs_options("mydatalake")   # pd.read_csv("abfs://sales/q1.csv", storage_options=options)
    >>> sorted(options), type(options["credential"]).__name__
    (['account_name', 'credential'], 'AsyncManagedIdentityTokenCredential')
    >>> abfs_options("devstoreaccount1", account_url="https://127.0.0.1:10000/devstoreaccount1")["account_host"]
    '127.0.0.1:10000/devstoreaccount1'
"""

from __future__ import annotations

import atexit
import hashlib
import inspect
import os
import re
import shutil
import ssl
import sys
import tempfile
from typing import Any
from urllib.parse import urlsplit

__all__ = ["abfs_options", "trust_ca"]

#: Storage account names: 3 to 24 lowercase letters and digits (Azure's naming rules)
_ACCOUNT_NAME = re.compile(r"[a-z0-9]{3,24}")
_trusted: dict[str, str] = {}  # CA file's digest -> the bundle made for it in this process


def abfs_options(account_name: str, *, credential: Any = None, account_url: str | None = None,
                 ca_bundle: str | None = None) -> dict[str, Any]:
    """``storage_options`` for ``abfs://`` paths (pandas, Dask, fsspec) read with a managed identity.

    ``credential``: an async credential (default ``mi_notebook.aio.credential()``, this machine's
    identity; it travels to Dask workers, each of which asks its own machine). ``account_url``: only
    when the account is not ``https://<account_name>.blob.core.windows.net``, e.g. another cloud's
    ``https://<account>.blob.core.usgovcloudapi.net`` or Azurite's path-style
    ``https://127.0.0.1:<port>/devstoreaccount1``. ``ca_bundle``: a certificate authority to trust for
    that account (an emulator's, see :func:`trust_ca`). Bad input -> ``ValueError`` or ``TypeError``
    (a sync credential) before any request.

    Example::

        >>> import mi_notebook as mi
        >>> abfs_options("mydatalake", credential=mi.aio.credential("client_id=4b3a2f61-9c2e-4d5b-8f0a-1e2d3c4b5a69"))[
        ...     "credential"].identity.kind
        'user'
        >>> abfs_options("My_Lake")
        Traceback (most recent call last):
        ValueError: a storage account name is 3 to 24 lowercase letters and digits; got 'My_Lake'
        >>> abfs_options("mydatalake", credential=mi.credential())
        Traceback (most recent call last):
        TypeError: adlfs needs an async credential (azure-core's AsyncTokenCredential), and ManagedIdentityTokenCredential is a sync one: pass mi_notebook.aio.credential() instead of mi.credential()
    """
    if not isinstance(account_name, str) or not _ACCOUNT_NAME.fullmatch(account_name):
        raise ValueError(f"a storage account name is 3 to 24 lowercase letters and digits; got {account_name!r}")
    if credential is None:
        from ..aio import credential as async_credential

        credential = async_credential()
    elif not inspect.iscoroutinefunction(getattr(credential, "get_token", None)):
        kind = type(credential).__name__
        raise TypeError(f"adlfs needs an async credential (azure-core's AsyncTokenCredential), and {kind} is "
                        "a sync one: pass mi_notebook.aio.credential() instead of mi.credential()")
    options: dict[str, Any] = {"account_name": account_name, "credential": credential}
    if account_url is not None:
        host = _account_host(account_name, account_url)
        if host != f"{account_name}.blob.core.windows.net":
            options["account_host"] = host
    if ca_bundle is not None:
        trust_ca(ca_bundle)
    return options


def _account_host(account_name: str, account_url: str) -> str:
    url = urlsplit(account_url.strip())
    if url.scheme != "https" or not url.hostname:
        raise ValueError(f"account_url must be an https URL (adlfs always speaks https, and a token is only sent "
                         f"over https); got {account_url!r}")
    if url.query or url.fragment:
        raise ValueError(f"account_url is the account's address only, without a query (a SAS) or fragment; "
                         f"got {account_url!r}")
    path = url.path.strip("/")
    if path and path != account_name:  # path-style (Azurite, an IP address): the path is the account
        raise ValueError(f"account_url {account_url!r} names the account {path!r}, not {account_name!r}")
    return url.netloc + (f"/{path}" if path else "")


def trust_ca(ca_bundle: str) -> str:
    """Make adlfs' aiohttp client (in this process and in the processes it starts) trust ``ca_bundle`` too.

    Writes this machine's default trusted authorities plus ``ca_bundle`` to a private file and points
    ``SSL_CERT_FILE`` at it (the one setting aiohttp honours; ``REQUESTS_CA_BUNDLE`` is not), so Dask
    workers started afterwards trust it as well. aiohttp reads that trust once, when it is imported; if
    it already was (azure-storage-blob imports it), the authority is also added to the default context
    aiohttp built then (``RuntimeError`` if a future aiohttp has none: call this first, or restart the
    kernel). Returns the file's path; calling again with the same authority changes nothing.

    Example::

        >>> trust_ca("/nonexistent/ca.pem")
        Traceback (most recent call last):
        ValueError: no certificate authority at '/nonexistent/ca.pem'
    """
    try:
        with open(ca_bundle, "rb") as fh:
            ca = fh.read()
    except OSError:
        raise ValueError(f"no certificate authority at {ca_bundle!r}") from None
    if b"-----BEGIN CERTIFICATE-----" not in ca:
        raise ValueError(f"{ca_bundle!r} holds no PEM certificate")
    digest = hashlib.sha256(ca).hexdigest()
    bundle = _trusted.get(digest)
    if bundle is None:
        bundle = _trusted[digest] = _write_bundle(ca)
    connector = sys.modules.get("aiohttp.connector")
    if connector is not None and os.environ.get("SSL_CERT_FILE") != bundle:
        # aiohttp built its default context at import (azure-storage-blob imports it, even the sync client),
        # before this trust existed: add the authority to that context, the one adlfs' requests use
        context = getattr(connector, "_SSL_CONTEXT_VERIFIED", None)
        if not isinstance(context, ssl.SSLContext):
            raise RuntimeError(
                "aiohttp was imported before the certificate authority was trusted, and it reads its trust store "
                "once, when imported: call mi_notebook.data.trust_ca() (or abfs_options(..., ca_bundle=...)) "
                "before anything imports aiohttp (adlfs, an Azure Storage SDK client), e.g. after restarting the kernel")
        context.load_verify_locations(cafile=ca_bundle)
    os.environ["SSL_CERT_FILE"] = bundle
    return bundle


def _write_bundle(ca: bytes) -> str:
    defaults = ssl.get_default_verify_paths()
    current = os.environ.get("SSL_CERT_FILE") or defaults.cafile or defaults.openssl_cafile
    trusted = b""
    if current and os.path.isfile(current):
        with open(current, "rb") as fh:
            trusted = fh.read()
    directory = tempfile.mkdtemp(prefix="mi-notebook-trust-")  # 0700: nobody else can swap what we trust
    atexit.register(shutil.rmtree, directory, True)
    path = os.path.join(directory, "ca-bundle.pem")
    with open(path, "wb") as fh:
        fh.write(trusted.rstrip(b"\n") + b"\n" + ca)
    return path
