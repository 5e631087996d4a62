"""The blob store's interface, its local directory, and the `[blobs]` configuration."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from adapter.config import BlobConfig, ConfigError, load_config
from adapter.store.blobs import (
    UNFINISHED_AFTER_SECONDS,
    BlobMissing,
    LocalBlobStore,
    S3BlobStore,
    open_blob_store,
)
from tests.conftest import CONF

BASE = (CONF / "adapter.toml").read_text()
LOCAL = 'store = "local"                        #'


def write(tmp_path: Path, adapter: str) -> Path:
    conf = tmp_path / "conf"
    conf.mkdir(exist_ok=True)
    (conf / "organisations.toml").write_text((CONF / "organisations.toml").read_text())
    (conf / "adapter.toml").write_text(adapter)
    return conf / "adapter.toml"


def with_blobs(tmp_path: Path, lines: str) -> Path:
    assert LOCAL in BASE
    return write(tmp_path, BASE.replace(LOCAL, lines + "\n#"))


# --- the local directory -----------------------------------------------------------------------


def test_put_returns_the_sha256_and_get_gives_the_content_back(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    digest = store.put(b"%PDF-1.7 inhoud")
    assert digest == hashlib.sha256(b"%PDF-1.7 inhoud").hexdigest()
    assert store.get(digest) == b"%PDF-1.7 inhoud"
    assert store.path(digest) == tmp_path / digest[:2] / digest[2:4] / digest


def test_the_same_content_is_stored_once_and_no_temporary_file_stays(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    assert store.put(b"twee keer") == store.put(b"twee keer")
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert [f.name for f in files] == [hashlib.sha256(b"twee keer").hexdigest()]


def test_put_many_stores_each_distinct_content_once_and_answers_in_order(
    tmp_path: Path,
) -> None:
    store = LocalBlobStore(tmp_path)
    before = store.put(b"al opgeslagen")
    contents = [b"een", b"twee", b"een", b"al opgeslagen", b""]
    digests = store.put_many(contents)
    assert digests == [hashlib.sha256(c).hexdigest() for c in contents]
    assert digests[3] == before
    assert [store.get(d) for d in digests] == contents
    files = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert files == sorted({hashlib.sha256(c).hexdigest() for c in contents})
    assert store.put_many([]) == []


def test_a_failed_put_many_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    # The second content's directory is one nobody may create files in (/proc), so its write
    # fails while the first content's is written beside it.
    unwritable = store.path(hashlib.sha256(b"tweede").hexdigest()).parent
    unwritable.parent.mkdir(parents=True)
    unwritable.symlink_to("/proc")
    with pytest.raises(OSError):
        store.put_many([b"eerste", b"tweede", b"derde"])
    assert not [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert store.put_many([b"eerste"]) == [hashlib.sha256(b"eerste").hexdigest()]


def test_a_staging_keeps_what_it_is_told_to_and_removes_the_rest(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    already = store.put(b"al bewaard")
    with store.staging() as staging:
        kept, dropped = staging.add(b"aanvaard"), staging.add(b"geweigerd")
        assert staging.add(b"aanvaard") == kept and staging.add(b"al bewaard") == already
        with pytest.raises(BlobMissing):  # staged, not yet found under its hash
            store.get(kept)
        staging.keep([kept, already])
        assert store.get(kept) == b"aanvaard"
        with pytest.raises(ValueError, match="never added"):
            staging.keep(["0" * 64])
    files = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert files == sorted([kept, already]) and dropped not in files
    assert dropped == hashlib.sha256(b"geweigerd").hexdigest()


def test_a_staging_left_by_a_failure_removes_everything_it_wrote(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    with pytest.raises(RuntimeError), store.staging() as staging:
        for number in range(100):  # more than may wait for their write at once
            staging.add(b"inhoud %d" % number)
        raise RuntimeError("de batch faalt")
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_a_missing_blob_is_blob_missing_which_is_a_file_not_found(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    with pytest.raises(BlobMissing):
        store.get("0" * 64)
    with pytest.raises(FileNotFoundError):  # what the citizen pages catch
        store.get("0" * 64)


def test_delete_removes_the_content_and_a_second_delete_is_harmless(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    digest = store.put(b"weg ermee")
    store.delete(digest)
    store.delete(digest)
    assert not store.path(digest).exists()


# --- choosing the store ------------------------------------------------------------------------


def test_the_default_is_the_local_directory_of_ebms_blob_dir() -> None:
    config = load_config(CONF / "adapter.toml", environ={})
    assert config.blobs == BlobConfig("local", config.ebms.blob_dir)
    store = open_blob_store(config.blobs)
    assert isinstance(store, LocalBlobStore) and store.root == config.ebms.blob_dir


def test_an_s3_store_is_read_with_every_key(tmp_path: Path) -> None:
    config = load_config(
        with_blobs(
            tmp_path,
            'store = "s3"\nbucket = "dk-bijlagen"\nendpoint_url = "https://s3.example.nl/"\n'
            'region = "eu-west-1"\nprefix = "bijlagen/"\naddressing_style = "virtual"\n'
            'access_key_env = "S3_KEY"\nsecret_key_env = "S3_SECRET"\ntimeout_seconds = 5',
        ),
        environ={},
    )
    assert config.blobs == BlobConfig(
        store="s3",
        directory=config.ebms.blob_dir,
        bucket="dk-bijlagen",
        endpoint_url="https://s3.example.nl",
        region="eu-west-1",
        prefix="bijlagen/",
        addressing_style="virtual",
        access_key_env="S3_KEY",
        secret_key_env="S3_SECRET",
        timeout_seconds=5.0,
    )
    store = open_blob_store(config.blobs)
    assert isinstance(store, S3BlobStore) and store.key("ab" * 32) == "bijlagen/" + "ab" * 32


@pytest.mark.parametrize(
    ("lines", "key", "reason"),
    [
        ('store = "ftp"', "blobs.store", "must be one of"),
        ('store = "s3"', "blobs.bucket", "is required"),
        ('store = "s3"\nbucket = "Bijlagen_NL"', "blobs.bucket", "bucket name"),
        ('store = "local"\nbucket = "dk-bijlagen"', "blobs.bucket", 'only to store = "s3"'),
        (
            'store = "s3"\nbucket = "dk-bijlagen"\nendpoint_url = "s3.example.nl"',
            "blobs.endpoint_url",
            "http:// or https://",
        ),
        (
            'store = "s3"\nbucket = "dk-bijlagen"\naccess_key_env = "S3_KEY"',
            "blobs.secret_key_env",
            "both key variables",
        ),
        (
            'store = "s3"\nbucket = "dk-bijlagen"\naddressing_style = "dns"',
            "blobs.addressing_style",
            "must be one of",
        ),
        ('store = "s3"\nbucket = "dk-bijlagen"\nsecret = "x"', "blobs.secret", "unknown key"),
    ],
    ids=[
        "unknown-store",
        "no-bucket",
        "bad-bucket",
        "s3-key-with-local",
        "endpoint-no-url",
        "half-a-key-pair",
        "bad-addressing",
        "unknown-key",
    ],
)
def test_a_bad_blobs_value_names_file_key_and_reason(
    tmp_path: Path, lines: str, key: str, reason: str
) -> None:
    file = with_blobs(tmp_path, lines)
    with pytest.raises(ConfigError) as caught:
        load_config(file, environ={})
    assert caught.value.file == str(file.resolve())
    assert caught.value.key == key
    assert reason in caught.value.reason


def test_temporary_files_of_writes_that_never_finished_are_removed_once_old(
    tmp_path: Path,
) -> None:
    # What a process killed while it staged a batch leaves beside the contents.
    store = LocalBlobStore(tmp_path / "blobs")
    kept = store.put(b"%PDF-1.7 kept")
    directory = store.path(kept).parent
    old, fresh = directory / ".incoming-old", directory / ".incoming-fresh"
    old.write_bytes(b"half a PDF")
    fresh.write_bytes(b"being written now")
    hour_ago = time.time() - UNFINISHED_AFTER_SECONDS - 1
    os.utime(old, (hour_ago, hour_ago))
    assert store.remove_unfinished() == 1
    assert not old.exists() and fresh.exists()
    assert store.get(kept) == b"%PDF-1.7 kept"
    assert store.remove_unfinished(older_than_seconds=0) == 1  # the fresh one, when told so
    assert sorted(p.name for p in directory.iterdir()) == [kept]
