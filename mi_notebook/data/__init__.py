"""Your data with your identity: ``abfs://`` options for pandas and Dask (:mod:`.abfs`), and the
access-token struct ``pyodbc`` needs for Azure SQL (:mod:`.sql`).

Blob Storage and Key Vault need no other helper here: their official SDK clients (``BlobServiceClient``,
``SecretClient``) take ``mi.credential()`` as their credential and handle the services' protocols
(challenge authentication, retries, paging) themselves; notebook 9 uses both. adlfs (``abfs://``) needs
an *async* credential and, off Azure, the emulator's host and certificate authority: :func:`abfs_options`.

Example::

    >>> from mi_notebook.data import sql_token_struct
    >>> len(sql_token_struct("abc"))
    10
"""

from __future__ import annotations

from .abfs import abfs_options, trust_ca
from .sql import SQL_COPT_SS_ACCESS_TOKEN, SQL_RESOURCE, sql_token_struct

__all__ = ["SQL_COPT_SS_ACCESS_TOKEN", "SQL_RESOURCE", "abfs_options", "sql_token_struct", "trust_ca"]
