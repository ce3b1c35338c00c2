"""The doctor's section for an AKS pod with workload identity: the webhook's four variables, the token
file (readable? a service-account token? expired?) and the claims Entra ID matches against the
federated identity credential, never the token itself.

Example::

    >>> from types import SimpleNamespace
    >>> client = SimpleNamespace(authority="https://login.microsoftonline.com", tenant_id="t",
    ...                          token_file="/nonexistent/azure-identity-token", client_id=None)
    >>> lines, problems = workload_report(SimpleNamespace(client=client), now=0)
    >>> lines[:2]
    ['AZURE_CLIENT_ID: not set (each request must name the identity: --client-id)', 'AZURE_TENANT_ID=t']
    >>> [p.message for p in problems]
    ["AZURE_FEDERATED_TOKEN_FILE='/nonexistent/azure-identity-token' does not exist."]
"""

from __future__ import annotations

import time
from typing import Any

from ._identity import CliProblem

__all__ = ["workload_report"]


def workload_report(conn: Any, *, now: float | None = None) -> tuple[list[str], list[CliProblem]]:
    """``(lines, problems)`` for ``conn`` (a connection whose source is workload identity's): the four
    variables as the source read them, then :func:`~mi_notebook.sources._assertion.inspect_token_file`'s
    verdict on the token file. ``now``: epoch seconds (default this clock).

    Example::

        >>> from types import SimpleNamespace
        >>> client = SimpleNamespace(authority="https://login.microsoftonline.us", tenant_id="t",
        ...                          token_file="/nonexistent/t", client_id="6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b")
        >>> workload_report(SimpleNamespace(client=client), now=0)[0][3]
        'AZURE_AUTHORITY_HOST=https://login.microsoftonline.us (Entra ID, where the token is traded)'
    """
    from ..sources._assertion import inspect_token_file

    client = conn.client
    who = (f"AZURE_CLIENT_ID={client.client_id} (the identity; the service account's annotation "
           "azure.workload.identity/client-id)" if client.client_id else
           "AZURE_CLIENT_ID: not set (each request must name the identity: --client-id)")
    lines = [who, f"AZURE_TENANT_ID={client.tenant_id}", f"AZURE_FEDERATED_TOKEN_FILE={client.token_file}",
             f"AZURE_AUTHORITY_HOST={client.authority} (Entra ID, where the token is traded)"]
    report = inspect_token_file(client.token_file, now=time.time() if now is None else now)
    lines.extend(f"token {line}" for line in report.lines)
    problems = [CliProblem("problem", message, fix) for message, fix in report.problems]
    return lines, problems
