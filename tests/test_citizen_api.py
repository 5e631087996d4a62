"""The JSON API for the Berichtenbox app; every answer is validated against its OpenAPI document."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from sqlalchemy import select
from werkzeug.test import Client, TestResponse

from adapter.citizen.app import CitizenApp
from adapter.store.models import Bericht, SubscriptionChange
from tests.conftest import BELASTINGDIENST, GEMEENTE, postgres_schema
from tests.test_citizen_support import ACTIVE, SECOND, World, make_world

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PDF = b"%PDF-1.4\n%api\ntrailer<<>>\nstartxref\n0\n%%EOF\n"
STRIKT = "00000099000000003000"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'adapter.db'}"
        return
    with postgres_schema("api") as url:
        yield url


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass
class Api:
    world: World
    client: Client
    clock: list[datetime]
    document: dict[str, Any]
    token: str = ""

    def call(
        self,
        method: str,
        path: str,
        template: str,
        body: Any = None,
        *,
        token: str | None = None,
        **kw: Any,
    ) -> TestResponse:
        """Call and validate the answer against the operation's response in the document."""
        headers = {}
        if token if token is not None else self.token:
            headers["Authorization"] = f"Bearer {token if token is not None else self.token}"
        if body is not None:
            kw["data"] = json.dumps(body)
            kw["content_type"] = "application/json"
        response = self.client.open(path, method=method, headers=headers, **kw)
        operation = self.document["paths"][template][method.lower()]
        assert str(response.status_code) in operation["responses"], (
            f"{method} {template} answered {response.status_code}, not in the document"
        )
        content = operation["responses"][str(response.status_code)].get("content", {})
        if "application/json" in content:
            assert response.mimetype == "application/json"
            pointer = _pointer(
                "paths",
                template,
                method.lower(),
                "responses",
                str(response.status_code),
                "content",
                "application/json",
                "schema",
            )
            registry: Registry[Any] = Registry().with_resource(
                "urn:openapi", Resource.from_contents(self.document, DRAFT202012)
            )
            Draft202012Validator({"$ref": f"urn:openapi#/{pointer}"}, registry=registry).validate(
                response.get_json()
            )
        elif "application/pdf" in content:
            assert response.mimetype == "application/pdf"
        else:
            assert response.data == b""
        return response

    def login(self, bsn: str = ACTIVE) -> str:
        response = self.call("POST", "/api/v1/sessie", "/api/v1/sessie", {"bsn": bsn}, token="")
        assert response.status_code == 201
        self.token = response.get_json()["token"]
        return self.token


@pytest.fixture
def api(tmp_path: Path, database_url: str) -> Iterator[Api]:
    world = make_world(tmp_path, database_url)
    clock = [NOW]
    client = Client(CitizenApp(world.config, world.database, clock=lambda: clock[0]))
    document = client.get("/api/v1/openapi.json").get_json()
    try:
        yield Api(world, client, clock, document)
    finally:
        world.database.dispose()


LETTERS, LETTER = "/api/v1/berichten", "/api/v1/berichten/{berichtId}"


def test_the_openapi_document_is_served_and_valid(api: Api) -> None:
    validate_openapi(api.document)
    assert api.document["openapi"].startswith("3.")


def test_without_a_token_the_api_answers_401(api: Api) -> None:
    assert api.call("GET", LETTERS, LETTERS).status_code == 401
    assert api.call("GET", LETTERS, LETTERS, token="made-up").status_code == 401


def test_the_pages_session_cookie_does_not_open_the_api(api: Api) -> None:
    page = api.client.get("/login").text
    token = page.split('name="csrf" value="')[1].split('"')[0]
    api.client.post("/login", data={"csrf": token, "bsn": ACTIVE})
    assert api.call("GET", LETTERS, LETTERS, token="").status_code == 401


def test_a_bad_bsn_gets_400(api: Api) -> None:
    response = api.call("POST", "/api/v1/sessie", "/api/v1/sessie", {"bsn": "123"}, token="")
    assert response.status_code == 400
    assert response.get_json()["fout"]["code"] == "ongeldig-bsn"


def test_letters_list_one_attachment_and_read_state(api: Api) -> None:
    letter = api.world.letter(
        ACTIVE, NOW - timedelta(hours=1), onderwerp="Via de app", pdfs=[("Brief", PDF)]
    )
    api.world.letter(ACTIVE, NOW - timedelta(hours=2), oin=BELASTINGDIENST)
    api.world.letter(ACTIVE, NOW + timedelta(hours=2), onderwerp="Nog niet")
    api.login()
    listed = api.call("GET", LETTERS, LETTERS).get_json()
    assert (listed["totaal"], listed["ongelezen"]) == (2, 2)
    assert listed["berichten"][0]["onderwerp"] == "Via de app"
    assert listed["berichten"][0]["afzender"] == {"oin": GEMEENTE, "naam": "Gemeente Voorbeeldstad"}

    one = api.call("GET", f"{LETTERS}/{letter}", LETTER).get_json()
    assert one["tekst"] == "Geachte heer/mevrouw,\\r\\nZie de bijlage."
    [bijlage] = one["bijlagen"]
    pdf = api.call(
        "GET", bijlage["href"], "/api/v1/berichten/{berichtId}/bijlagen/{soort}/{volgorde}"
    )
    assert pdf.data == PDF
    with api.world.database.transaction() as session:
        assert session.get_one(Bericht, letter).opened_at == NOW
    assert api.call("GET", LETTERS, LETTERS).get_json()["ongelezen"] == 1


