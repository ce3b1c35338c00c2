"""``python -m mi_notebook`` is the ``mi-notebook`` command."""

from .cli import main

raise SystemExit(main())
