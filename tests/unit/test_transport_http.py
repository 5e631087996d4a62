"""Reading a request body within its limit (adapter.transport.http), without a socket."""

from __future__ import annotations

import io

import pytest

from adapter.errors import BodyTooLarge, BodyUnreadable
from adapter.transport.http import read_body


class _Stream(io.BytesIO):
    """A wsgi.input that counts what was read from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.taken = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.taken += len(chunk)
        return chunk


def _environ(data: bytes, length: str | None) -> dict[str, object]:
    environ: dict[str, object] = {"wsgi.input": _Stream(data)}
    if length is not None:
        environ["CONTENT_LENGTH"] = length
    return environ


def test_a_body_within_the_limit_is_read_whole() -> None:
    assert read_body(_environ(b"<a/>", "4"), 10) == b"<a/>"


def test_a_body_without_content_length_is_read_up_to_one_byte_past_the_limit() -> None:
    assert read_body(_environ(b"x" * 10, None), 10) == b"x" * 10
    with pytest.raises(BodyTooLarge, match="groter dan 10 bytes"):
        read_body(_environ(b"x" * 11, None), 10)


def test_a_declared_oversize_is_refused_unread_with_connection_close() -> None:
    environ = _environ(b"x" * 50, "50")
    with pytest.raises(BodyTooLarge, match="50 bytes; de grens is 10") as refused:
        read_body(environ, 10)
    assert environ["wsgi.input"].taken == 0  # type: ignore[attr-defined]
    assert ("Connection", "close") in refused.value.http_headers


@pytest.mark.parametrize(("data", "length"), [(b"", "0"), (b"", None), (b"abc", "drie")])
def test_an_empty_body_or_a_bad_content_length_is_unreadable(
    data: bytes, length: str | None
) -> None:
    with pytest.raises(BodyUnreadable):
        read_body(_environ(data, length), 10)
