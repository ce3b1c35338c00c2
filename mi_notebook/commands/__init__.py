"""Subcommands of the ``mi-notebook`` command, one module each."""
