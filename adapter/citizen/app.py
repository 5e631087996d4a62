"""The citizen web pages as one WSGI app: Berichtenbox, Lopende Zaken, Instellingen, login.

Every request runs in one database transaction and sees only the logged-in citizen's data.
Sessions live in the database (the cookie holds a random secret, the table its SHA-256), so
any number of listener processes share them; 15 minutes without a request ends a session.
Every form carries a CSRF token: the session's own, or before login a double-submit cookie.
Pages are rendered on the server, need no JavaScript, and the Content-Security-Policy allows
no script at all.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader
from werkzeug.exceptions import Forbidden, HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.security import safe_join
from werkzeug.wrappers import Request, Response

from adapter.citizen import text
from adapter.citizen.api import PREFIX, CitizenApi, letter_kind, plausible_email
from adapter.citizen.auth import DevLogin, LoginMethod
from adapter.config import Config
from adapter.logs import masked_bsn
from adapter.store import citizen as store
from adapter.store.blobs import open_blob_store
from adapter.store.db import Database

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger("adapter.citizen")

SESSION_COOKIE = "mo_sessie"
LOGIN_CSRF_COOKIE = "mo_login_csrf"
STATIC = Path(__file__).parent / "static"
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
MONTHS = [
    "januari",
    "februari",
    "maart",
    "april",
    "mei",
    "juni",
    "juli",
    "augustus",
    "september",
    "oktober",
    "november",
    "december",
]
FOLDER_TITLES = {store.INBOX: "Postvak", store.ARCHIVE: "Archief", store.BIN: "Prullenbak"}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def datum(moment: datetime | date | None, with_time: bool = False) -> str:
    """A date as Dutch readers write it: 2 maart 2026 (om 10:15), in Dutch local time."""
    if moment is None:
        return ""
    if isinstance(moment, datetime):
        local = moment.astimezone(AMSTERDAM)
        day = f"{local.day} {MONTHS[local.month - 1]} {local.year}"
        return f"{day} om {local:%H:%M}" if with_time else day
    return f"{moment.day} {MONTHS[moment.month - 1]} {moment.year}"


def _size(value: int) -> str:
    return f"{max(value // 1024, 1)} kB"


def _download_name(omschrijving: str, volgorde: int) -> str:
    base = "".join(c for c in text.clean(omschrijving) if c.isalnum() or c in " -_.()").strip()
    return f"{base or f'bijlage-{volgorde}'}"[:100].removesuffix(".pdf") + ".pdf"


@dataclass
class Visit:
    """One request: who is logged in (if anyone), in which transaction, at which moment."""

    request: Request
    session: Session
    now: datetime
    bsn: str | None = None
    csrf: str = ""
    token_hash: str | None = None
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    set_cookies: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)


class CitizenApp:
    """WSGI entry point; `clock` is replaceable so tests can move time (session idle)."""

    def __init__(
        self,
        config: Config,
        database: Database,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        login: LoginMethod | None = None,
    ) -> None:
        self.config = config
        self.database = database
        self.clock = clock
        if login is None and config.citizen.dev_login:
            login = DevLogin()
        self.login = login
        self.blobs = open_blob_store(config.blobs)
        self.secure = urlsplit(config.citizen.public_url).scheme == "https"
        self.idle = timedelta(minutes=config.citizen.session_idle_minutes)
        self.api = CitizenApi(
            config,
            database,
            lambda: self.clock(),
            self.login,
            _hash,
            lambda response: self._harden(response, logged_in=True),
        )
        self.templates = Environment(
            loader=PackageLoader("adapter.citizen", "templates"),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["datum"] = datum
        self.templates.filters["size"] = _size
        self.templates.filters["clean"] = text.clean
        self.templates.filters["tekst"] = text.bericht_tekst
        self.urls = Map(
            [
                Rule("/", endpoint="inbox", methods=["GET"]),
                Rule("/berichten/<bericht_id>", endpoint="letter", methods=["GET"]),
                Rule(
                    "/berichten/<bericht_id>/bijlagen/<soort>/<int:volgorde>",
                    endpoint="attachment",
                    methods=["GET"],
                ),
                Rule("/berichten/<bericht_id>/verplaatsen", endpoint="move", methods=["POST"]),
                Rule("/prullenbak/legen", endpoint="empty_bin", methods=["POST"]),
                Rule("/zaken", endpoint="zaken", methods=["GET"]),
                Rule("/zaken/<int:zaak_id>", endpoint="zaak", methods=["GET"]),
                Rule("/instellingen", endpoint="settings", methods=["GET", "POST"]),
                Rule("/login", endpoint="login", methods=["GET", "POST"]),
                Rule("/uitloggen", endpoint="logout", methods=["POST"]),
                Rule("/static/<path:name>", endpoint="static", methods=["GET"]),
            ],
            strict_slashes=False,
        )

    # --- WSGI plumbing ---------------------------------------------------------------------

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        request = Request(environ)
        response = self.dispatch(request)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        if request.path.startswith(PREFIX + "/"):
            return self.api.dispatch(request)
        adapter = self.urls.bind_to_environ(request.environ)
        try:
            endpoint, arguments = adapter.match()
        except HTTPException as exc:
            return self._error(exc)
        if endpoint == "static":
            return self._static(arguments["name"])
        try:
            with self.database.transaction() as session:
                visit = Visit(request, session, self.clock())
                self._identify(visit)
                if request.method == "POST":
                    self._check_csrf(visit, endpoint)
                response: Response = getattr(self, f"page_{endpoint}")(visit, **arguments)
        except _Redirect as exc:
            return self._harden(redirect(exc.location), logged_in=False)
        except HTTPException as exc:
            return self._error(exc)
        for action in visit.after_commit:
            action()
        for name, value, options in visit.set_cookies:
            response.set_cookie(name, value, **options)
        return self._harden(response, logged_in=visit.bsn is not None)

    def _harden(self, response: Response, logged_in: bool) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if logged_in or response.status_code >= 300:
            response.headers["Cache-Control"] = "no-store"
        return response

    def _error(self, exc: HTTPException) -> Response:
        code = exc.code or 500
        titles = {
            403: "Niet toegestaan",
            404: "Niet gevonden",
            405: "Methode niet toegestaan",
        }
        html = self.templates.get_template("fout.html").render(
            title=titles.get(code, "Er ging iets mis"),
            code=code,
            banner=self.login.banner if self.login else None,
            logged_in=False,
        )
        response = Response(html, status=code, mimetype="text/html")
        if isinstance(exc, MethodNotAllowed):
            response.headers["Allow"] = ", ".join(exc.valid_methods or [])
        return self._harden(response, logged_in=False)

    def _static(self, name: str) -> Response:
        path = safe_join(str(STATIC), name)
        if path is None or not name.endswith(".css") or not Path(path).is_file():
            return self._error(NotFound())
        response = Response(Path(path).read_bytes(), mimetype="text/css")
        response.headers["Cache-Control"] = "public, max-age=3600"
        return self._harden(response, logged_in=False)

    def _cookie_options(self, max_age: int | None = None) -> dict[str, Any]:
        return {
            "httponly": True,
            "samesite": "Lax",
            "secure": self.secure,
            "path": "/",
            "max_age": max_age,
        }

    def _identify(self, visit: Visit) -> None:
        token = visit.request.cookies.get(SESSION_COOKIE)
        if not token:
            return
        found = store.live_session(visit.session, _hash(token), visit.now, self.idle)
        if found is not None:
            visit.bsn, visit.csrf, visit.token_hash = found.bsn, found.csrf_token, found.token_hash

    def _check_csrf(self, visit: Visit, endpoint: str) -> None:
        sent = visit.request.form.get("csrf", "")
        if endpoint == "login":
            expected = visit.request.cookies.get(LOGIN_CSRF_COOKIE, "")
        else:
            expected = visit.csrf
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            raise Forbidden()

    def _render(self, visit: Visit, template: str, status: int = 200, **values: Any) -> Response:
        html = self.templates.get_template(template).render(
            banner=self.login.banner if self.login else None,
            logged_in=visit.bsn is not None,
            csrf=visit.csrf,
            **values,
        )
        return Response(html, status=status, mimetype="text/html")

    def _require_login(self, visit: Visit) -> str:
        if visit.bsn is None:
            raise _Redirect("/login")
        return visit.bsn

    def _organisation(self, oin: str) -> str:
        found = self.config.organisations.by_oin.get(oin)
        return found.name if found is not None else f"Organisatie {oin}"

    # --- login -----------------------------------------------------------------------------

    def page_login(self, visit: Visit) -> Response:
        if self.login is None:
            return self._render(
                visit,
                "login.html",
                status=503,
                unavailable=True,
                login_csrf="",
                error=None,
            )
        if visit.request.method == "GET":
            if visit.bsn is not None:
                return redirect("/")
            token = secrets.token_urlsafe(32)
            visit.set_cookies.append((LOGIN_CSRF_COOKIE, token, self._cookie_options(600)))
            return self._render(visit, "login.html", login_csrf=token, error=None)
        result = self.login.finish(dict(visit.request.form))
        error = result.error
        if result.bsn is not None and not store.activate(visit.session, result.bsn, visit.now):
            error = "Voor dit burgerservicenummer bestaat geen account."
        if error is not None or result.bsn is None:
            token = visit.request.cookies.get(LOGIN_CSRF_COOKIE, "")
            return self._render(visit, "login.html", status=400, login_csrf=token, error=error)
        if visit.token_hash is not None:
            store.end_session(visit.session, visit.token_hash)
        token = secrets.token_urlsafe(32)
        store.create_session(
            visit.session, _hash(token), result.bsn, secrets.token_urlsafe(32), visit.now
        )
        log.info("citizen %s logged in (%s)", masked_bsn(result.bsn), self.login.name)
        response = redirect("/")
        visit.set_cookies.append((SESSION_COOKIE, token, self._cookie_options()))
        visit.set_cookies.append((LOGIN_CSRF_COOKIE, "", self._cookie_options(0)))
        return response

    def page_logout(self, visit: Visit) -> Response:
        if visit.token_hash is not None:
            store.end_session(visit.session, visit.token_hash)
        visit.set_cookies.append((SESSION_COOKIE, "", self._cookie_options(0)))
        return redirect("/login")

    # --- Berichtenbox ----------------------------------------------------------------------

    def page_inbox(self, visit: Visit) -> Response:
        bsn = self._require_login(visit)
        args = visit.request.args
        folder = args.get("map", store.INBOX)
        if folder not in store.FOLDERS:
            folder = store.INBOX
        oin = args.get("afzender") or None
        try:
            page_number = max(int(args.get("pagina", "1")), 1)
        except ValueError:
            page_number = 1
        size = self.config.citizen.page_size
        page = store.letters(visit.session, bsn, visit.now, folder, oin, page_number, size)
        pages = max((page.total + size - 1) // size, 1)

        def link(**changes: Any) -> str:
            query = {"map": folder, "afzender": oin or "", "pagina": page_number, **changes}
            return "/?" + urlencode({k: v for k, v in query.items() if v not in ("", None)})

        return self._render(
            visit,
            "postvak.html",
            section="berichten",
            folder=folder,
            folders=FOLDER_TITLES,
            page=page,
            page_number=page_number,
            pages=pages,
            link=link,
            chosen=oin,
            senders=[
                (o, self._organisation(o))
                for o in store.senders(visit.session, bsn, visit.now, folder)
            ],
            organisation=self._organisation,
        )

    def _letter(self, visit: Visit, bericht_id: str) -> Any:
        bsn = self._require_login(visit)
        found = store.letter(visit.session, bsn, bericht_id, visit.now)
        if found is None:
            raise NotFound()
        return found

    def page_letter(self, visit: Visit, bericht_id: str) -> Response:
        found = self._letter(visit, bericht_id)
        store.mark_opened(visit.session, found, visit.now)
        soort, eigen_omgeving = letter_kind(self.config, found)
        return self._render(
            visit,
            "bericht.html",
            section="berichten",
            bericht=found,
            soort=soort,
            eigen_omgeving=eigen_omgeving,
            afzender=self._organisation(found.leverancier_oin),
            bijlagen=store.attachments(visit.session, found.bericht_id),
            folders=FOLDER_TITLES,
        )

    def page_attachment(self, visit: Visit, bericht_id: str, soort: str, volgorde: int) -> Response:
        found = self._letter(visit, bericht_id)
        wanted = next(
            (
                a
                for a in store.attachments(visit.session, found.bericht_id)
                if a.soort == soort and a.volgorde == volgorde
            ),
            None,
        )
        if wanted is None:
            raise NotFound()
        try:
            content = self.blobs.get(wanted.sha256)
        except FileNotFoundError:
            log.error("attachment blob %s is missing", wanted.sha256)
            raise NotFound() from None
        name = _download_name(wanted.omschrijving, wanted.volgorde)
        ascii_name = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
        response = Response(content, mimetype="application/pdf")
        response.headers["Content-Disposition"] = (
            f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
        )
        return response

    def page_move(self, visit: Visit, bericht_id: str) -> Response:
        found = self._letter(visit, bericht_id)
        target = visit.request.form.get("naar", "")
        if target not in store.FOLDERS:
            raise NotFound()
        origin = found.folder
        store.move(visit.session, found, target)
        return redirect(f"/?map={origin}")

    def page_empty_bin(self, visit: Visit) -> Response:
        bsn = self._require_login(visit)
        count, orphans = store.empty_bin(visit.session, bsn, visit.now)
        log.info("citizen %s emptied the bin: %d letters", masked_bsn(bsn), count)

        def remove_blobs() -> None:
            for digest in orphans:
                self.blobs.delete(digest)

        visit.after_commit.append(remove_blobs)
        return redirect(f"/?map={store.BIN}")

    # --- Lopende Zaken ---------------------------------------------------------------------

    def page_zaken(self, visit: Visit) -> Response:
        bsn = self._require_login(visit)
        since = visit.now.date() - timedelta(days=self.config.lopende_zaken.retention_days)
        zaken = store.zaken(visit.session, bsn, since)
        return self._render(
            visit,
            "zaken.html",
            section="zaken",
            zaken=zaken,
            organisation=self._organisation,
        )

    def page_zaak(self, visit: Visit, zaak_id: int) -> Response:
        bsn = self._require_login(visit)
        found = store.zaak(visit.session, bsn, zaak_id)
        since = visit.now.date() - timedelta(days=self.config.lopende_zaken.retention_days)
        if found is None or (found[0].einddatum is not None and found[0].einddatum < since):
            raise NotFound()
        zaak, history = found
        return self._render(
            visit,
            "zaak.html",
            section="zaken",
            zaak=zaak,
            historie=history,
            organisation=self._organisation(zaak.oin),
        )

    # --- Instellingen ----------------------------------------------------------------------

    def _choices(self) -> tuple[list[Any], list[Any]]:
        """Organisations that send post: those by law, and those a citizen may choose."""
        senders = [
            o for o in self.config.organisations.by_oin.values() if "BerichtVerwerk" in o.services
        ]
        by_law = sorted((o for o in senders if o.by_law), key=lambda o: o.name)
        choosable = sorted((o for o in senders if not o.by_law), key=lambda o: o.name)
        return by_law, choosable

    def page_settings(self, visit: Visit) -> Response:
        bsn = self._require_login(visit)
        account = store.account(visit.session, bsn)
        if account is None:  # an account can not go away while logged in; be safe anyway
            raise NotFound()
        own = store.settings(visit.session, bsn, visit.now)
        by_law, choosable = self._choices()
        error = None
        saved = False
        if visit.request.method == "POST":
            form = visit.request.form
            address = form.get("email", "").strip()
            if address and not plausible_email(address):
                error = "Vul een geldig e-mailadres in, of laat het veld leeg."
            else:
                store.update_contact(
                    visit.session,
                    bsn,
                    address or None,
                    form.get("herinneringen") == "aan",
                    visit.now,
                )
                changes = store.set_subscriptions(
                    visit.session,
                    bsn,
                    set(form.getlist("organisatie")),
                    {o.oin for o in choosable},
                    visit.now,
                    "instellingen",
                )
                if changes:
                    log.info("citizen %s changed %d opt-ins", masked_bsn(bsn), len(changes))
                saved = True
        return self._render(
            visit,
            "instellingen.html",
            status=400 if error else 200,
            section="instellingen",
            email=account.email or "",
            reminders=own.reminders,
            by_law=by_law,
            choosable=choosable,
            subscribed=store.subscriptions(visit.session, bsn),
            error=error,
            saved=saved,
        )


class _Redirect(Exception):
    """Leave the handler (and its transaction, rolled back) for another page."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def redirect(location: str) -> Response:
    response = Response("", status=303)
    response.headers["Location"] = location
    return response
