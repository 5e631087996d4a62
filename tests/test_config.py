"""Configuration errors name the file, the key and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.config import BerichtType, ConfigError, load_config, load_organisations
from tests.conftest import CONF, ROOT

ORG = '[[organisation]]\noin = "00000099000000002000"\nname = "X"\n'


def test_the_example_configuration_is_valid() -> None:
    config = load_config(CONF / "adapter.toml", environ={})
    assert config.server.port == 8443
    assert config.database_url == f"sqlite:///{ROOT / 'var' / 'adapter.db'}"
    assert config.organisations.by_oin["00000099000000001000"].by_law is True
    assert config.organisations.find(None, "12345678").oin == "00000099000000002000"  # type: ignore[union-attr]


def test_database_url_from_the_environment_overrides_the_file() -> None:
    url = "postgresql+psycopg://someone@db.internal:5432/adapter"
    assert load_config(CONF / "adapter.toml", environ={"DATABASE_URL": url}).database_url == url


def write(tmp_path: Path, adapter: str, organisations: str | None = None) -> Path:
    conf = tmp_path / "conf"
    conf.mkdir(exist_ok=True)
    (conf / "organisations.toml").write_text(
        organisations if organisations is not None else (CONF / "organisations.toml").read_text()
    )
    (conf / "adapter.toml").write_text(adapter)
    return conf / "adapter.toml"


BASE = (CONF / "adapter.toml").read_text()


@pytest.mark.parametrize(
    ("old", "new", "key", "reason"),
    [
        ('listen = "127.0.0.1:8443"', 'listen = "8443"', "server.listen", "must be HOST:PORT"),
        (
            'public_url = "https://127.0.0.1:8443"',
            'public_url = "http://x"',
            "server.public_url",
            "must be an https:// URL",
        ),
        ("workers = 2", "workers = 0", "server.workers", "must be greater than 0"),
        ("workers = 2", 'workers = "two"', "server.workers", "must be a int, not 'two'"),
        (
            'url = "sqlite:///var/adapter.db"',
            'url = "mysql://x/y"',
            "database.url",
            "only sqlite and postgresql are supported",
        ),
        (
            'algorithm = "ecdsa-sha256"',
            'algorithm = "rsa-sha1"',
            "receipts.algorithm",
            "must be one of",
        ),
        (
            'receiver_oin = "00000004003214345001"',
            'receiver_oin = "123"',
            "receipts.receiver_oin",
            "must be a 20-digit OIN",
        ),
        (
            "max_klanten = 250",
            "max_klanten = 250\nmax_klanen = 3",
            "limits.max_klanen",
            "unknown key",
        ),
        (
            "wss_max_age_seconds = 300",
            "wss_max_age_seconds = 0",
            "limits.wss_max_age_seconds",
            "must be greater than 0",
        ),
        (
            '# certificate = "certs/wss.pem"',
            'certificate = "certs/wss.pem"',
            "wss.private_key",
            "give both certificate and private_key, or neither",
        ),
    ],
)
def test_a_bad_adapter_value_names_file_key_and_reason(
    tmp_path: Path, old: str, new: str, key: str, reason: str
) -> None:
    assert old in BASE
    file = write(tmp_path, BASE.replace(old, new))
    with pytest.raises(ConfigError) as caught:
        load_config(file, environ={})
    assert caught.value.file == str(file)
    assert caught.value.key == key
    assert caught.value.reason.startswith(reason)


@pytest.mark.parametrize(
    ("organisations", "key", "reason"),
    [
        ('[[organisation]]\nname = "X"', "organisation #1.oin", "is required"),
        (
            '[[organisation]]\noin = "1234"\nname = "X"',
            "organisation #1.oin",
            "must be a 20-digit OIN",
        ),
        (
            '[[organisation]]\noin = "00000099000000002000"\nname = "X"\nservices = ["Fax"]',
            "organisation #1 (00000099000000002000).services",
            "'Fax' is not one of",
        ),
        (
            '[[organisation]]\noin = "00000099000000002000"\nname = "X"\nwus_profile = "2W-be-E"',
            "organisation #1 (00000099000000002000).wus_profile",
            "must be one of",
        ),
        (
            ORG + 'wus_profile = "2W-be"\nreceipt = "wsse"',
            "organisation #1 (00000099000000002000).receipt",
            '"wsse" needs wus_profile "2W-be-S" or "2W-be-SE"',
        ),
        (
            '[[organisation]]\noin = "00000099000000002000"\nname = "X"\n'
            '[[organisation]]\noin = "00000099000000002000"\nname = "Y"',
            "organisation #2 (00000099000000002000).oin",
            "00000099000000002000 is listed twice",
        ),
        (
            '[[organisation]]\noin = "00000099000000002000"\nname = "X"\n'
            'bericht_types = ["TOOLONGCODE"]',
            "organisation #1 (00000099000000002000).bericht_types",
            "'TOOLONGCODE' is not 1-8 characters",
        ),
        (
            '[[organisation]]\noin = "00000099000000002000"\nnaam = "X"',
            "organisation #1 (00000099000000002000).name",
            "is required",
        ),
        ("[organisatie]", "organisatie", "unknown key"),
        (
            ORG + '[[organisation.bericht_type]]\ncode = "BESLUIT"\nomschrijving = "Besluit"\n'
            'link = "http://mijn.example/{referentie}"',
            "organisation #1 (00000099000000002000).bericht_type #1.link",
            "must be an https:// URL",
        ),
        (
            ORG + '[[organisation.bericht_type]]\ncode = "BESLUIT"\nomschrijving = "Besluit"\n'
            'link = "https://mijn.example/{referentie}/{bsn}"',
            "organisation #1 (00000099000000002000).bericht_type #1.link",
            "may hold no placeholder but {referentie}",
        ),
        (
            ORG + '[[organisation.bericht_type]]\ncode = "BESLUIT"\nomschrijving = "Besluit"\n'
            'link = "https://{referentie}.mijn.example/"',
            "organisation #1 (00000099000000002000).bericht_type #1.link",
            "{referentie} may not be in the host name",
        ),
        (
            ORG + '[[organisation.bericht_type]]\ncode = "BESLUIT"\nomschrijving = "Besluit"\n'
            "actief = false",
            "organisation #1 (00000099000000002000).bericht_type #1.actief",
            "unknown key",
        ),
        (
            ORG + '[[organisation.bericht_type]]\ncode = "BESLUIT"',
            "organisation #1 (00000099000000002000).bericht_type #1.omschrijving",
            "is required",
        ),
        (
            ORG + '[[organisation.bericht_type]]\ncode = "BESLUIT01"\nomschrijving = "Besluit"',
            "organisation #1 (00000099000000002000).bericht_type #1.code",
            "'BESLUIT01' is not 1-8 characters",
        ),
        (
            ORG + 'bericht_types = ["BESLUIT"]\n'
            '[[organisation.bericht_type]]\ncode = "BESLUIT"\nomschrijving = "Besluit"',
            "organisation #1 (00000099000000002000).bericht_type #1.code",
            "BESLUIT is listed twice",
        ),
        (
            ORG + '[[organisation.bericht_type]]\ncode = "ZAAK"\nomschrijving = "Zaak"\n'
            '[[organisation.bericht_type]]\ncode = "ZAAK"\nomschrijving = "Nog eens"',
            "organisation #1 (00000099000000002000).bericht_type #2.code",
            "ZAAK is listed twice",
        ),
        (
            ORG + '[[organisation.bericht_types]]\ncode = "ZAAK"\nomschrijving = "Zaak"',
            "organisation #1 (00000099000000002000).bericht_types",
            "lists codes only; records go in [[organisation.bericht_type]] tables",
        ),
    ],
)
def test_a_bad_organisation_names_file_key_and_reason(
    tmp_path: Path, organisations: str, key: str, reason: str
) -> None:
    file = tmp_path / "organisations.toml"
    file.write_text(organisations)
    with pytest.raises(ConfigError) as caught:
        load_organisations(file)
    assert (caught.value.file, caught.value.key) == (str(file), key)
    assert caught.value.reason.startswith(reason)


def test_berichttypes_may_be_records_beside_the_flat_list(tmp_path: Path) -> None:
    file = tmp_path / "organisations.toml"
    file.write_text(
        ORG
        + 'bericht_types = ["ZAAK"]\n'
        + '[[organisation.bericht_type]]\ncode = "BESLUIT"\nomschrijving = "Besluit"\n'
        + 'link = "https://mijn.example/post?bron=mo&kenmerk={referentie}"\n'
        + '[[organisation.bericht_type]]\ncode = "OUD"\nomschrijving = "Vervallen"\n'
        + "active = false\n"
    )
    org = load_organisations(file).by_oin["00000099000000002000"]
    assert org.bericht_types == {"ZAAK", "BESLUIT"}  # the active codes
    assert org.bericht_type("ZAAK") == BerichtType("ZAAK", "ZAAK", True, None)
    besluit = org.bericht_type("BESLUIT")
    assert besluit is not None and besluit.omschrijving == "Besluit" and besluit.active
    # The whole Referentie is data: quoted, so it can add no parameter, path or fragment.
    assert besluit.link_for("AB 12&x=1/#") == (
        "https://mijn.example/post?bron=mo&kenmerk=AB%2012%26x%3D1%2F%23"
    )
    assert besluit.link_for(None) is None and besluit.link_for("") is None
    oud = org.bericht_type("OUD")
    assert oud is not None and oud.active is False and "OUD" not in org.bericht_types
    assert org.bericht_type("ONBEKEND") is None


def test_the_example_organisations_use_both_forms() -> None:
    organisations = load_organisations(CONF / "organisations.toml").by_oin
    strikt, gemeente = organisations["00000099000000003000"], organisations["00000099000000002000"]
    assert strikt.bericht_type("BESLUIT") == BerichtType("BESLUIT", "BESLUIT")
    assert gemeente.bericht_types == {"BESLUIT", "ZAAK"}
    herinner = gemeente.bericht_type("HERINNER")
    assert herinner is not None and herinner.active is False
    besluit = gemeente.bericht_type("BESLUIT")
    assert besluit is not None and besluit.link_for("Z 1") is not None
    belastingdienst = organisations["00000099000000001000"]
    assert belastingdienst.bericht_types == {"AANSLAG", "BESLUIT"}


def test_toml_syntax_errors_name_the_file(tmp_path: Path) -> None:
    file = write(tmp_path, "[server\nlisten = 1")
    with pytest.raises(ConfigError, match=r"adapter\.toml: -: not valid TOML"):
        load_config(file, environ={})
