"""The ``mi-notebook`` command: a thin dispatcher to one module per subcommand.

Each subcommand lives in ``mi_notebook/commands/<name>.py`` and defines ``add_parser(subparsers)``
(which registers its options and sets ``func``) so that this file never grows protocol logic.
``mi-notebook emulator`` is handed to the emulator package unchanged: the emulator is an
independent program that shares no code with the client.

Example::

    $ mi-notebook token arm --json
    $ mi-notebook emulator --port 8080
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand -> module under mi_notebook.commands, in the order `--help` lists them
SUBCOMMANDS = ("token", "decode", "doctor", "demo")
# subcommands whose module lives in their own package: name -> module (relative to this package)
PACKAGED_SUBCOMMANDS = {"agent": ".agent.command"}


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every subcommand that is installed."""
    from .commands._common import EXIT_CODES

    parser = argparse.ArgumentParser(
        prog="mi-notebook",
        description="Azure managed-identity tokens, made visible. Off Azure, runs on an embedded emulator.",
        epilog="exit codes:\n" + "\n".join(f"  {code:<4}{meaning}" for code, meaning in EXIT_CODES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"mi-notebook {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("emulator", help="serve the IMDS (+ ARM) emulator in the foreground", add_help=False)
    for name in SUBCOMMANDS:
        importlib.import_module(f".commands.{name}", __package__).add_parser(sub)
    for module in PACKAGED_SUBCOMMANDS.values():
        importlib.import_module(module, __package__).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code.

    When the reader of the output goes away (``mi-notebook decode --json | head``), the command stops
    quietly with 141 (128 + SIGPIPE, as shell tools do), whatever it was printing.
    """
    try:
        try:
            return _run(list(sys.argv[1:] if argv is None else argv))
        finally:
            sys.stdout.flush()  # a late broken pipe surfaces here (also after --help), not as noise at exit
    except BrokenPipeError:
        _discard_stdout()
        return 141


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file behind stdout (a test's capture)
        pass


def _run(args: list[str]) -> int:
    if args and args[0] == "emulator":
        from .emulator.command import main as emulator_main

        return emulator_main(args[1:])
    parser = build_parser()
    ns = parser.parse_args(args)
    if not getattr(ns, "func", None):
        parser.print_help()
        return 2
    from .commands._common import one_line_warnings

    with one_line_warnings():
        return int(ns.func(ns) or 0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
