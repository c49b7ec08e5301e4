"""SparkEmbeddings: iFlytek's signed "llm embedding" API, checked against the docs' worked
signing example and against `SparkEmbeddingEmulator` (signature, date skew, envelope, codes)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import struct
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from langchain_chatchat.embeddings.spark import SparkEmbeddings
from langchain_chatchat.providers import get_provider
from langchain_chatchat.testing import Fault
from langchain_chatchat.testing.spark_embedding import SparkEmbeddingEmulator
from langchain_chatchat.workers.errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilterError,
    ContextLengthError,
    PermissionDeniedError,
    RateLimitError,
    UpstreamServerError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from langchain_chatchat.workers.spark_embedding import (
    DEFAULT_BASE_URL,
    DIMENSION,
    SparkEmbeddingWorker,
    authorization,
    build_body,
    decode_vector,
    encode_text,
    encode_vector,
    rfc1123_date,
    sign,
    signature_origin,
    signed_query,
)
from langchain_chatchat.workers.transport import MockReply, MockTransport
from langchain_chatchat.workers.types import EmbeddingRequest

CLOSED_PORT = "http://127.0.0.1:9/"
_ENV = (
    "IFLYTEK_SPARK_APP_ID",
    "IFLYTEK_SPARK_API_KEY",
    "IFLYTEK_SPARK_API_SECRET",
    "SPARK_APP_ID",
    "SPARK_API_KEY",
    "SPARK_API_SECRET",
)
_SHARED: dict[str, SparkEmbeddingEmulator] = {}


def shared_emulator() -> SparkEmbeddingEmulator:
    if "emu" not in _SHARED:
        _SHARED["emu"] = SparkEmbeddingEmulator().start()
    return _SHARED["emu"]


@pytest.fixture(scope="module", autouse=True)
def _stop_shared() -> Iterator[None]:
    yield
    for emulator in _SHARED.values():
        emulator.stop()
    _SHARED.clear()


@pytest.fixture
def emu() -> Iterator[SparkEmbeddingEmulator]:
    emulator = shared_emulator()
    emulator.reset()
    yield emulator
    emulator.reset()


def make(emulator: SparkEmbeddingEmulator, **extra: Any) -> SparkEmbeddings:
    return SparkEmbeddings(
        **{"base_url": emulator.base_url, "max_retries": 0, **emulator.credentials, **extra}
    )


def f32(vector: list[float]) -> list[float]:
    """What survives the wire: the service sends float32."""
    return list(struct.unpack(f"<{len(vector)}f", struct.pack(f"<{len(vector)}f", *vector)))


# -- signing: the docs' worked example ------------------------------------------------------------------
# https://www.xfyun.cn/doc/spark/general_url_authentication.html (GET) and
# https://www.xfyun.cn/doc/spark/http_url_authentication.html (POST) sign the same text with
# APISecret "MjlmNzkzNmZkMDQ2OTc0ZDdmNGE2ZTZi" and date "Fri, 05 May 2023 10:43:39 GMT".
DOC_SECRET = "MjlmNzkzNmZkMDQ2OTc0ZDdmNGE2ZTZi"
DOC_DATE = "Fri, 05 May 2023 10:43:39 GMT"
DOC_GET_DIGEST = b"\xcf\x98\x07v\xed\xe9\xc5Ux\x0032\x93\x8e\xbb\xc0\xe5\x83C\xda\xba\x05\x0c\xd1\xdew\xccN7?\r\xa4"


def test_signature_matches_the_docs_worked_example():
    origin = signature_origin("spark-api.xf-yun.com", DOC_DATE, "GET", "/v1.1/chat")
    assert (
        origin
        == "host: spark-api.xf-yun.com\ndate: Fri, 05 May 2023 10:43:39 GMT\nGET /v1.1/chat HTTP/1.1"
    )
    signature = sign(DOC_SECRET, "spark-api.xf-yun.com", DOC_DATE, "GET", "/v1.1/chat")
    assert base64.b64decode(signature) == DOC_GET_DIGEST
    assert signature == "z5gHdu3pxVV4ADMyk467wOWDQ9q6BQzR3nfMTjc/DaQ="
    # The HTTP page signs "POST /v1.1/chat HTTP/1.1"; its printed digest begins b'H'.
    post = base64.b64decode(
        sign(DOC_SECRET, "spark-api.xf-yun.com", DOC_DATE, "POST", "/v1.1/chat")
    )
    assert post[:1] == b"H" and post != DOC_GET_DIGEST


def test_authorization_is_the_documented_line_in_base64():
    line = base64.b64decode(
        authorization("my-key", DOC_SECRET, "spark-api.xf-yun.com", DOC_DATE, "GET", "/v1.1/chat")
    ).decode()
    assert line == (
        'api_key="my-key", algorithm="hmac-sha256", headers="host date request-line", '
        'signature="z5gHdu3pxVV4ADMyk467wOWDQ9q6BQzR3nfMTjc/DaQ="'
    )


def test_signed_query_signs_host_and_path_of_the_endpoint():
    query = signed_query(DEFAULT_BASE_URL, "k", "s", date=DOC_DATE)
    assert query["host"] == "emb-cn-huabei-1.xf-yun.com" and query["date"] == DOC_DATE
    line = base64.b64decode(query["authorization"]).decode()
    expected = base64.b64encode(
        hmac.new(
            b"s",
            f"host: emb-cn-huabei-1.xf-yun.com\ndate: {DOC_DATE}\nPOST / HTTP/1.1".encode(),
            hashlib.sha256,
        ).digest()
    ).decode()
    assert line.endswith(f'signature="{expected}"')
    assert (
        signed_query("http://127.0.0.1:8080/emb", "k", "s", date=DOC_DATE)["host"]
        == "127.0.0.1:8080"
    )


def test_date_is_rfc1123_gmt():
    stamp = datetime(2023, 5, 5, 10, 43, 39, tzinfo=timezone.utc).timestamp()
    assert rfc1123_date(stamp) == DOC_DATE


# -- wire format -----------------------------------------------------------------------------------------
def test_request_body_is_the_documented_envelope():
    body = build_body("app-1", "讯飞 星火", "para", uid="u1")
    assert body["header"] == {"app_id": "app-1", "uid": "u1", "status": 3}
    assert body["parameter"]["emb"]["domain"] == "para"
    assert body["parameter"]["emb"]["feature"] == {
        "encoding": "utf8",
        "compress": "raw",
        "format": "plain",
    }
    messages = body["payload"]["messages"]
    assert {k: messages[k] for k in ("encoding", "compress", "format", "status")} == {
        "encoding": "utf8",
        "compress": "raw",
        "format": "json",
        "status": 3,
    }
    assert json.loads(base64.b64decode(messages["text"])) == {
        "messages": [{"content": "讯飞 星火", "role": "user"}]
    }
    assert messages["text"] == encode_text("讯飞 星火")
    assert "uid" not in build_body("app-1", "x", "query")["header"]


def test_vectors_are_little_endian_float32():
    raw = struct.pack("<3f", 0.5, -1.25, 3.0)
    assert decode_vector(base64.b64encode(raw).decode()) == [0.5, -1.25, 3.0]
    assert decode_vector(encode_vector([0.1, 0.2])) == f32([0.1, 0.2])
    assert decode_vector(base64.b64encode(struct.pack(">f", 0.5)).decode()) != [0.5]
    for bad in ("", base64.b64encode(b"abc").decode(), "not base64!"):
        with pytest.raises(ValueError):
            decode_vector(bad)


def test_unreadable_vector_is_an_upstream_error():
    bodies = iter(
        [
            {"header": {"code": 0}, "payload": {}},
            {"header": {"code": 0}, "payload": {"feature": {"text": "abc"}}},
        ]
    )
    transport = MockTransport(lambda request: MockReply.json(next(bodies)))
    worker = SparkEmbeddingWorker(
        app_id="a", api_key="k", api_secret="s", transport=transport, max_retries=0
    )
    request = EmbeddingRequest(model="llm-embedding", texts=["x"])
    for _ in range(2):
        with pytest.raises(UpstreamServerError):
            worker.embed(request)
    assert set(transport.requests[0].params) == {"authorization", "date", "host"}


# -- behaviour against the emulator ------------------------------------------------------------------------
def test_one_text_per_request_in_order(emu):
    texts = [f"document number {i}" for i in range(5)]
    emb = make(emu)
    assert emb.worker.batch_limit(emb.model) == 1
    vectors = emb.embed_documents(texts)
    assert [emu.embedded(r) for r in emu.requests] == [("para", t) for t in texts]
    assert vectors == [f32(emu.vector(t, "para")) for t in texts]
    assert len(vectors[0]) == DIMENSION and all(r.path == "/" for r in emu.requests)


async def test_async_runs_concurrently_and_keeps_order(emu):
    texts = [f"text {i}" for i in range(6)]
    emu.enqueue(Fault.hang(0.3))  # whichever request arrives first answers last
    started = time.monotonic()
    vectors = await make(emu).aembed_documents(texts)
    assert vectors == [f32(emu.vector(t, "para")) for t in texts]
    assert sorted(t for _, t in map(emu.embedded, emu.requests)) == sorted(texts)
    assert time.monotonic() - started < 1.5  # not six sequential hangs


def test_query_and_document_use_their_domains(emu):
    emb = make(emu)
    document = emb.embed_documents(["星火大模型"])[0]
    query = emb.embed_query("星火大模型")
    assert [emu.embedded(r)[0] for r in emu.requests] == ["para", "query"]
    assert query == f32(emu.vector("星火大模型", "query")) and query != document


async def test_async_query(emu):
    vector = await make(emu).aembed_query("hello")
    assert (
        vector == f32(emu.vector("hello", "query")) and emu.embedded(emu.requests[-1])[0] == "query"
    )


def test_domain_and_uid_from_model_kwargs(emu):
    make(emu, model_kwargs={"domain": "query", "uid": "user-7"}).embed_documents(["a"])
    body = emu.requests[-1].body
    assert body["parameter"]["emb"]["domain"] == "query" and body["header"]["uid"] == "user-7"


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"model_kwargs": {"domain": "doc"}}, "domain"),
        ({"model_kwargs": {"temperature": 1}}, "temperature"),
        ({"dimensions": 256}, "dimensions"),
    ],
)
def test_bad_parameters_fail_before_any_request(emu, kwargs, param):
    with pytest.raises(BadRequestError) as caught:
        make(emu, **kwargs).embed_query("x")
    assert caught.value.param == param and emu.requests == []


def test_full_dimension_is_accepted(emu):
    assert len(make(emu, dimensions=DIMENSION).embed_query("x")) == DIMENSION


def test_empty_document_list_sends_nothing(emu):
    assert make(emu).embed_documents([]) == [] and emu.requests == []


# -- errors ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "error_class"),
    [
        ("11200", PermissionDeniedError),
        ("11201", PermissionDeniedError),
        ("11202", RateLimitError),
        ("11203", RateLimitError),
        ("10163", BadRequestError),
        ("10907", ContextLengthError),
        ("10013", ContentFilterError),
        ("10313", AuthenticationError),
        ("10222", UpstreamUnavailableError),
    ],
)
def test_header_codes_are_typed(emu, code, error_class):
    emu.enqueue(Fault.http(200, code, f"error {code}"))
    with pytest.raises(error_class) as caught:
        make(emu).embed_query("hi")
    error = caught.value
    assert error.code == code and error.provider == "spark" and error.message == f"error {code}"
    assert error.request_id == emu.last_request_id and "@dx" in error.request_id


def test_unknown_code_is_an_upstream_error_not_retried(emu):
    emu.enqueue(Fault.http(200, "99999", "mystery"))
    with pytest.raises(UpstreamUnavailableError) as caught:
        make(emu, max_retries=2).embed_query("hi")
    assert not caught.value.retryable and len(emu.requests) == 1


def test_codes_with_an_http_error_status(emu):
    emu.enqueue(Fault.http(500, "99999", "engine down"))
    with pytest.raises(UpstreamUnavailableError) as caught:
        make(emu).embed_query("hi")
    assert caught.value.retryable and caught.value.code == "99999"


def test_rate_limits_are_retried_and_re_signed(emu):
    emu.enqueue(Fault.http(200, "11202", "秒级流控超限"), Fault.http(200, "11203", "并发流控超限"))
    vector = make(emu, max_retries=2).embed_query("retry me")
    assert vector == f32(emu.vector("retry me", "query")) and len(emu.requests) == 3


async def test_async_errors_are_typed(emu):
    emu.enqueue(Fault.http(200, "11200", "no licence"))
    with pytest.raises(PermissionDeniedError):
        await make(emu).aembed_documents(["a"])


@pytest.mark.parametrize(
    ("status", "error_class"),
    [(429, RateLimitError), (502, UpstreamUnavailableError), (401, AuthenticationError)],
)
def test_gateway_errors_without_envelope(emu, status, error_class):
    emu.enqueue(Fault.http(status, "gateway", f"gateway said {status}"))
    with pytest.raises(error_class, match=f"gateway said {status}"):
        make(emu).embed_query("hi")


@pytest.mark.parametrize("wrong", ["api_key", "api_secret"])
def test_bad_credentials_are_rejected_by_the_signature_check(emu, wrong):
    with pytest.raises(AuthenticationError) as caught:
        make(emu, **{wrong: "not-it"}).embed_query("hi")
    assert caught.value.status_code == 401 and "signature" in caught.value.message


def test_wrong_app_id(emu):
    with pytest.raises(AuthenticationError) as caught:
        make(emu, app_id="other-app").embed_query("hi")
    assert caught.value.code == "10313"


def test_emulator_checks_host_path_and_presence_of_the_signature(emu):
    date = rfc1123_date()
    body = build_body(emu.app_id, "x", "query")
    other_host = signed_query(
        "https://emb-cn-huabei-1.xf-yun.com/", emu.api_key, emu.api_secret, date=date
    )
    other_path = signed_query(emu.url + "/v1", emu.api_key, emu.api_secret, date=date)
    good = signed_query(emu.base_url, emu.api_key, emu.api_secret, date=date)
    with httpx.Client() as client:
        assert client.post(emu.base_url, params=other_host, json=body).status_code == 401
        assert client.post(emu.base_url, params=other_path, json=body).status_code == 401
        missing = client.post(emu.base_url, json=body)
        assert missing.status_code == 401 and missing.json() == {"message": "Unauthorized"}
        ok = client.post(emu.base_url, params=good, json=body).json()
    assert ok["header"]["code"] == 0 and ok["header"]["message"] == "success"
    assert len(decode_vector(ok["payload"]["feature"]["text"])) == DIMENSION


@pytest.mark.parametrize(
    ("offset", "accepted"), [(-290, True), (290, True), (310, False), (-310, False)]
)
def test_date_skew_rule(offset, accepted):
    with SparkEmbeddingEmulator(clock=lambda: time.time() + offset) as emulator:
        emb = make(emulator)
        if accepted:
            assert len(emb.embed_query("hi")) == DIMENSION
        else:
            with pytest.raises(AuthenticationError) as caught:
                emb.embed_query("hi")
            assert caught.value.status_code == 403


def test_envelope_validation_by_the_emulator(emu):
    good = build_body(emu.app_id, "x", "para")
    bad_domain = {**good, "parameter": {"emb": {"domain": "doc"}}}
    bad_status = {**good, "header": {"app_id": emu.app_id, "status": 2}}
    bad_text = {**good, "payload": {"messages": {"text": base64.b64encode(b"plain text").decode()}}}
    with httpx.Client() as client:
        for body in (bad_domain, bad_status, bad_text):
            query = signed_query(emu.base_url, emu.api_key, emu.api_secret)
            assert (
                client.post(emu.base_url, params=query, json=body).json()["header"]["code"] == 10163
            )


def test_over_long_text(emu):
    with pytest.raises(ContextLengthError):
        make(emu).embed_query("字" * 2049)


def test_timeout_and_connection_errors(emu):
    emu.enqueue(Fault.hang(2.0))
    with pytest.raises(UpstreamTimeoutError):
        make(emu, request_timeout=0.3).embed_query("slow")
    with pytest.raises(UpstreamUnavailableError):
        SparkEmbeddings(base_url=CLOSED_PORT, max_retries=0, **emu.credentials).embed_query(
            "nobody home"
        )


async def test_async_timeout(emu):
    emu.enqueue(Fault.hang(2.0))
    with pytest.raises(UpstreamTimeoutError):
        await asyncio.wait_for(make(emu, request_timeout=0.3).aembed_query("slow"), 5)


# -- configuration -----------------------------------------------------------------------------------------------
def test_credentials_from_iflytek_env(monkeypatch):
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IFLYTEK_SPARK_APP_ID", "app")
    monkeypatch.setenv("IFLYTEK_SPARK_API_KEY", "key")
    monkeypatch.setenv("IFLYTEK_SPARK_API_SECRET", "s3cr3t-value")
    monkeypatch.setenv("SPARK_API_KEY", "community-key")
    emb = SparkEmbeddings()
    assert (
        emb.app_id.get_secret_value(),
        emb.api_key.get_secret_value(),
        emb.api_secret.get_secret_value(),
    ) == ("app", "key", "s3cr3t-value")
    assert emb.base_url == DEFAULT_BASE_URL and emb.model == "llm-embedding"
    assert "s3cr3t" not in repr(emb) and "s3cr3t" not in repr(emb.worker)


def test_credentials_from_langchain_community_env(monkeypatch):
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SPARK_APP_ID", "app")
    monkeypatch.setenv("SPARK_API_KEY", "key")
    monkeypatch.setenv("SPARK_API_SECRET", "secret")
    monkeypatch.setenv("IFLYTEK_SPARK_EMBEDDING_BASE_URL", "http://127.0.0.1:9/")
    emb = SparkEmbeddings(spark_app_id="explicit")
    assert emb.app_id.get_secret_value() == "explicit" and emb.api_key.get_secret_value() == "key"
    assert emb.base_url == "http://127.0.0.1:9/"


def test_missing_credentials_name_the_env_vars(monkeypatch):
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(AuthenticationError, match="IFLYTEK_SPARK_API_SECRET"):
        SparkEmbeddings(app_id="a", api_key="k")


def test_registered_as_the_spark_providers_embeddings():
    assert get_provider("spark").class_for("embeddings") is SparkEmbeddings
    assert get_provider("xinghuo").class_for("embeddings") is SparkEmbeddings


# -- langchain-tests standard suites -----------------------------------------------------------------------------
class TestSparkEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[SparkEmbeddings]:
        return SparkEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {
            "model": "llm-embedding",
            "base_url": CLOSED_PORT,
            "app_id": "a",
            "api_key": "k",
            "api_secret": "s",
        }

    @property
    def init_from_env_params(self) -> tuple[dict, dict, dict]:
        env = {
            "IFLYTEK_SPARK_APP_ID": "app-env",
            "IFLYTEK_SPARK_API_KEY": "key-env",
            "IFLYTEK_SPARK_API_SECRET": "secret-env",
        }
        return (
            env,
            {"base_url": CLOSED_PORT},
            {"app_id": "app-env", "api_key": "key-env", "api_secret": "secret-env"},
        )


class TestSparkEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[SparkEmbeddings]:
        return SparkEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        emulator = shared_emulator()
        return {"base_url": emulator.base_url, **emulator.credentials}
