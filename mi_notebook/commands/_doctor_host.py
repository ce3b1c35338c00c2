"""The doctor's ``--verbose`` host section: what host detection sees and what ``DefaultAzureCredential``
would try here.

When the endpoint was given (``--imds-url``) or is the emulator, detection did not choose it, so the
section says so in its title and shows what auto mode *would* decide, instead of a second claim about
the endpoint in use. Its notes are in CLI words.

Example::

    >>> from mi_notebook.connection import connect, disconnect
    >>> env = {"MSI_ENDPOINT": "http://127.0.0.1:46808/MSI/auth", "MSI_SECRET": "s3cr3t"}
    >>> title, lines = host_report(connect(host="azureml", environ=env), env)
    >>> title, any("s3cr3t" in line for line in lines)
    ('Host detection', False)
    >>> [line for line in lines if "cloudshell" in line][0].strip()
    'cloudshell: needs MSI_ENDPOINT without MSI_SECRET (but MSI_SECRET is set)'
    >>> disconnect()
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ._errors import cli_words

if TYPE_CHECKING:  # pragma: no cover
    from ..connection import Connection

__all__ = ["host_report"]


def host_report(conn: Connection, environ: Mapping[str, str] | None = None) -> tuple[str, list[str]]:
    """``(title, lines)``: the variables seen, what detection decides and why, what each other host
    would need, the DMI verdict, notes, and DefaultAzureCredential's chain, in its order.

    Example::

        >>> from mi_notebook.connection import Connection
        >>> conn = Connection("http://127.0.0.1:9", "vm", None, chosen="given", reason="Using http://127.0.0.1:9.")
        >>> host_report(conn, {})[0]
        'Host detection (not used: the endpoint was given explicitly; this is what auto mode would decide)'
    """
    from ..detection import default_azure_credential_chain, detect

    env = os.environ if environ is None else environ
    decided = conn.chosen != "given" and not conn.emulated
    found = conn.detection if decided and conn.detection is not None else detect(env)
    title = "Host detection"
    if conn.chosen == "given":
        title += " (not used: the endpoint was given explicitly; this is what auto mode would decide)"
    elif conn.emulated:
        title += " (not used: the emulator serves the tokens; this is what auto mode would decide here)"
    lines = [f"decides {found.host}: {found.reason}",
             f"Azure VM by DMI: {'yes' if found.is_azure_vm else 'no'} ({found.vm_evidence})",
             "variables: " + (", ".join(f"{k}={v}" for k, v in found.variables.items()) or "none set"),
             "the other hosts:"]
    lines.extend(f"  {host}: {need}" for host, need in found.others.items())
    lines.extend(f"note: {cli_words(note)}" for note in found.notes)
    chain = default_azure_credential_chain(env)
    lines.extend(chain.lines())
    if chain.problem:
        lines.append(f"DefaultAzureCredential() would fail here: {chain.problem}")
    return title, lines
