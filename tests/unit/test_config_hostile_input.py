"""The configuration of issue 14's hostile-input checks: the parser limits in `[limits]` and
`require_pdfa` per organisation, with their defaults and the errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.config import ConfigError, load_config, load_organisations
from adapter.soap.xml import XmlLimits
from adapter.wiring import xml_limits
from tests.conftest import CONF

BASE = (CONF / "adapter.toml").read_text()
ORG = '[[organisation]]\noin = "00000099000000002000"\nname = "X"\n'


def write(tmp_path: Path, adapter: str) -> Path:
    conf = tmp_path / "conf"
    conf.mkdir(exist_ok=True)
    (conf / "organisations.toml").write_text((CONF / "organisations.toml").read_text())
    (conf / "adapter.toml").write_text(adapter)
    return conf / "adapter.toml"


def test_the_defaults_are_the_parsers_and_the_text_limit_follows_the_message_cap() -> None:
    config = load_config(CONF / "adapter.toml", environ={})
    assert xml_limits(config) == XmlLimits()
    assert config.limits.max_xml_text_length == config.limits.max_ebms_message_bytes


def test_a_larger_message_cap_raises_the_unset_text_limit_with_it(tmp_path: Path) -> None:
    adapter = BASE.replace(
        "max_ebms_message_bytes = 104857600", "max_ebms_message_bytes = 209715200"
    )
    config = load_config(write(tmp_path, adapter), environ={})
    assert xml_limits(config).max_text_length == 209_715_200


def test_configured_limits_reach_the_parser(tmp_path: Path) -> None:
    adapter = BASE.replace(
        "max_xml_attributes = 64", "max_xml_attributes = 10\nmax_xml_text_length = 1000000"
    )
    limits = xml_limits(load_config(write(tmp_path, adapter), environ={}))
    assert (limits.max_attributes, limits.max_text_length) == (10, 1_000_000)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("max_xml_depth = 64", "max_xml_depth = 0", "limits.max_xml_depth"),
        ("max_xml_elements = 100000", "max_xml_elements = -1", "limits.max_xml_elements"),
        ("max_xml_attributes = 64", 'max_xml_attributes = "64"', "limits.max_xml_attributes"),
    ],
)
def test_a_bad_limit_names_its_key(tmp_path: Path, old: str, new: str, key: str) -> None:
    assert old in BASE
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, BASE.replace(old, new)), environ={})
    assert caught.value.key == key


def test_require_pdfa_is_off_unless_an_organisation_sets_it(tmp_path: Path) -> None:
    file = tmp_path / "organisations.toml"
    file.write_text(ORG + "require_pdfa = true\n" + ORG.replace("2000", "3000"))
    organisations = load_organisations(file)
    assert organisations.by_oin["00000099000000002000"].require_pdfa is True
    assert organisations.by_oin["00000099000000003000"].require_pdfa is False


def test_require_pdfa_must_be_a_boolean(tmp_path: Path) -> None:
    file = tmp_path / "organisations.toml"
    file.write_text(ORG + 'require_pdfa = "ja"\n')
    with pytest.raises(ConfigError) as caught:
        load_organisations(file)
    assert (caught.value.key, caught.value.reason) == (
        "organisation #1 (00000099000000002000).require_pdfa",
        "must be a bool, not 'ja'",
    )
