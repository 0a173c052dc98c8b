"""Report-link tokens (and keys sent as ``key=``) never reach the access log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import uvicorn
from uvicorn.logging import AccessFormatter

from monitor.app import create_app
from monitor.observability.access_log import ACCESS_LOGGER, RedactCredentials, redact_query
from monitor.settings import Settings

TOKEN = "9f" * 32
PATH = f"/api/v1/models/plankton/report?run=7&expires=1767225600&token={TOKEN}"


def access_record(path: str) -> logging.LogRecord:
    """A record shaped like uvicorn's access records (uvicorn/protocols/http/h11_impl.py)."""
    return logging.LogRecord(
        ACCESS_LOGGER,
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("10.0.0.1:5123", "GET", path, "1.1", 200),
        None,
    )


def test_the_filter_redacts_the_token_and_keeps_the_record_shape() -> None:
    record = access_record(PATH + "&key=tw_secret")
    assert RedactCredentials().filter(record) is True  # redacted, not dropped
    line = AccessFormatter(
        '%(client_addr)s "%(request_line)s" %(status_code)s', use_colors=False
    ).format(record)
    assert TOKEN not in line and "tw_secret" not in line
    assert "run=7&expires=1767225600&token=REDACTED&key=REDACTED" in line
    assert line.startswith('10.0.0.1:5123 "GET /api/v1/models/plankton/report?') and line.endswith(
        '" 200 OK'
    )


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/healthz", "/healthz"),
        ("/x?run=1", "/x?run=1"),
        ("/x?%74oken=abc&run=1", "/x?%74oken=REDACTED&run=1"),  # decoded as the server does
        ("/x?token=a&token=b", "/x?token=REDACTED&token=REDACTED"),
        ("/x?tokens=a&monkey=b", "/x?tokens=a&monkey=b"),
        # the identity provider's answer at the OIDC callback
        (
            "/login/oidc/callback?code=c0de&state=s7a7e",
            "/login/oidc/callback?code=REDACTED&state=REDACTED",
        ),
    ],
)
def test_redact_query(path: str, expected: str) -> None:
    assert redact_query(path) == expected


def test_other_records_pass_untouched() -> None:
    record = logging.LogRecord(ACCESS_LOGGER, logging.INFO, __file__, 1, "token=%s", ("x",), None)
    assert RedactCredentials().filter(record) and record.getMessage() == "token=x"


def test_the_app_installs_it_and_uvicorns_logging_setup_keeps_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/a.db", migrate_on_start=False, scheduler=False
    )
    app = create_app(settings)
    create_app(settings)
    uvicorn.Config(app, log_level="info")  # runs uvicorn's dictConfig, as serving does
    logger = logging.getLogger(ACCESS_LOGGER)
    assert sum(isinstance(f, RedactCredentials) for f in logger.filters) == 1  # once per process
    with caplog.at_level(logging.INFO, ACCESS_LOGGER):
        logger.addHandler(caplog.handler)  # uvicorn.access does not propagate to the root
        try:
            # as uvicorn/protocols/http/h11_impl.py logs a request
            logger.info('%s - "%s %s HTTP/%s" %d', "10.0.0.1:5123", "GET", PATH, "1.1", 200)
        finally:
            logger.removeHandler(caplog.handler)
    (message,) = [r.getMessage() for r in caplog.records if r.name == ACCESS_LOGGER]
    assert TOKEN not in message and "token=REDACTED" in message
