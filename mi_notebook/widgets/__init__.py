"""ipywidgets UI: identity and resource pickers, TokenExplorer, ArmExplorer.

Importing this package imports ipywidgets (``import mi_notebook`` alone does not). The widgets hold
no protocol logic: they call ``mi_notebook.connection.get_token`` and ``mi_notebook.arm_client`` like a script
would, on a worker thread (``executor=`` is injectable: ``SyncExecutor()`` runs inline for tests).

Example::

    >>> import mi_notebook as mi
    >>> explorer = mi.TokenExplorer(list_identities=False)  # display it as the last expression of a cell
    >>> explorer.button.description
    'Get token'
"""

from __future__ import annotations

from ._executor import SyncExecutor, default_executor
from .arm_explorer import ArmExplorer
from .pickers import IdentityPicker, ResourcePicker
from .token_explorer import TokenExplorer

__all__ = ["ArmExplorer", "IdentityPicker", "ResourcePicker", "SyncExecutor", "TokenExplorer", "default_executor"]
