"""The login seam: who the citizen is, established once; the session takes it from there.

Today only the development login exists (a BSN typed into a form, with `citizen.dev_login =
true`). A DigiD SAML login plugs in as another `LoginMethod`: its `start` sends the browser
to DigiD and its `finish` turns the returned assertion into a BSN; the rest of the app only
ever sees that BSN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from adapter.bsn import is_bsn


@dataclass(frozen=True)
class LoginResult:
    bsn: str | None
    error: str | None = None


class LoginMethod(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def banner(self) -> str | None:
        """Shown on every page, e.g. to say that this is no real DigiD."""

    def finish(self, form: dict[str, str]) -> LoginResult: ...


class DevLogin:
    """Login by BSN without any proof. Never enabled unless the configuration asks for it."""

    name = "dev"
    banner = "Ontwikkel-login — geen DigiD"

    def finish(self, form: dict[str, str]) -> LoginResult:
        value = "".join(form.get("bsn", "").split())
        if not is_bsn(value):
            return LoginResult(None, "Vul een geldig burgerservicenummer in (9 cijfers).")
        return LoginResult(value)