def test_a_letter_carries_its_berichttype_name_and_the_filled_link(api: Api) -> None:
    # conf/organisations.toml: the Gemeente's BESLUIT has a link template, ZAAK none.
    linked = api.world.letter(ACTIVE, NOW - timedelta(hours=1), referentie="AB 12 & C")
    plain = api.world.letter(ACTIVE, NOW - timedelta(hours=2), bericht_type="ZAAK")
    api.login()
    listed = api.call("GET", LETTERS, LETTERS).get_json()["berichten"]
    assert [(b["berichttype"], b["berichttypeOmschrijving"]) for b in listed] == [
        ("BESLUIT", "Besluit"),
        ("ZAAK", "Bericht over uw zaak"),
    ]
    one = api.call("GET", f"{LETTERS}/{linked}", LETTER).get_json()
    assert one["berichttypeOmschrijving"] == "Besluit"
    assert one["kenmerk"] == "AB 12 & C"
    assert one["eigenOmgeving"] == (
        "https://mijn.voorbeeldstad.example/berichten?bron=mijnoverheid&kenmerk=AB%2012%20%26%20C"
    )
    assert api.call("GET", f"{LETTERS}/{plain}", LETTER).get_json()["eigenOmgeving"] is None


def test_mark_as_read_archive_and_delete(api: Api) -> None:
    letter = api.world.letter(ACTIVE, NOW - timedelta(hours=1))
    api.login()
    read = api.call("POST", f"{LETTERS}/{letter}/gelezen", LETTER + "/gelezen")
    assert read.status_code == 204
    assert (
        api.call("POST", f"{LETTERS}/{letter}/archiveren", LETTER + "/archiveren").status_code
        == 204
    )
    archived = api.call("GET", f"{LETTERS}?map=archief", LETTERS).get_json()
    assert [b["id"] for b in archived["berichten"]] == [letter]
    assert archived["berichten"][0]["gelezen"] is True
    assert api.call("DELETE", f"{LETTERS}/{letter}", LETTER).status_code == 204
    binned = api.call("GET", f"{LETTERS}?map=prullenbak", LETTERS).get_json()
    assert binned["totaal"] == 1


def test_another_citizens_letter_is_unknown(api: Api) -> None:
    other = api.world.letter(SECOND, NOW - timedelta(hours=1))
    api.login()
    assert api.call("GET", f"{LETTERS}/{other}", LETTER).status_code == 404
    assert api.call("DELETE", f"{LETTERS}/{other}", LETTER).status_code == 404
    assert api.call("GET", f"{LETTERS}?map=elders", LETTERS).status_code == 400


def test_zaken_come_with_their_history(api: Api) -> None:
    api.world.zaak_status(ACTIVE, NOW - timedelta(days=1), status="Ontvangen")
    api.login()
    [zaak] = api.call("GET", "/api/v1/zaken", "/api/v1/zaken").get_json()["zaken"]
    assert zaak["organisatie"]["naam"] == "Gemeente Voorbeeldstad"
    assert zaak["historie"] == [
        {
            "omschrijving": "Ontvangen",
            "datumStatusGezet": (NOW - timedelta(days=1)).isoformat(),
            "huidig": True,
        }
    ]


def test_settings_read_and_change_with_by_law_kept(api: Api) -> None:
    api.login()
    path = "/api/v1/instellingen"
    before = api.call("GET", path, path).get_json()
    flags = {o["oin"]: (o["verplicht"], o["aangevinkt"]) for o in before["organisaties"]}
    assert flags == {
        BELASTINGDIENST: (True, True),
        GEMEENTE: (False, True),
        STRIKT: (False, False),
    }
    after = api.call(
        "PUT", path, path, {"email": None, "herinneringen": False, "organisaties": [STRIKT]}
    ).get_json()
    flags = {o["oin"]: o["aangevinkt"] for o in after["organisaties"]}
    assert flags == {BELASTINGDIENST: True, GEMEENTE: False, STRIKT: True}
    assert (after["email"], after["herinneringen"]) == (None, False)
    with api.world.database.transaction() as session:
        sources = set(session.scalars(select(SubscriptionChange.source)))
    assert sources == {"api"}
    bad = api.call("PUT", path, path, {"email": "x", "herinneringen": True, "organisaties": []})
    assert bad.status_code == 400


def test_the_token_expires_after_the_idle_time_and_at_logout(api: Api) -> None:
    api.login()
    api.clock[0] += timedelta(minutes=16)
    assert api.call("GET", LETTERS, LETTERS).status_code == 401
    api.login()
    assert api.call("DELETE", "/api/v1/sessie", "/api/v1/sessie").status_code == 204
    assert api.call("GET", LETTERS, LETTERS).status_code == 401
