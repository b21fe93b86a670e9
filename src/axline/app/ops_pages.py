"""The pages of the web app other than the dashboard, the wall screen and the login, in one skeleton.

``pages/skeleton.html`` holds what every such page shares: the head (catalog, i18n, shared helpers,
styles), the header with the way back to the dashboard, the page's navigation with the current page
marked, the language switch, the log-out button of a signed-in person, and the message banner.
``pages/NAME.html`` holds only the page's own head lines (its scripts and style sheets) and its
``<main>``. A new page is a new ``pages/NAME.html``, its title in the catalog, an entry in
:data:`PAGES`, and, to be listed among the operations pages, an entry in :data:`OPS_NAV`.

Pages are put together once, when the app is made, so serving one reads nothing from disk.
"""

from __future__ import annotations

import html
import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from axline import i18n
from axline.app.roles import require_role
from axline.app.security import AUTH_KIND_KEY

PAGES_DIR = Path(__file__).resolve().parent / "pages"
# (page, catalog key of its link) in the order of the navigation
OPS_NAV = (("alarms", "nav.alarms"), ("history", "nav.history"), ("quality", "nav.quality"),
           ("reports", "nav.reports"))


@dataclass(frozen=True)
class Page:
    """What a page sets in the skeleton: the catalog key of its title, the links of its navigation
    ((page, catalog key) in order; none: no navigation) and the classes it adds to the body."""

    title_key: str
    nav: tuple[tuple[str, str], ...] = OPS_NAV
    body_class: str = ""


# every page put together in the skeleton, by name (served as /NAME)
PAGES: dict[str, Page] = {
    **{page: Page(f"{page}.title") for page, _ in OPS_NAV},
    "optimize": Page("opt.title", (*OPS_NAV[:3], ("optimize", "nav.optimize"))),
    "knowhow": Page("kh.title", (("knowhow", "kh.nav"), ("alarms", "nav.alarms")), "knowhow"),
    "inspection": Page("insp.title", ()),
    "audit": Page("audit.title", ()),
    "account": Page("acct.title", ()),
}


def _en(key: str) -> str:
    """The English text of ``key`` as HTML: what the page shows until it applies the reader's language."""
    return html.escape(i18n.text(key, "en"))


def render(name: str, signed_in: bool) -> str:
    """The HTML of page ``name`` (a key of :data:`PAGES`); ``signed_in`` shows the log-out button."""
    page = PAGES[name]
    skeleton = string.Template((PAGES_DIR / "skeleton.html").read_text(encoding="utf-8"))
    own = (PAGES_DIR / f"{name}.html").read_text(encoding="utf-8").splitlines(keepends=True)
    n_head = next((i for i, line in enumerate(own) if not line.lstrip().startswith(("<script", "<link"))), len(own))
    links = []
    for target, key in page.nav:
        current = ' class="nav-link current" aria-current="page"' if target == name else ' class="nav-link"'
        links.append(f'      <a href="/{target}"{current} data-i18n="{key}">{_en(key)}</a>\n')
    nav = f'    <nav class="ops-nav">\n{"".join(links)}    </nav>\n' if links else ""
    return skeleton.substitute(
        title_key=page.title_key, title=_en(page.title_key), head="".join(own[:n_head]).rstrip("\n"),
        body_class=f" {page.body_class}" if page.body_class else "", back=_en("ops.back"), nav=nav,
        lang_toggle=_en("lang.toggle"), logout=_en("header.logout"),
        logout_hidden="" if signed_in else " hidden", main="".join(own[n_head:]).rstrip("\n"),
    )


def ops_page(name: str, role: str | None = None) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A handler that serves page ``name`` in the shared skeleton (made now, served from memory); with
    ``role``, only to a caller who holds it."""
    pages = {signed_in: render(name, signed_in) for signed_in in (True, False)}

    async def handler(request: web.Request) -> web.StreamResponse:
        if role is not None:
            require_role(request, role)
        signed_in = request.get(AUTH_KIND_KEY) == "session"  # a password session can log out; a token cannot
        return web.Response(text=pages[signed_in], content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-store"})

    return handler
