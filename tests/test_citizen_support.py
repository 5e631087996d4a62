"""Building blocks shared by the citizen-side tests: a configuration, citizens, letters, zaken.

No tests live here; the data is put in through the ORM models because what is tested is the
citizen side reading it, not the intake that normally writes it.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from adapter.config import Config, load_config
from adapter.store.blobs import LocalBlobStore
from adapter.store.db import Database
from adapter.store.models import (
    Account,
    Bericht,
    BerichtBijlage,
    Bijlage,
    Notification,
    Subscription,
    Zaak,
    ZaakStatus,
)
from tests.conftest import BELASTINGDIENST, CONF, GEMEENTE, ROOT

ACTIVE = "999993653"  # active, e-mail, subscribed to the Gemeente
NO_EMAIL = "111222333"  # active, subscribed, no e-mail address
INACTIVE = "999990032"  # an account never activated
SECOND = "999990019"  # active, e-mail, not subscribed


def write_citizen_config(
    directory: Path,
    database_url: str,
    *,
    smtp_port: int | None = None,
    citizen_port: int = 8080,
    extra: str = "",
) -> Path:
    """An adapter.toml for the citizen side; certificate paths are never opened by it."""
    conf = directory / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    shutil.copy(CONF / "organisations.toml", conf / "organisations.toml")
    mail = (
        f'mode = "smtp"\nhost = "127.0.0.1"\nport = {smtp_port}\nsecurity = "none"\n'
        if smtp_port
        else f'mode = "files"\ndirectory = "{directory / "mail"}"\n'
    )
    config = conf / "adapter.toml"
    config.write_text(
        f"""
base_dir = "{ROOT}"
[server]
public_url = "https://127.0.0.1:8443"
[database]
url = "{database_url}"
[tls]
certificate = "certs/server.pem"
private_key = "certs/server.key"
trust_anchors = "certs/root-ca.pem"
intermediates = "certs/chain.pem"
[receipts]
certificate = "certs/receipt-signing.pem"
private_key = "certs/receipt-signing.key"
[ebms]
blob_dir = "{directory / "blobs"}"
[citizen]
listen = "127.0.0.1:{citizen_port}"
public_url = "http://127.0.0.1:{citizen_port}"
dev_login = true
page_size = 5
[mail]
{mail}from = "noreply@mijnoverheid.test"
timeout_seconds = 5
[notifications]
interval_seconds = 1
reminder_days = 21
retry_seconds = 60
retry_max_seconds = 600
[files]
organisations = "{conf / "organisations.toml"}"
{extra}
""",
        encoding="utf-8",
    )
    return config


@dataclass
class World:
    """One database with the test citizens, and helpers to give them post and zaken."""

    config: Config
    database: Database

    @property
    def blobs(self) -> LocalBlobStore:
        return LocalBlobStore(self.config.ebms.blob_dir)

    def citizens(self) -> None:
        now = datetime(2026, 1, 1, tzinfo=UTC)
        with self.database.transaction() as session:
            for bsn, active, email in (
                (ACTIVE, True, "burger.een@example.nl"),
                (NO_EMAIL, True, None),
                (INACTIVE, False, None),
                (SECOND, True, "burger.twee@example.nl"),
            ):
                if session.get(Account, bsn) is None:
                    session.add(Account(bsn=bsn, active=active, email=email, updated_at=now))
            session.flush()
            for bsn in (ACTIVE, NO_EMAIL):
                if session.get(Subscription, (bsn, GEMEENTE)) is None:
                    session.add(Subscription(bsn=bsn, oin=GEMEENTE, created_at=now))

    def letter(
        self,
        bsn: str,
        visible_from: datetime,
        *,
        oin: str = GEMEENTE,
        onderwerp: str = "Uw aanslag gemeentelijke belastingen",
        tekst: str | None = "Geachte heer/mevrouw,\\r\\nZie de bijlage.",
        referentie: str | None = "REF-1",
        bericht_type: str = "BESLUIT",
        eind: datetime | None = None,
        pdfs: list[tuple[str, bytes]] | None = None,
        algemeen: list[tuple[str, bytes]] | None = None,
    ) -> str:
        bericht_id = str(uuid.uuid4())
        with self.database.transaction() as session:
            session.add(
                Bericht(
                    bericht_id=bericht_id,
                    batch_id=str(uuid.uuid4()),
                    leverancier_oin=oin,
                    bsn=bsn,
                    bericht_type=bericht_type,
                    onderwerp=onderwerp,
                    tekst=tekst,
                    referentie=referentie,
                    eind_datum_handelingstermijn=eind,
                    visible_from=visible_from,
                    received_at=min(visible_from, visible_from - timedelta(minutes=1)),
                    ebms_message_id=f"{uuid.uuid4()}@test",
                )
            )
            session.flush()
            for soort, items in (("persoonlijk", pdfs or []), ("algemeen", algemeen or [])):
                for volgorde, (omschrijving, content) in enumerate(items, start=1):
                    digest = self.blobs.put(content)
                    if session.get(Bijlage, digest) is None:
                        session.add(
                            Bijlage(
                                sha256=digest,
                                size=len(content),
                                media_type="application/pdf",
                                stored_at=visible_from,
                            )
                        )
                        session.flush()
                    session.add(
                        BerichtBijlage(
                            bericht_id=bericht_id,
                            soort=soort,
                            volgorde=volgorde,
                            sha256=digest,
                            omschrijving=omschrijving,
                        )
                    )
        return bericht_id

    def zaak_status(
        self,
        bsn: str,
        at: datetime,
        *,
        identificatie: str | None = None,
        omschrijving: str = "Aanvraag omgevingsvergunning",
        status: str = "In behandeling",
        einddatum: date | None = None,
    ) -> int:
        """A zaak with a status that became current, and the notification intake records."""
        with self.database.transaction() as session:
            zaak = Zaak(
                oin=GEMEENTE,
                identificatie=identificatie or f"Z-{uuid.uuid4().hex[:10]}",
                omschrijving=omschrijving,
                toelichting="Verbouwing Dorpsstraat 1",
                startdatum=date(2026, 1, 10),
                einddatum=einddatum,
                verwijzing="https://voorbeeldstad.example/zaken/1",
                initiator_bsn=bsn,
                created_at=at,
                updated_at=at,
            )
            session.add(zaak)
            session.flush()
            row = ZaakStatus(
                zaak_id=zaak.id,
                omschrijving=status,
                datum_status_gezet=at,
                received_at=at,
            )
            session.add(row)
            session.flush()
            zaak.status_id = row.id
            session.add(
                Notification(bsn=bsn, kind="zaak-status", zaak_status_id=row.id, created_at=at)
            )
            return zaak.id


def make_world(directory: Path, database_url: str, **options: object) -> World:
    config = load_config(
        write_citizen_config(directory, database_url, **options),  # type: ignore[arg-type]
        environ={},
    )
    database = Database(config.database_url)
    database.create_schema()
    world = World(config, database)
    world.citizens()
    return world


__all__ = ["BELASTINGDIENST", "GEMEENTE", "World", "make_world", "write_citizen_config"]
