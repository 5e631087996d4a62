"""Berichten (letters) and their attachments, each distinct content stored once by SHA-256."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from adapter.store.blobs import BlobStore
from adapter.store.models import Bericht, BerichtBijlage, Bijlage


@dataclass(frozen=True)
class NewBericht:
    bericht_id: str
    batch_id: str
    leverancier_oin: str
    bsn: str
    bericht_type: str
    onderwerp: str
    tekst: str | None
    referentie: str | None
    eind_datum_handelingstermijn: datetime | None
    visible_from: datetime
    received_at: datetime
    ebms_message_id: str


@dataclass(frozen=True)
class NewBijlage:
    """One attachment of a Bericht: personal (inside the Bericht) or general (a MIME part)."""

    bericht_id: str
    soort: str  # persoonlijk / algemeen
    volgorde: int
    omschrijving: str
    content: bytes
    pdfa: str | None = None  # the PDF/A part and conformance its XMP declares ("2A"), if any


class Berichten:
    def __init__(self, session: Session, blobs: BlobStore) -> None:
        self.session = session
        self.blobs = blobs

    def existing_ids(self, bericht_ids: Iterable[str]) -> set[str]:
        """Those of these BerichtIDs that are stored already."""
        wanted = list(bericht_ids)
        return set(
            self.session.scalars(select(Bericht.bericht_id).where(Bericht.bericht_id.in_(wanted)))
        )

    def add(self, berichten: Sequence[NewBericht], bijlagen: Sequence[NewBijlage]) -> None:
        """Store accepted letters and their attachments (contents first, fsynced)."""
        self.session.add_all(
            Bericht(
                bericht_id=b.bericht_id,
                batch_id=b.batch_id,
                leverancier_oin=b.leverancier_oin,
                bsn=b.bsn,
                bericht_type=b.bericht_type,
                onderwerp=b.onderwerp,
                tekst=b.tekst,
                referentie=b.referentie,
                eind_datum_handelingstermijn=b.eind_datum_handelingstermijn,
                visible_from=b.visible_from,
                received_at=b.received_at,
                ebms_message_id=b.ebms_message_id,
            )
            for b in berichten
        )
        now = berichten[0].received_at if berichten else None
        if bijlagen and now is not None:
            self._add_bijlagen(bijlagen, now)
        self.session.flush()

    def _add_bijlagen(self, bijlagen: Sequence[NewBijlage], now: datetime) -> None:
        """Each distinct content written and hashed once, its row inserted once, then the links.

        A batch shares its general attachment among all its letters, and concurrent batches
        may store the same PDF first at the same moment: ON CONFLICT DO NOTHING lets both
        succeed.
        """
        digests: dict[bytes, str] = {}
        pdfa: dict[bytes, str | None] = {}
        for bijlage in bijlagen:
            if bijlage.content not in digests:
                # Written and fsynced before the transaction that refers to it commits.
                digests[bijlage.content] = self.blobs.put(bijlage.content)
                pdfa[bijlage.content] = bijlage.pdfa
        known = set(
            self.session.scalars(select(Bijlage.sha256).where(Bijlage.sha256.in_(digests.values())))
        )
        new = [
            {
                "sha256": digest,
                "size": len(content),
                "media_type": "application/pdf",
                "pdfa": pdfa[content],
                "stored_at": now,
            }
            for content, digest in digests.items()
            if digest not in known
        ]
        if new:
            dialect = self.session.get_bind().dialect.name
            insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
            self.session.execute(
                insert(Bijlage).values(new).on_conflict_do_nothing(index_elements=["sha256"])
            )
        self.session.add_all(
            BerichtBijlage(
                bericht_id=b.bericht_id,
                soort=b.soort,
                volgorde=b.volgorde,
                sha256=digests[b.content],
                omschrijving=b.omschrijving,
            )
            for b in bijlagen
        )
