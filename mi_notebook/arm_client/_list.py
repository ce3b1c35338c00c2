"""ARM's list results: :class:`ArmList` (a plain ``list`` of ARM's JSON objects) and its frame layouts.

Scripts index and loop as usual; ``.to_frame()`` gives a pandas DataFrame whose columns are chosen
by the list's ``kind`` (pandas is imported only then), and the list shows as a table in a notebook.

Example::

    >>> rows = ArmList([{"name": "vm", "type": "Microsoft.Compute/virtualMachines", "location": "westeurope",
    ...                  "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"}],
    ...                kind="resources")
    >>> rows.to_frame()["resource_group"].tolist(), rows
    (['rg'], ArmList(kind='resources', items=1, pages=0))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ..retry import Timeline

__all__ = ["FRAME_LAYOUTS", "ArmList"]


class ArmList(list[dict[str, Any]]):
    """ARM's list items (plain dicts) in order, all pages followed; ``.to_frame()`` for pandas.

    ``timelines`` holds one :class:`~mi_notebook.retry.Timeline` per page fetched; ``pages`` is how
    many; ``truncated`` says ``page_limit`` stopped the paging early; ``kind`` picks the frame's
    columns (``"resource_groups"``, ``"resources"``, ``"identities"``, ``"subscriptions"`` or
    ``"generic"``).

    Example::

        >>> rows = ArmList([{"name": "rg-a", "location": "westeurope", "id": "/subscriptions/s/resourceGroups/rg-a",
        ...                  "properties": {"provisioningState": "Succeeded"}}], kind="resource_groups")
        >>> rows[0]["name"], list(rows.to_frame().columns)
        ('rg-a', ['name', 'location', 'provisioning_state', 'tags', 'id'])
    """

    def __init__(self, items: Iterable[dict[str, Any]] = (), *, kind: str = "generic",
                 timelines: Iterable[Timeline] = (), truncated: bool = False) -> None:
        if kind not in FRAME_LAYOUTS:
            raise ValueError(f"kind must be one of {', '.join(FRAME_LAYOUTS)}; got {kind!r}")
        super().__init__(items)
        self.kind = kind
        self.timelines: list[Timeline] = list(timelines)
        self.truncated = truncated

    @property
    def pages(self) -> int:
        """How many pages were fetched (one timeline each)."""
        return len(self.timelines)

    def to_frame(self) -> pd.DataFrame:
        """A pandas DataFrame, one row per item, columns chosen for ``kind`` (see the class doc)."""
        import pandas as pd

        columns, row = FRAME_LAYOUTS.get(self.kind, FRAME_LAYOUTS["generic"])
        return pd.DataFrame([row(item) for item in self], columns=list(columns))

    def _repr_html_(self) -> str:
        frame = self.to_frame()
        note = f"<p>{len(self)} items from {self.pages} page(s){' (truncated by page_limit)' if self.truncated else ''}</p>"
        return frame.to_html(index=False, escape=True) + note

    def __repr__(self) -> str:
        return f"ArmList(kind={self.kind!r}, items={len(self)}, pages={self.pages}{', truncated' if self.truncated else ''})"


def _group_of(resource_id: str) -> str:
    parts = resource_id.split("/")
    low = [p.lower() for p in parts]
    i = low.index("resourcegroups") + 1 if "resourcegroups" in low else len(parts)
    return parts[i] if i < len(parts) else ""


FRAME_LAYOUTS: dict[str, tuple[tuple[str, ...], Callable[[dict[str, Any]], tuple[Any, ...]]]] = {
    "resource_groups": (("name", "location", "provisioning_state", "tags", "id"), lambda g: (
        g.get("name"), g.get("location"), (g.get("properties") or {}).get("provisioningState"),
        g.get("tags") or {}, g.get("id"))),
    "resources": (("name", "type", "resource_group", "location", "id"), lambda r: (
        r.get("name"), r.get("type"), _group_of(str(r.get("id", ""))), r.get("location"), r.get("id"))),
    "identities": (("kind", "name", "client_id", "principal_id", "resource_id"), lambda i: (
        i.get("kind"), i.get("name"), i.get("client_id"), i.get("principal_id"), i.get("resource_id"))),
    "subscriptions": (("subscription_id", "display_name", "state", "tenant_id"), lambda s: (
        s.get("subscriptionId"), s.get("displayName"), s.get("state"), s.get("tenantId"))),
    "generic": (("name", "type", "location", "id"), lambda r: (
        r.get("name"), r.get("type"), r.get("location"), r.get("id"))),
}
