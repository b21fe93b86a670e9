"""The operations pages (alarms, history, quality, reports) in one skeleton.

``pages/skeleton.html`` holds what every operations page shares: the head (catalog, i18n, shared
helpers, styles), the header with the way back to the dashboard, the navigation with the current
page marked, the language switch, the log-out button of a signed-in person, and the message banner.
``pages/NAME.html`` holds only the page's own scripts and its ``<main>``. A new page is a new
``pages/NAME.html``, a ``NAME.title`` text in the catalog, and, to be listed, an entry in
:data:`OPS_NAV`.

Pages are put together once, when the app is made, so serving one reads nothing from disk.
"""

from __future__ import annotations

import html
import string
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from axline import i18n
from axline.app.security import AUTH_KIND_KEY

PAGES_DIR = Path(__file__).resolve().parent / "pages"
# (page, catalog key of its link) in the order of the navigation
OPS_NAV = (("alarms", "nav.alarms"), ("history", "nav.history"), ("quality", "nav.quality"),
           ("reports", "nav.reports"))


def _en(key: str) -> str:
    """The English text of ``key`` as HTML: what the page shows until it applies the reader's language."""
    return html.escape(i18n.text(key, "en"))


def render(name: str, signed_in: bool) -> str:
    """The HTML of operations page ``name``; ``signed_in`` shows the log-out button."""
    skeleton = string.Template((PAGES_DIR / "skeleton.html").read_text(encoding="utf-8"))
    own = (PAGES_DIR / f"{name}.html").read_text(encoding="utf-8").splitlines(keepends=True)
    n_scripts = next((i for i, line in enumerate(own) if not line.lstrip().startswith("<script")), len(own))
    nav = []
    for page, key in OPS_NAV:
        current = ' class="nav-link current" aria-current="page"' if page == name else ' class="nav-link"'
        nav.append(f'      <a href="/{page}"{current} data-i18n="{key}">{_en(key)}</a>')
    return skeleton.substitute(
        title_key=f"{name}.title", title=_en(f"{name}.title"), scripts="".join(own[:n_scripts]).rstrip("\n"),
        back=_en("ops.back"), nav="\n".join(nav), lang_toggle=_en("lang.toggle"), logout=_en("header.logout"),
        logout_hidden="" if signed_in else " hidden", main="".join(own[n_scripts:]).rstrip("\n"),
    )


def ops_page(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A handler that serves operations page ``name`` in the shared skeleton (made now, served from memory)."""
    pages = {signed_in: render(name, signed_in) for signed_in in (True, False)}

    async def handler(request: web.Request) -> web.StreamResponse:
        signed_in = request.get(AUTH_KIND_KEY) == "session"  # a password session can log out; a token cannot
        return web.Response(text=pages[signed_in], content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-store"})

    return handler
