"""E-mail rendering, and delivery to a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import html
import re
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from alerts.channel import Channel, DeliveryError
from alerts.email import SmtpChannel, html_with_data_uris, render_email
from alerts.notification import FeatureDrift, Notification
from tests.alerts.conftest import DASHBOARD, REPORT, free_port

PNG = b"\x89PNG\r\n\x1a\n"
SENDER = "tidewatch@example.org"


class Collector:
    """aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted"


@pytest.fixture
def smtp() -> Iterator[tuple[Collector, int]]:
    handler, port = Collector(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def channel(port: int, **kwargs: Any) -> SmtpChannel:
    return SmtpChannel(
        host="127.0.0.1", port=port, sender=SENDER, local_hostname="tidewatch.test", **kwargs
    )


def received(handler: Collector) -> EmailMessage:
    assert len(handler.envelopes) == 1
    message = email.message_from_bytes(handler.envelopes[0].content, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def parts(message: EmailMessage) -> tuple[str, str, dict[str, bytes]]:
    text = message.get_body(preferencelist=("plain",))
    body = message.get_body(preferencelist=("html",))
    assert text is not None and body is not None
    images = {
        str(part["Content-ID"]).strip("<>"): part.get_content()
        for part in message.walk()
        if part.get_content_maintype() == "image"
    }
    return text.get_content(), body.get_content(), images


def visible(body: str) -> str:
    """The HTML's text, roughly: tags dropped, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def test_firing_mail_over_smtp(smtp: tuple[Collector, int], firing: Notification) -> None:
    handler, port = smtp
    sender: Channel = channel(port)
    assert sender.name == "email"
    sender.send(firing)

    envelope = handler.envelopes[0]
    assert envelope.mail_from == SENDER
    assert sorted(envelope.rcpt_tos) == sorted(firing.recipients)
    message = received(handler)
    assert message["Subject"] == "[Tidewatch] FIRING warning: drift on plankton v1"
    assert message["From"] == SENDER
    assert sorted(a.addr_spec for a in message["To"].addresses) == sorted(firing.recipients)
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == [
        "text/plain",
        "multipart/related",
    ]

    text, body, images = parts(message)
    # two numeric features with histograms plus the trend; the categorical one has no plot
    assert len(images) == 3
    assert all(png.startswith(PNG) for png in images.values())
    assert re.findall(r'src="cid:([^"]+)"', body) == list(images)
    for part in message.walk():
        if part.get_content_maintype() == "image":
            assert part.get_content_disposition() == "inline"
    for content in (text, visible(body)):
        assert "plankton v1" in content
        assert "since 2024-05-01 06:00:00 UTC" in content
        for drift in firing.drifted:
            assert drift.feature in content and drift.detector in content
        assert "1.2e-09" in content and "0.412" in content  # p-value and statistic
    assert DASHBOARD in text and REPORT in text
    assert f'href="{html.escape(DASHBOARD)}"' in body and f'href="{html.escape(REPORT)}"' in body


def test_resolved_mail_over_smtp(smtp: tuple[Collector, int], resolved: Notification) -> None:
    handler, port = smtp
    channel(port).send(resolved)
    message = received(handler)
    assert message["Subject"] == "[Tidewatch] RESOLVED: drift on plankton v1"
    text, body, images = parts(message)
    assert images == {}
    assert resolved.resolved_at is not None
    stamp = resolved.resolved_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    for content in (text, visible(body)):
        assert "RESOLVED" in content
        assert stamp in content
        assert "firing since 2024-05-01 06:00:00 UTC" in content


def test_no_recipients_is_permanent(smtp: tuple[Collector, int], firing: Notification) -> None:
    handler, port = smtp
    with pytest.raises(DeliveryError) as info:
        channel(port).send(dataclasses.replace(firing, recipients=[]))
    assert info.value.retryable is False
    assert handler.envelopes == []


def test_unreachable_server_is_retryable(firing: Notification) -> None:
    with pytest.raises(DeliveryError) as info:
        channel(free_port(), timeout=5).send(firing)
    assert info.value.retryable is True


# aiosmtpd warns about AUTH without TLS; on loopback in a test that is the point
no_tls_warning = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture
def smtp_auth() -> Iterator[tuple[Collector, int]]:
    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            b"tidewatch",
            b"s3cret",
        )
        return AuthResult(success=ok, handled=False)

    handler, port = Collector(), free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    yield handler, port
    controller.stop()


@no_tls_warning
def test_login(smtp_auth: tuple[Collector, int], firing: Notification) -> None:
    handler, port = smtp_auth
    channel(port, username="tidewatch", password="s3cret").send(firing)
    assert len(handler.envelopes) == 1


@no_tls_warning
def test_wrong_password(smtp_auth: tuple[Collector, int], firing: Notification) -> None:
    handler, port = smtp_auth
    with pytest.raises(DeliveryError) as info:
        channel(port, username="tidewatch", password="wrong").send(firing)
    assert info.value.retryable is False  # 535: fix the configuration, do not retry
    assert handler.envelopes == []


@no_tls_warning
def test_auth_required_but_no_credentials(
    smtp_auth: tuple[Collector, int], firing: Notification
) -> None:
    with pytest.raises(DeliveryError) as info:
        channel(smtp_auth[1]).send(firing)
    assert info.value.retryable is False  # 530 authentication required


def test_html_is_escaped(firing: Notification) -> None:
    evil = FeatureDrift("<script>alert(1)</script>", "ks", 0.5, 0.01)
    message = render_email(dataclasses.replace(firing, drifted=[evil]), SENDER)
    _, body, _ = parts(message)
    assert "<script>" not in body and "&lt;script&gt;" in body


def test_max_plots(firing: Notification) -> None:
    _, _, images = parts(render_email(firing, SENDER, max_plots=1))
    assert len(images) == 2  # the most drifted feature and the trend
    no_trend = dataclasses.replace(firing, trend=[])
    _, _, images = parts(render_email(no_trend, SENDER, max_plots=0))
    assert images == {}


def test_data_uris_for_browsers(firing: Notification) -> None:
    page = html_with_data_uris(render_email(firing, SENDER))
    assert "cid:" not in page
    assert page.count('src="data:image/png;base64,') == 3


def test_ssl_and_starttls_exclusive() -> None:
    with pytest.raises(ValueError):
        SmtpChannel(host="h", sender=SENDER, ssl=True, starttls=True)
