"""Small HTML building blocks for notebook cards (claims, checks, tokens).

Plain strings with inline styles: no ids, no scripts, no memory addresses, so that a stored
notebook output is byte-for-byte the same on every run (nbval in strict mode compares
``text/html``). Every value goes through :func:`esc`.

Example::

    >>> from mi_notebook.html import card, kv_table
    >>> html = card("Token", [kv_table([("audience", "https://management.azure.com/")])])
    >>> html.startswith("<div") and "management.azure.com" in html
    True
"""

from __future__ import annotations

import html as _html
from collections.abc import Iterable, Sequence

#: colour of each check status (GitHub's palette: readable on light and dark themes)
STATUS_COLOURS: dict[str, str] = {
    "ok": "#1a7f37",
    "warning": "#9a6700",
    "problem": "#cf222e",
    "skipped": "#6e7781",
}

_CARD_STYLE = (
    "border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;margin:4px 0;"
    "font-family:system-ui,-apple-system,'Segoe UI',sans-serif;font-size:13px;max-width:960px"
)
_CELL = "padding:2px 8px;text-align:left;vertical-align:top;border:none;overflow-wrap:anywhere"
_KEY = _CELL + ";color:#57606a;white-space:nowrap;overflow-wrap:normal"


def esc(value: object) -> str:
    """HTML-escape ``str(value)`` (quotes included).

    >>> esc("<a & b>")
    '&lt;a &amp; b&gt;'
    """
    return _html.escape(str(value), quote=True)


def badge(status: str, text: str | None = None) -> str:
    """A coloured pill for a check status (``ok``, ``warning``, ``problem``, ``skipped``) or any label.

    >>> badge("ok")
    '<span style="background:#1a7f37;color:#fff;border-radius:8px;padding:0 6px;font-size:11px">ok</span>'
    """
    colour = STATUS_COLOURS.get(status, "#57606a")
    return (
        f'<span style="background:{colour};color:#fff;border-radius:8px;padding:0 6px;font-size:11px">'
        f"{esc(status if text is None else text)}</span>"
    )


def kv_table(rows: Iterable[tuple[str, str]]) -> str:
    """A two-column key/value table; values are escaped, keys too.

    >>> "<td" in kv_table([("a", "1")])
    True
    """
    body = "".join(
        f'<tr><td style="{_KEY}">{esc(key)}</td><td style="{_CELL}">{esc(value)}</td></tr>' for key, value in rows
    )
    return f'<table style="border-collapse:collapse;margin:2px 0">{body}</table>'


def table(columns: Sequence[str], rows: Iterable[Sequence[object]], *, raw_columns: Sequence[int] = ()) -> str:
    """A table with a header row. Cells are escaped, except the columns in ``raw_columns``
    (already HTML, e.g. a :func:`badge`).

    >>> table(["a"], [["<x>"]]).count("&lt;x&gt;")
    1
    """
    head = "".join(f'<th style="{_CELL};border-bottom:1px solid #d0d7de">{esc(c)}</th>' for c in columns)
    body = []
    for row in rows:
        # the first column (names) and HTML columns (badges) never wrap; long values may wrap anywhere
        cells = "".join(
            f'<td style="{_CELL};white-space:nowrap;overflow-wrap:normal">{cell if i in raw_columns else esc(cell)}</td>'
            if i == 0 or i in raw_columns
            else f'<td style="{_CELL}">{esc(cell)}</td>'
            for i, cell in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f'<table style="border-collapse:collapse;margin:2px 0"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def details(summary: str, content_html: str) -> str:
    """A collapsed ``<details>`` section (static HTML: no script, no id).

    >>> details("more", "<p>x</p>").startswith("<details")
    True
    """
    return (
        f'<details style="margin:4px 0"><summary style="cursor:pointer;color:#57606a">{esc(summary)}</summary>'
        f"{content_html}</details>"
    )


def card(title: str, sections: Sequence[str], *, badges: Sequence[str] = (), footer: str | None = None) -> str:
    """A bordered card: a bold title with badges (HTML), then the sections (HTML), then a grey footer (text).

    >>> card("T", ["<p>x</p>"], footer="f").count("<div")
    3
    """
    head = f'<div style="font-weight:600;margin-bottom:4px">{esc(title)} {" ".join(badges)}</div>'
    foot = f'<div style="color:#57606a;font-size:11px;margin-top:4px">{esc(footer)}</div>' if footer else ""
    return f'<div style="{_CARD_STYLE}">{head}{"".join(sections)}{foot}</div>'
