"""The S3 blob store against an S3-compatible server over real HTTP (moto's server mode)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapter.config import BlobConfig
from adapter.errors import StoreUnavailable
from adapter.store.blobs import BlobMissing, S3BlobStore
from tests.conftest import free_port
from tests.s3_helpers import ACCESS_KEY_ENV, CREDENTIALS, SECRET_KEY_ENV, S3Endpoint, moto_s3


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    with moto_s3(tmp_path_factory.mktemp("moto") / "moto.log") as running:
        yield running


def s3_config(url: str, bucket: str, prefix: str = "", timeout: float = 30) -> BlobConfig:
    return BlobConfig(
        store="s3",
        directory=Path("unused"),
        bucket=bucket,
        endpoint_url=url,
        region="us-east-1",
        prefix=prefix,
        access_key_env=ACCESS_KEY_ENV,
        secret_key_env=SECRET_KEY_ENV,
        timeout_seconds=timeout,
    )


@pytest.fixture
def store(endpoint: S3Endpoint, request: pytest.FixtureRequest) -> S3BlobStore:
    # A prefix per test, so each sees only its own objects in the shared bucket.
    return S3BlobStore(
        s3_config(endpoint.url, endpoint.bucket, f"{request.node.name}/"), CREDENTIALS
    )


def objects(endpoint: S3Endpoint, store: S3BlobStore) -> list[str]:
    return [k for k in endpoint.object_names() if k.startswith(store.config.prefix)]


def test_put_stores_an_object_named_by_prefix_and_sha256_and_get_reads_it(
    endpoint: S3Endpoint, store: S3BlobStore
) -> None:
    content = b"%PDF-1.7 " + bytes(range(256)) * 100
    digest = store.put(content)
    assert digest == hashlib.sha256(content).hexdigest()
    assert objects(endpoint, store) == [store.config.prefix + digest]
    stored = endpoint.client().get_object(Bucket=endpoint.bucket, Key=store.key(digest))
    assert stored["Body"].read() == content
    assert store.get(digest) == content


def test_the_same_content_twice_is_one_object(endpoint: S3Endpoint, store: S3BlobStore) -> None:
    assert store.put(b"twee keer") == store.put(b"twee keer")
    assert len(objects(endpoint, store)) == 1


def test_put_many_puts_each_distinct_content_once_and_answers_in_order(
    endpoint: S3Endpoint, store: S3BlobStore
) -> None:
    contents = [b"een", b"twee", b"een"]
    digests = store.put_many(contents)
    assert digests == [hashlib.sha256(c).hexdigest() for c in contents]
    assert sorted(objects(endpoint, store)) == sorted({store.key(d) for d in digests})
    assert [store.get(d) for d in digests] == contents


def test_a_staging_puts_only_what_it_keeps(endpoint: S3Endpoint, store: S3BlobStore) -> None:
    with store.staging() as staging:
        kept, dropped = staging.add(b"aanvaard"), staging.add(b"geweigerd")
        assert objects(endpoint, store) == []  # nothing leaves before the batch is judged
        staging.keep([kept])
    assert objects(endpoint, store) == [store.key(kept)]
    with pytest.raises(BlobMissing):
        store.get(dropped)
    # Nothing half-written is left for the retention job to remove.
    assert store.remove_unfinished(older_than_seconds=0) == 0
    assert objects(endpoint, store) == [store.key(kept)]


def test_a_missing_object_is_blob_missing(store: S3BlobStore) -> None:
    with pytest.raises(BlobMissing):
        store.get("0" * 64)


def test_delete_removes_the_object_and_a_second_delete_is_harmless(
    endpoint: S3Endpoint, store: S3BlobStore
) -> None:
    digest = store.put(b"weg ermee")
    store.delete(digest)
    store.delete(digest)
    assert objects(endpoint, store) == []
    with pytest.raises(BlobMissing):
        store.get(digest)


def test_a_bucket_that_does_not_exist_makes_the_store_unavailable(endpoint: S3Endpoint) -> None:
    store = S3BlobStore(s3_config(endpoint.url, "bestaat-niet"), CREDENTIALS)
    with pytest.raises(StoreUnavailable) as caught:
        store.put(b"nergens")
    assert "NoSuchBucket" in caught.value.reason


def test_an_unreachable_store_is_store_unavailable_not_a_crash() -> None:
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    store = S3BlobStore(s3_config(nobody, "dk-adapter-test", timeout=2), CREDENTIALS)
    with pytest.raises(StoreUnavailable) as caught:
        store.put(b"nergens")
    assert caught.value.reason.startswith("blob store: EndpointConnectionError")
    with pytest.raises(StoreUnavailable):
        store.get("0" * 64)
