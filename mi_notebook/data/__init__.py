"""Your data with your identity: the data-plane helpers (``abfs://`` options, Azure SQL's token struct).

Example::

    >>> from mi_notebook.data import sql_token_struct
    >>> len(sql_token_struct("abc"))
    10
"""

from __future__ import annotations

from .abfs import abfs_options, trust_ca
from .sql import SQL_COPT_SS_ACCESS_TOKEN, SQL_RESOURCE, sql_token_struct

__all__ = ["SQL_COPT_SS_ACCESS_TOKEN", "SQL_RESOURCE", "abfs_options", "sql_token_struct", "trust_ca"]
