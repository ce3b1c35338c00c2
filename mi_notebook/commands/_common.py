"""Options and habits shared by the ``token``, ``decode`` and ``doctor`` subcommands.

Every command honours ``MI_NOTEBOOK_IMDS_URL`` / ``MI_NOTEBOOK_MODE`` and accepts ``--imds-url``
and ``--mode``; every failure becomes a readable message on stderr and an exit code (:data:`EXIT_CODES`), never
a traceback.

Example::

    >>> import argparse
    >>> p = argparse.ArgumentParser(); add_connection_arguments(p); add_identity_arguments(p)
    >>> ns = p.parse_args(["--client-id", "11111111-2222-3333-4444-555555555555"])
    >>> str(identity_from_args(ns))
    'user-assigned (client_id=11111111-2222-3333-4444-555555555555)'
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # pragma: no cover
    from ..connection import Connection
    from ..identity import Identity

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
#: the exit codes, as ``mi-notebook --help`` and the README list them
EXIT_CODES = (
    (EXIT_OK, "success"),
    (EXIT_ERROR, "failed: the endpoint or ARM refused or failed, a token did not verify, a doctor check "
                 "failed, or an input was refused before any request (an unknown alias, a malformed id)"),
    (EXIT_USAGE, "bad usage: an unknown command or option, a missing argument"),
    (130, "interrupted (Ctrl+C)"),
    (141, "the reader of the output went away (e.g. piped into head): the rest was not printed"),
)
EXIT_PIPE = 141


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """``--imds-url URL`` and ``--mode {auto,imds,emulator}`` (defaults: the environment variables)."""
    group = parser.add_argument_group("endpoint (default: $MI_NOTEBOOK_IMDS_URL, else $MI_NOTEBOOK_MODE, else auto)")
    group.add_argument("--imds-url", metavar="URL", help="an IMDS-compatible base URL, e.g. http://127.0.0.1:8080")
    group.add_argument("--mode", choices=("auto", "imds", "emulator"),
                       help="auto: real IMDS if this is an Azure VM, else the embedded emulator")


def add_identity_arguments(parser: argparse.ArgumentParser) -> None:
    """``--client-id`` | ``--object-id`` | ``--resource-id`` (mutually exclusive; default system-assigned)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--client-id", metavar="GUID", help="a user-assigned identity by client id")
    group.add_argument("--object-id", metavar="GUID", help="a user-assigned identity by object (principal) id")
    group.add_argument("--resource-id", metavar="ID", help="a user-assigned identity by Azure resource id")


def identity_from_args(ns: argparse.Namespace) -> Identity:
    """The identity the options name (``ValueError`` for a malformed id)."""
    from ..identity import Identity

    for name in ("client_id", "object_id", "resource_id"):
        value = getattr(ns, name, None)
        if value:
            return Identity.user(**{name: value})
    return Identity.system()


def connection_from_args(ns: argparse.Namespace) -> Connection:
    """Connect as the options (or, without them, the environment) say; the reason names the option.

    Example::

        >>> conn = connection_from_args(argparse.Namespace(imds_url="http://127.0.0.1:9", mode=None))
        >>> conn.reason
        'Using http://127.0.0.1:9 because --imds-url gave it.'
    """
    from ..connection import connect

    if getattr(ns, "imds_url", None):
        return _said(connect(ns.imds_url), "--imds-url gave it")
    mode = getattr(ns, "mode", None)
    conn = connect(mode=mode)
    return _said(conn, f"--mode {mode} was given") if mode not in (None, "auto") else conn


def _said(conn: Connection, why: str) -> Connection:
    """``conn`` with its reason's "because ..." in CLI words (``connect()`` speaks of its arguments)."""
    head, found, tail = conn.reason.partition(" because ")
    if found:
        rest = tail.split(".", 1)[1] if "." in tail else ""
        conn.reason = f"{head} because {why}.{rest}"
    return conn


def given_url(ns: argparse.Namespace) -> str | None:
    """Where an explicit endpoint URL came from: ``--imds-url``, ``MI_NOTEBOOK_IMDS_URL``, or ``None``.

    Example::

        >>> given_url(argparse.Namespace(imds_url="http://127.0.0.1:9"))
        '--imds-url'
    """
    import os

    if getattr(ns, "imds_url", None):
        return "--imds-url"
    return "MI_NOTEBOOK_IMDS_URL" if os.environ.get("MI_NOTEBOOK_IMDS_URL", "").strip() else None


def _identity_or_none(ns: argparse.Namespace) -> Identity | None:
    try:
        return identity_from_args(ns)
    except ValueError:
        return None


def fail(message: str) -> int:
    """Print ``message`` on stderr (prefixed with the program name) and return the error exit code."""
    print(f"mi-notebook: {message}", file=sys.stderr)
    return EXIT_ERROR


def guarded(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Wrap a command so that every failure is a message on stderr and an exit code, never a traceback.

    The current connection is closed afterwards (an emulator started for this command is stopped).
    """

    def wrapper(ns: argparse.Namespace) -> int:
        from ..connection import current, disconnect
        from ..errors import ManagedIdentityError
        from ._errors import cli_words, error_lines

        try:
            return run(ns)
        except ManagedIdentityError as exc:
            return fail("\n".join(error_lines(exc, conn=current(), resource=getattr(ns, "resource", None),
                                               identity=_identity_or_none(ns), given=given_url(ns))))
        except BrokenPipeError:
            raise  # the reader went away (`| head`): cli.main ends quietly
        except ValueError as exc:
            return fail(f"invalid input: {cli_words(str(exc))}")
        except KeyboardInterrupt:
            print("mi-notebook: interrupted", file=sys.stderr)
            return 130
        except Exception as exc:  # noqa: BLE001 - the promise is: never a traceback
            return fail(f"unexpected {type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(Exception):  # nothing useful to say while exiting
                disconnect()

    wrapper.__name__ = getattr(run, "__name__", "command")
    wrapper.__doc__ = run.__doc__
    return wrapper


@contextlib.contextmanager
def one_line_warnings(stream: TextIO | None = None) -> Iterator[None]:
    """While the block runs, every warning is one ``warning: ...`` line on ``stream`` (default stderr):
    no file path, no source line, no category name. The previous display hook comes back afterwards.

    Example::

        >>> import io
        >>> out = io.StringIO()
        >>> with one_line_warnings(out):
        ...     warnings.warn("mi-notebook: tokens are not shared:\\n  the agent is gone")
        >>> out.getvalue()
        'warning: tokens are not shared: the agent is gone\\n'
    """

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        text = " ".join(str(message).split())
        text = text.removeprefix("mi-notebook: ")
        print(f"warning: {text}", file=stream if stream is not None else sys.stderr, flush=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


@contextlib.contextmanager
def claims_judge_user_tokens() -> Iterator[None]:
    """Silence :class:`~mi_notebook.sources.UserTokenWarning` (its advice is Python) while a command
    that labels tokens by their claims, and says so in CLI terms, fetches them.

    Example::

        >>> from mi_notebook.sources import UserTokenWarning
        >>> with warnings.catch_warnings(record=True) as seen, claims_judge_user_tokens():
        ...     warnings.warn(UserTokenWarning("your own token"))
        >>> seen
        []
    """
    from ..sources import UserTokenWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserTokenWarning)
        yield


#: what the CLI prints where a token would be (``--show-token`` prints the token itself)
TOKEN_HIDDEN = "<redacted: use --show-token to print it>"
