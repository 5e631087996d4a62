"""The JSON API for the Berichtenbox app, under /api/v1/ on the citizen listener.

The same rules as the pages, through the same store functions: letters (list, one,
attachments, mark as read, archive, delete to the bin), zaken, settings. The app
authenticates with a bearer token (a citizen session, so the same 15-minute idle limit); no
cookies are read here, so a browser's ambient credentials cannot be abused (no CSRF).
`/api/v1/openapi.json` describes every operation; the tests validate answers against it.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from adapter.citizen import text
from adapter.citizen.auth import LoginMethod
from adapter.config import Config
from adapter.logs import masked_bsn
from adapter.store import citizen as store
from adapter.store.blobs import open_blob_store
from adapter.store.db import Database

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from adapter.store.models import Bericht, Zaak, ZaakStatus

log = logging.getLogger("adapter.citizen.api")

PREFIX = "/api/v1"
OPENAPI = Path(__file__).parent / "openapi.json"


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _json(value: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(value, ensure_ascii=False), status=status, mimetype="application/json"
    )


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment is not None else None


def letter_kind(config: Config, bericht: Bericht) -> tuple[str, str | None]:
    """The letter's berichttype as citizens see it, and its link into the sender's own
    environment (the product's "link naar eigen omgeving"), if the sender configured one.

    The pages and the API both answer from here, so they never disagree.
    """
    organisation = config.organisations.by_oin.get(bericht.leverancier_oin)
    found = organisation.bericht_type(bericht.bericht_type) if organisation else None
    if found is None:  # a type or organisation no longer configured: its code, no link
        return text.clean(bericht.bericht_type), None
    return found.omschrijving, found.link_for(bericht.referentie)


class CitizenApi:
    def __init__(
        self,
        config: Config,
        database: Database,
        clock: Callable[[], datetime],
        login: LoginMethod | None,
        hash_token: Callable[[str], str],
        hardening: Callable[[Response], Response],
    ) -> None:
        self.config = config
        self.database = database
        self.clock = clock
        self.login = login
        self.hash_token = hash_token
        self.hardening = hardening
        self.blobs = open_blob_store(config.blobs)
        self.idle = timedelta(minutes=config.citizen.session_idle_minutes)
        p = PREFIX
        self.urls = Map(
            [
                Rule(f"{p}/openapi.json", endpoint="openapi", methods=["GET"]),
                Rule(f"{p}/sessie", endpoint="login", methods=["POST"]),
                Rule(f"{p}/sessie", endpoint="logout", methods=["DELETE"]),
                Rule(f"{p}/berichten", endpoint="letters", methods=["GET"]),
                Rule(f"{p}/berichten/<bericht_id>", endpoint="letter", methods=["GET"]),
                Rule(f"{p}/berichten/<bericht_id>", endpoint="delete", methods=["DELETE"]),
                Rule(f"{p}/berichten/<bericht_id>/gelezen", endpoint="read", methods=["POST"]),
                Rule(
                    f"{p}/berichten/<bericht_id>/archiveren", endpoint="archive", methods=["POST"]
                ),
                Rule(
                    f"{p}/berichten/<bericht_id>/bijlagen/<soort>/<int:volgorde>",
                    endpoint="attachment",
                    methods=["GET"],
                ),
                Rule(f"{p}/zaken", endpoint="zaken", methods=["GET"]),
                Rule(f"{p}/instellingen", endpoint="settings", methods=["GET"]),
                Rule(f"{p}/instellingen", endpoint="update_settings", methods=["PUT"]),
            ]
        )

    def dispatch(self, request: Request) -> Response:
        try:
            endpoint, arguments = self.urls.bind_to_environ(request.environ).match()
        except HTTPException as exc:
            code = exc.code or 500
            return self.hardening(
                _json({"fout": {"code": "onbekend", "melding": exc.name}}, status=code)
            )
        try:
            if endpoint == "openapi":
                response = Response(OPENAPI.read_bytes(), mimetype="application/json")
            else:
                with self.database.transaction() as session:
                    now = self.clock()
                    response = getattr(self, f"op_{endpoint}")(request, session, now, **arguments)
        except ApiError as exc:
            response = _json({"fout": {"code": exc.code, "melding": exc.message}}, exc.status)
        response.headers["Cache-Control"] = "no-store"
        return self.hardening(response)

    # --- helpers ---------------------------------------------------------------------------

    def _bsn(self, request: Request, session: Session, now: datetime) -> str:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token:
            found = store.live_session(session, self.hash_token(token.strip()), now, self.idle)
            if found is not None:
                return found.bsn
        raise ApiError(401, "niet-ingelogd", "Log opnieuw in.")

    def _body(self, request: Request) -> dict[str, Any]:
        if request.mimetype != "application/json":
            raise ApiError(415, "geen-json", "Stuur JSON (Content-Type: application/json).")
        try:
            body = json.loads(request.get_data(as_text=True) or "null")
        except ValueError:
            raise ApiError(400, "ongeldige-json", "De JSON is niet leesbaar.") from None
        if not isinstance(body, dict):
            raise ApiError(400, "ongeldige-json", "Verwacht een JSON-object.")
        return body

    def _organisation(self, oin: str) -> dict[str, str]:
        found = self.config.organisations.by_oin.get(oin)
        return {"oin": oin, "naam": found.name if found is not None else f"Organisatie {oin}"}

    def _letter(self, session: Session, bsn: str, bericht_id: str, now: datetime) -> Bericht:
        found = store.letter(session, bsn, bericht_id, now)
        if found is None:
            raise ApiError(404, "onbekend-bericht", "Dit bericht bestaat niet (meer).")
        return found

    def _summary(self, bericht: Bericht) -> dict[str, Any]:
        return {
            "id": bericht.bericht_id,
            "afzender": self._organisation(bericht.leverancier_oin),
            "onderwerp": text.clean(bericht.onderwerp),
            "ontvangen": _iso(bericht.visible_from),
            "gelezen": bericht.opened_at is not None,
            "map": bericht.folder,
            "berichttype": bericht.bericht_type,
            "berichttypeOmschrijving": letter_kind(self.config, bericht)[0],
            "kenmerk": text.clean(bericht.referentie) if bericht.referentie else None,
            "reageerUiterlijk": _iso(bericht.eind_datum_handelingstermijn),
        }

    # --- session ---------------------------------------------------------------------------

    def op_login(self, request: Request, session: Session, now: datetime) -> Response:
        if self.login is None:
            raise ApiError(503, "geen-login", "Inloggen via de API is hier niet beschikbaar.")
        body = self._body(request)
        result = self.login.finish({"bsn": str(body.get("bsn", ""))})
        if result.bsn is None:
            raise ApiError(400, "ongeldig-bsn", result.error or "Ongeldig burgerservicenummer.")
        if not store.activate(session, result.bsn, now):
            raise ApiError(400, "geen-account", "Voor dit burgerservicenummer is geen account.")
        token = secrets.token_urlsafe(32)
        store.create_session(
            session, self.hash_token(token), result.bsn, secrets.token_urlsafe(32), now
        )
        log.info("citizen %s logged in to the API (%s)", masked_bsn(result.bsn), self.login.name)
        minutes = self.config.citizen.session_idle_minutes
        return _json({"token": token, "inactiefNaMinuten": minutes}, 201)

    def op_logout(self, request: Request, session: Session, now: datetime) -> Response:
        self._bsn(request, session, now)
        token = request.headers["Authorization"].partition(" ")[2].strip()
        store.end_session(session, self.hash_token(token))
        return Response(status=204)

    # --- letters ---------------------------------------------------------------------------

    def op_letters(self, request: Request, session: Session, now: datetime) -> Response:
        bsn = self._bsn(request, session, now)
        folder = request.args.get("map", store.INBOX)
        if folder not in store.FOLDERS:
            raise ApiError(400, "onbekende-map", "map is postvak, archief of prullenbak.")
        try:
            number = max(int(request.args.get("pagina", "1")), 1)
        except ValueError:
            raise ApiError(400, "ongeldige-pagina", "pagina is een getal vanaf 1.") from None
        size = self.config.citizen.page_size
        page = store.letters(
            session, bsn, now, folder, request.args.get("afzender") or None, number, size
        )
        return _json(
            {
                "berichten": [self._summary(b) for b in page.berichten],
                "totaal": page.total,
                "ongelezen": page.unread,
                "pagina": number,
                "paginas": max((page.total + size - 1) // size, 1),
            }
        )

    def op_letter(
        self, request: Request, session: Session, now: datetime, bericht_id: str
    ) -> Response:
        bsn = self._bsn(request, session, now)
        found = self._letter(session, bsn, bericht_id, now)
        store.mark_opened(session, found, now)  # fetching the resource is opening the letter
        detail = self._summary(found)
        detail["tekst"] = text.clean(found.tekst) if found.tekst else None
        detail["eigenOmgeving"] = letter_kind(self.config, found)[1]
        detail["bijlagen"] = [
            {
                "soort": a.soort,
                "volgorde": a.volgorde,
                "omschrijving": text.clean(a.omschrijving),
                "grootte": a.size,
                "mediaType": "application/pdf",
                "href": f"{PREFIX}/berichten/{found.bericht_id}/bijlagen/{a.soort}/{a.volgorde}",
            }
            for a in store.attachments(session, found.bericht_id)
        ]
        return _json(detail)

    def op_attachment(
        self,
        request: Request,
        session: Session,
        now: datetime,
        bericht_id: str,
        soort: str,
        volgorde: int,
    ) -> Response:
        bsn = self._bsn(request, session, now)
        found = self._letter(session, bsn, bericht_id, now)
        wanted = next(
            (
                a
                for a in store.attachments(session, found.bericht_id)
                if a.soort == soort and a.volgorde == volgorde
            ),
            None,
        )
        if wanted is None:
            raise ApiError(404, "onbekende-bijlage", "Deze bijlage bestaat niet.")
        try:
            content = self.blobs.get(wanted.sha256)
        except FileNotFoundError:
            raise ApiError(404, "onbekende-bijlage", "Deze bijlage bestaat niet.") from None
        response = Response(content, mimetype="application/pdf")
        response.headers["Content-Disposition"] = f'attachment; filename="bijlage-{volgorde}.pdf"'
        return response

    def op_read(
        self, request: Request, session: Session, now: datetime, bericht_id: str
    ) -> Response:
        bsn = self._bsn(request, session, now)
        store.mark_opened(session, self._letter(session, bsn, bericht_id, now), now)
        return Response(status=204)

    def op_archive(
        self, request: Request, session: Session, now: datetime, bericht_id: str
    ) -> Response:
        bsn = self._bsn(request, session, now)
        store.move(session, self._letter(session, bsn, bericht_id, now), store.ARCHIVE)
        return Response(status=204)

    def op_delete(
        self, request: Request, session: Session, now: datetime, bericht_id: str
    ) -> Response:
        bsn = self._bsn(request, session, now)
        store.move(session, self._letter(session, bsn, bericht_id, now), store.BIN)
        return Response(status=204)

    # --- zaken -----------------------------------------------------------------------------

    def _zaak(self, zaak: Zaak, history: list[ZaakStatus]) -> dict[str, Any]:
        return {
            "id": zaak.id,
            "identificatie": zaak.identificatie,
            "omschrijving": text.clean(zaak.omschrijving),
            "organisatie": self._organisation(zaak.oin),
            "startdatum": _iso(zaak.startdatum),
            "einddatumGepland": _iso(zaak.einddatum_gepland),
            "einddatum": _iso(zaak.einddatum),
            "resultaat": zaak.resultaat,
            "verwijzing": zaak.verwijzing,
            "historie": [
                {
                    "omschrijving": text.clean(s.omschrijving),
                    "datumStatusGezet": _iso(s.datum_status_gezet),
                    "huidig": s.id == zaak.status_id,
                }
                for s in history
            ],
        }

    def op_zaken(self, request: Request, session: Session, now: datetime) -> Response:
        bsn = self._bsn(request, session, now)
        since = now.date() - timedelta(days=self.config.lopende_zaken.retention_days)
        return _json({"zaken": [self._zaak(z, h) for z, h in store.zaken(session, bsn, since)]})

    # --- settings --------------------------------------------------------------------------

    def _senders(self) -> list[Any]:
        return sorted(
            (
                o
                for o in self.config.organisations.by_oin.values()
                if "BerichtVerwerk" in o.services
            ),
            key=lambda o: o.name,
        )

    def _settings(self, session: Session, bsn: str, now: datetime) -> dict[str, Any]:
        account = store.account(session, bsn)
        own = store.settings(session, bsn, now)
        chosen = store.subscriptions(session, bsn)
        return {
            "email": account.email if account is not None else None,
            "herinneringen": own.reminders,
            "organisaties": [
                {
                    "oin": o.oin,
                    "naam": o.name,
                    "verplicht": o.by_law,
                    "aangevinkt": o.by_law or o.oin in chosen,
                }
                for o in self._senders()
            ],
        }

    def op_settings(self, request: Request, session: Session, now: datetime) -> Response:
        return _json(self._settings(session, self._bsn(request, session, now), now))

    def op_update_settings(self, request: Request, session: Session, now: datetime) -> Response:
        bsn = self._bsn(request, session, now)
        body = self._body(request)
        email, reminders, oins = (
            body.get("email"),
            body.get("herinneringen"),
            body.get("organisaties"),
        )
        if email is not None and (not isinstance(email, str) or not plausible_email(email)):
            raise ApiError(400, "ongeldig-email", "email is een e-mailadres of null.")
        if not isinstance(reminders, bool):
            raise ApiError(400, "ongeldige-herinneringen", "herinneringen is true of false.")
        if not isinstance(oins, list) or not all(isinstance(o, str) for o in oins):
            raise ApiError(400, "ongeldige-organisaties", "organisaties is een lijst van OIN's.")
        store.update_contact(session, bsn, email or None, reminders, now)
        choosable = {o.oin for o in self._senders() if not o.by_law}
        store.set_subscriptions(session, bsn, set(oins), choosable, now, "api")
        return _json(self._settings(session, bsn, now))


def plausible_email(address: str) -> bool:
    """A cheap sanity check; whether the address works shows when mail is delivered."""
    local, at, domain = address.rpartition("@")
    return (
        bool(at and local and "." in domain)
        and len(address) <= 254
        and not any(c.isspace() or c in "<>,;\"'" for c in address)
    )
