"""How the widget classes display themselves: their ipywidgets view, with their own repr as plain text.

A notebook shows the rich view; a terminal, a text-only front end or ``nbval`` sees the ``repr``
(never a widget model id, so stored outputs stay comparable).

Example::

    >>> import ipywidgets as w
    >>> class Box:
    ...     widget = w.HTML("hi")
    ...     def __repr__(self): return "Box()"
    >>> widget_bundle(Box(), Box.widget)["text/plain"]
    'Box()'
"""

from __future__ import annotations

from typing import Any

__all__ = ["widget_bundle"]


def widget_bundle(owner: object, widget: Any, **kwargs: Any) -> dict[str, Any] | None:
    """``widget``'s display data (its ``_repr_mimebundle_``) with ``repr(owner)`` as ``text/plain``.

    Example::

        >>> import ipywidgets as w
        >>> class Panel:
        ...     def __repr__(self):
        ...         return "Panel()"
        >>> widget_bundle(Panel(), w.Label("hi"))["text/plain"]
        'Panel()'
    """
    data: dict[str, Any] | None = widget._repr_mimebundle_(**kwargs)
    if data is not None:
        data["text/plain"] = repr(owner)
    return data
