"""TokenExplorer: pick an identity and a resource, get a token, and see everything about it.

The button calls ``mi_notebook.connection.get_token`` (the function a script calls), with an
``on_attempt`` callback that shows live progress while IMDS is retried. The work runs on an
executor (a worker thread by default), so the page stays responsive; tests pass
``SyncExecutor()``. Then: the token card (never the token itself), the claims with their checks,
the lifetime chart and the retry timeline; or a readable error panel with what to do.

Example::

    >>> from mi_notebook.widgets import SyncExecutor, TokenExplorer
    >>> ex = TokenExplorer("vault", executor=SyncExecutor(), list_identities=False)
    >>> ex
    TokenExplorer(resource='https://vault.azure.net', identity='system-assigned')
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Executor, Future
from typing import Any

import ipywidgets as w

from .. import html as _h
from ..errors import ManagedIdentityError, TokenDecodeError
from ..identity import Identity
from . import panels
from ._display import widget_bundle
from ._executor import default_executor
from .pickers import IdentityPicker, ResourcePicker

__all__ = ["TokenExplorer"]

logger = logging.getLogger(__name__)



def _title() -> str:
    return panels.title("Token Explorer", _where())


def _where() -> str:
    from ..connection import current

    return panels.where(current())


class TokenExplorer:
    """Pickers, a "Get token" button, live retry progress, then the token explained (or the error).

    ``resource`` / ``identity``: the initial choices. ``executor``: where the request runs
    (default: a shared worker thread pool; ``SyncExecutor()`` in tests). ``list_identities``: as for
    :class:`IdentityPicker`. After a fetch, ``token`` holds the ``AccessToken`` (redacted repr) and
    ``error`` the exception, if any; ``future`` is the last submitted job.

    Display it as the last expression of a cell (it delegates to ``.widget``).

    Example::

        >>> from mi_notebook.widgets import SyncExecutor
        >>> ex = TokenExplorer(executor=SyncExecutor(), list_identities=False)
        >>> ex.button.description, ex.button.disabled
        ('Get token', False)
    """

    def __init__(
        self,
        resource: str = "arm",
        identity: Identity | str | None = None,
        *,
        executor: Executor | None = None,
        list_identities: Any = None,
    ) -> None:
        self._executor = executor
        self._lock = threading.Lock()
        self.token: Any = None
        self.error: BaseException | None = None
        self.future: Future[None] | None = None
        self.running = False

        self.identity_picker = IdentityPicker(identity, list_identities=list_identities, executor=executor)
        self.resource_picker = ResourcePicker(resource)
        self.title = w.HTML(_title())
        self.button = w.Button(description="Get token", button_style="primary", icon="key",
                               tooltip="Ask the identity endpoint for a token (served from the cache when fresh)",
                               layout=w.Layout(width="140px"))
        self.force_refresh = w.Checkbox(value=False, description="skip the cache (force refresh)", indent=False,
                                        layout=w.Layout(width="260px"))
        self.progress = w.IntProgress(value=0, min=0, max=5, bar_style="info",
                                      layout=w.Layout(width="160px", display="none"))
        self.status = w.HTML(panels.note("Choose an identity and a resource, then Get token."))
        self.token_card = w.HTML(layout=w.Layout(flex="0 0 auto", margin="0 8px 0 0"))
        self.checks_card = w.HTML(layout=w.Layout(flex="1 1 0"))
        self.claims_card = w.HTML()
        self.error_panel = w.HTML()
        self.lifetime_chart = w.Image(format="png", layout=w.Layout(max_width="820px", display="none"))
        self.timeline_chart = w.Image(format="png", layout=w.Layout(max_width="820px", display="none"))
        for widget, name in ((self.button, "mi-get-token"), (self.status, "mi-progress"),
                             (self.force_refresh, "mi-force-refresh"), (self.progress, "mi-progress-bar"),
                             (self.token_card, "mi-token-card"), (self.checks_card, "mi-checks"),
                             (self.claims_card, "mi-claims"),
                             (self.error_panel, "mi-error"), (self.lifetime_chart, "mi-lifetime-chart"),
                             (self.timeline_chart, "mi-timeline-chart")):
            widget.add_class(name)

        self.charts = w.VBox([self.lifetime_chart, self.timeline_chart])
        self.widget = w.VBox([
            self.title,
            self.identity_picker.widget,
            self.resource_picker.widget,
            w.HBox([self.button, self.force_refresh], layout=w.Layout(align_items="center", margin="4px 0 0 84px")),
            w.HBox([self.progress, self.status], layout=w.Layout(align_items="center", margin="0 0 0 84px")),
            self.error_panel,
            w.HBox([self.token_card, self.checks_card], layout=w.Layout(align_items="flex-start")),
            self.charts,
            self.claims_card,
        ], layout=w.Layout(max_width="980px"))
        self.widget.add_class("mi-token-explorer")

        self.button.on_click(self.on_get)
        self.identity_picker.on_change(lambda _p: self._update_button())
        self.resource_picker.on_change(lambda _p: self._update_button())
        self._update_button()

    # --- input -------------------------------------------------------------------------------------
    def _update_button(self) -> None:
        self.button.disabled = self.running or not (self.identity_picker.valid and self.resource_picker.valid)

    # --- the request ---------------------------------------------------------------------------------
    def on_get(self, _button: Any = None) -> Future[None] | None:
        """The button's handler: validate, then fetch on the executor. Returns the job's future."""
        with self._lock:
            if self.running:
                return self.future
            identity, resource = self.identity_picker.identity, self.resource_picker.value
            if identity is None or resource is None:
                self._update_button()
                return None
            self.running = True
        self._update_button()
        self.button.description = "Fetching\u2026"
        self.error = None
        self.error_panel.value = ""
        self.progress.value, self.progress.bar_style = 0, "info"
        self.progress.layout.display = ""
        self.status.value = panels.note(f"Asking for a token for {resource} as {identity}\u2026")
        self.future = (self._executor or default_executor()).submit(
            self._fetch, resource, identity, bool(self.force_refresh.value))
        return self.future

    def _on_attempt(self, attempt: Any, next_wait: float | None, max_attempts: int) -> None:
        self.progress.max = max(max_attempts, attempt.number)
        self.progress.value = attempt.number
        self.progress.bar_style = "success" if attempt.outcome == "success" else "warning"
        self.status.value = panels.progress_text(attempt, next_wait, max_attempts)

    def _fetch(self, resource: str, identity: Identity, force_refresh: bool) -> None:
        from ..connection import get_token

        try:
            try:
                token = get_token(resource, identity=identity, force_refresh=force_refresh,
                                                 on_attempt=self._on_attempt)
            except ManagedIdentityError as exc:
                self._show_error(exc)
                return
            except ValueError as exc:
                self._show_problem(exc, panels.input_panel(exc))
                return
            self._show_token(token)
        except Exception as exc:  # noqa: BLE001 - the page shows a bug panel, never a traceback
            logger.exception("TokenExplorer: unexpected error")
            self._show_problem(exc, panels.bug_panel(exc))
        finally:
            self.title.value = _title()
            self.progress.layout.display = "none"  # the status line says how it ended
            with self._lock:
                self.running = False
            self.button.description = "Get token"
            self._update_button()

    # --- views ---------------------------------------------------------------------------------------
    def _clear_results(self) -> None:
        self.token_card.value = self.checks_card.value = self.claims_card.value = ""
        for chart in (self.lifetime_chart, self.timeline_chart):
            chart.layout.display = "none"

    def _show_token(self, token: Any) -> None:
        self.token_card.value = token._repr_html_()
        try:
            claims = token.claims
        except TokenDecodeError as exc:  # an opaque (non-JWT) token: still a token, nothing to decode
            self.checks_card.value = _h.card("Checks", [panels.note(f"Not decoded: {exc.message}")])
            self.claims_card.value = ""
        else:
            self._show_claims(token, claims)
        self._show_charts(token)
        self.token = token
        self.progress.bar_style = "success"
        if token.from_cache:
            self.status.value = panels.note(
                "Served from the cache (still fresh): tick \u201cskip the cache\u201d to ask IMDS again.",
                colour="#1a7f37")
        else:
            summary = token.timeline.summary() if token.timeline is not None else "done"
            self.status.value = panels.note(f"Got a token: {summary}.", colour="#1a7f37")

    def _show_claims(self, token: Any, claims: Any) -> None:
        checks = claims.checks()
        worst = next((s for s in ("problem", "warning", "ok") if any(c.status == s for c in checks)), "skipped")
        self.checks_card.value = _h.card(
            "Checks", [_h.table(["check", "status", "explanation"],
                                [(c.name, _h.badge(c.status), c.explanation) for c in checks], raw_columns=(1,))],
            badges=[_h.badge(worst, worst)])
        table = _h.table(["claim", "value", "meaning"], claims.rows())
        self.claims_card.value = _h.card(
            f"Claims ({len(claims.payload)})",
            ['<details open style="margin:2px 0"><summary style="cursor:pointer;color:#57606a">'
             "what the token says, claim by claim</summary>" + table + "</details>"],
            footer=f"decoded locally (signature not verified); token {token.fingerprint}, never shown")

    def _show_charts(self, token: Any) -> None:
        from ..cache import default_cache
        from ..charts import plot_retry_timeline, plot_token_lifetimes

        cache = default_cache()
        mine = [t for t in cache.tokens() if t.endpoint == token.endpoint] or [token]
        self.lifetime_chart.value = panels.figure_png(lambda ax: plot_token_lifetimes(mine, cache=cache, ax=ax))
        self.lifetime_chart.layout.display = ""
        if token.timeline is not None and len(token.timeline):
            title = None if not token.from_cache else "the request that fetched this token (now served from the cache)"
            one = len(token.timeline) == 1  # nothing was retried: a short strip, not an empty 0-1 s chart
            if one and title is None:
                title = "answered at the first attempt: nothing was retried"
            self.timeline_chart.value = panels.figure_png(
                lambda ax: panels.legend_outside(plot_retry_timeline(token.timeline, ax=ax, title=title)),
                figsize=(7.0, 1.7 if one else 2.4))
            self.timeline_chart.layout.display = ""
        else:
            self.timeline_chart.layout.display = "none"

    def _show_error(self, exc: ManagedIdentityError) -> None:
        from ..charts import plot_retry_timeline

        self._show_problem(exc, panels.error_panel(exc))
        timeline = exc.timeline
        if timeline is not None and len(timeline):
            self.timeline_chart.value = panels.figure_png(
                lambda ax: panels.legend_outside(plot_retry_timeline(timeline, ax=ax)), figsize=(7.0, 3.0))
            self.timeline_chart.layout.display = ""

    def _show_problem(self, exc: BaseException, panel_html: str) -> None:
        self._clear_results()
        self.error = exc
        self.token = None
        self.error_panel.value = panel_html
        self.progress.bar_style = "danger"
        self.status.value = panels.note(f"Failed: {panels.headline(exc)}.", colour="#cf222e")

    # --- display -------------------------------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        self.identity_picker.load_identities()
        return widget_bundle(self, self.widget, **kwargs)

    def __repr__(self) -> str:
        identity = self.identity_picker.identity
        return (f"TokenExplorer(resource={self.resource_picker.resource or 'invalid'!r}, "
                f"identity={str(identity) if identity is not None else 'invalid'!r})")
