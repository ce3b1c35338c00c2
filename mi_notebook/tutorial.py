"""For tutorials that must carry on whatever machine they run on.

:func:`connect_or_carry_on` is the first cell of every notebook: it connects as ``mi.connect()``
does, and when this machine's identity does not answer at all (none turned on yet, or several and
none named), it says so and what to do, then carries the lesson on against a private, loopback
emulator, whose tokens all say "emulator". It never hides the switch: the message is printed.

Example::

    >>> import mi_notebook as mi
    >>> conn = connect_or_carry_on()        # the tests run in emulator mode: it answers at once
    >>> conn.chosen
    'emulator'
    >>> mi.disconnect()
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .connection import connect, get_token
from .errors import IdentityNotFoundError, MultipleIdentitiesError

if TYPE_CHECKING:  # pragma: no cover
    from .connection import Connection

__all__ = ["connect_or_carry_on"]


def connect_or_carry_on(resource: str = "arm") -> Connection:
    """``mi.connect()``, then one token for ``resource`` to see whether this machine's identity answers.

    If it does not (``IdentityNotFoundError`` / ``MultipleIdentitiesError``), print what happened and
    what to do, and connect to a private emulator instead, so the lesson goes on; any other error
    (an unreachable endpoint, a bad resource) is raised as usual. Returns the connection in use.

    Example::

        >>> connect_or_carry_on("vault").reason.startswith("Using the embedded emulator")
        True
    """
    conn = connect()
    try:
        get_token(resource)
    except (IdentityNotFoundError, MultipleIdentitiesError) as err:  # no identity turned on (yet)
        print(err.message)
        print("What to do:", err.hint)
        conn = connect(mode="emulator")  # so that the lesson goes on; its tokens all say "emulator"
        print("Until then this notebook continues on a private emulator:", conn.endpoint)
    return conn
