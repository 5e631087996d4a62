"""The [citizen], [mail] and [notifications] sections: defaults, and errors naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.config import ConfigError, load_config
from tests.conftest import CONF
from tests.test_citizen_support import write_citizen_config


def test_the_example_configuration_enables_the_dev_login_and_files_mail() -> None:
    config = load_config(CONF / "adapter.toml", environ={})
    assert config.citizen.dev_login is True
    assert (config.citizen.host, config.citizen.port) == ("127.0.0.1", 8080)
    assert config.mail.mode == "files"
    assert config.mail.directory == config.base_dir / "var" / "mail"
    assert config.notifications.reminder_days == 21


def test_without_the_sections_the_defaults_apply_and_dev_login_is_off(tmp_path: Path) -> None:
    file = write_citizen_config(tmp_path, "sqlite://")
    text = file.read_text(encoding="utf-8")
    start = text.index("[citizen]")
    end = text.index("[files]")
    file.write_text(text[:start] + text[end:], encoding="utf-8")
    config = load_config(file, environ={})
    assert config.citizen.dev_login is False
    assert config.citizen.session_idle_minutes == 15
    assert config.citizen.public_url == "http://127.0.0.1:8080"
    assert (config.mail.mode, config.mail.security, config.mail.password_env) == (
        "files",
        "none",
        None,
    )
    assert config.notifications.interval_seconds == 60


@pytest.mark.parametrize(
    ("section", "line", "key"),
    [
        ("[citizen]", "colour = 1", "citizen.colour"),
        ("[mail]", 'security = "ssl"', "mail.security"),
        ("[mail]", 'mode = "sendmail"', "mail.mode"),
        ("[notifications]", "reminder_days = 0", "notifications.reminder_days"),
        ("[citizen]", 'public_url = "ftp://x"', "citizen.public_url"),
    ],
)
def test_a_wrong_key_or_value_names_file_and_key(
    tmp_path: Path, section: str, line: str, key: str
) -> None:
    file = write_citizen_config(tmp_path, "sqlite://")
    name = line.split(" = ")[0]
    # Drop the key from the section (TOML refuses a key twice), then set the wrong value.
    body = file.read_text(encoding="utf-8")
    head, _, rest = body.partition(section)
    rest = "\n".join(r for r in rest.splitlines() if not r.startswith(f"{name} = "))
    file.write_text(f"{head}{section}\n{line}{rest}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(file, environ={})
    assert caught.value.key == key
    assert caught.value.file == str(file.resolve())
