"""E-mail for use-case owners: what drifted, since when, how strongly, with plots and links.

A mail is ``multipart/alternative``: a plain-text part for terminals and filters, and an HTML
part wrapped in ``multipart/related`` with its PNG plots inline (``cid:`` references), because
mail clients block remote images and scripts. Templates live in ``alerts/templates`` (jinja2,
autoescaped for HTML: feature and model names come from users). jinja2 and matplotlib are
imported on first use, so ``import alerts`` stays light.
"""

from __future__ import annotations

import base64
import functools
import logging
import smtplib
import ssl as ssl_module
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alerts.channel import DeliveryError
from alerts.effect_text import effect_text, feature_label
from alerts.notification import Notification

if TYPE_CHECKING:
    import jinja2

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).parent / "templates"


@functools.cache
def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",)),
        undefined=jinja2.StrictUndefined,  # a typo in a template fails the test, not a mail
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["when"] = when
    env.filters["number"] = number
    env.filters["effect"] = effect_text
    env.filters["feature"] = feature_label
    return env


def when(value: datetime | None) -> str:
    """A timestamp people can read: UTC, to the second ("2024-05-01 06:00:00 UTC")."""
    if value is None:
        return "n/a"
    if value.tzinfo is None:
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def number(value: Any) -> str:
    """A measured number with 3 significant digits (``0.713``, ``1.2e-09``); "n/a" when there
    is none; whole numbers (counts, sizes) and anything else as they are."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def performance(notification: Notification) -> str:
    """``accuracy 0.713, below the threshold 0.85``: the value that fired (else the trend's
    latest) and, in words, its side of the threshold."""
    n = notification
    value = n.details.get("value")
    if not isinstance(value, int | float) and n.trend:
        value = n.trend[-1].value
    text = f"{n.metric} {number(value)}" if isinstance(value, int | float) else f"{n.metric}"
    if n.threshold is None:
        return text
    if not isinstance(value, int | float):
        return f"{text}, threshold {number(n.threshold)}"
    side = "below" if value < n.threshold else "above" if value > n.threshold else "at"
    return f"{text}, {side} the threshold {number(n.threshold)}"


def subject(notification: Notification) -> str:
    """``[Tidewatch] FIRING warning: drift on plankton v1`` / ``[Tidewatch] RESOLVED: ...``;
    ``FIRING critical, worse: ...`` for a notice that says what got worse (an escalation)."""
    what = f"{notification.kind.replace('_', ' ')} on {notification.model} v{notification.version}"
    if notification.state == "resolved":
        return f"[Tidewatch] RESOLVED: {what}"
    worse = ", worse" if notification.changes else ""
    return f"[Tidewatch] FIRING {notification.severity}{worse}: {what}"


def render_email(notification: Notification, sender: str, max_plots: int = 3) -> EmailMessage:
    """The whole mail: headers, text part, HTML part with one inline PNG per plotted figure.

    Plots: the ``max_plots`` most drifted features that carry histograms (``drifted`` is
    ordered most drifted first), then the performance trend when the notification has one.
    """
    from alerts import plots

    domain = sender.rpartition("@")[2] or "tidewatch"
    images: list[dict[str, Any]] = []  # cid (without <>), alt text, png bytes
    with_histograms = [d for d in notification.drifted if d.reference or d.current]
    for drift in with_histograms[: max(max_plots, 0)]:
        images.append(
            {
                "cid": make_msgid("plot", domain)[1:-1],
                "alt": f"{feature_label(drift.feature)}: reference against current distribution",
                "feature": drift.feature,
                "png": plots.distribution_png(drift),
            }
        )
    trend = None
    if notification.trend:
        trend = {
            "cid": make_msgid("trend", domain)[1:-1],
            "alt": f"{notification.metric or 'metric'} over time",
            "png": plots.trend_png(notification),
        }
    context = {
        "n": notification,
        "subject": subject(notification),
        "plots": images,
        "trend": trend,
        "performance": performance(notification) if notification.metric else None,
    }
    env = _environment()

    message = EmailMessage()
    message["Subject"] = context["subject"]
    message["From"] = sender
    message["To"] = ", ".join(notification.recipients)
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid("tidewatch", domain)
    # firing, re-notified and resolved mails of one alert share a thread in mail clients
    message["References"] = f"<tidewatch-alert-{notification.alert_id}@{domain}>"
    message["X-Tidewatch-Alert"] = f"{notification.alert_id} {notification.state}"
    message.set_content(env.get_template("email.txt.j2").render(context))
    message.add_alternative(env.get_template("email.html.j2").render(context), subtype="html")
    html_part = message.get_body(preferencelist=("html",))
    assert isinstance(html_part, EmailMessage)
    for image in [*images, *([trend] if trend else [])]:
        html_part.add_related(
            image["png"],
            maintype="image",
            subtype="png",
            cid=f"<{image['cid']}>",
            disposition="inline",
            filename=f"{image['cid'].split('@')[0]}.png",
        )
    return message


def html_with_data_uris(message: EmailMessage) -> str:
    """The mail's HTML with each ``cid:`` image replaced by a ``data:`` URI.

    For previews outside a mail client (a browser, a screenshot, a saved report): browsers do
    not resolve ``cid:``.
    """
    html = message.get_body(preferencelist=("html",))
    if html is None:
        raise ValueError("the message has no HTML part")
    text: str = html.get_content()
    for part in message.walk():
        cid = part.get("Content-ID")
        if cid and part.get_content_maintype() == "image":
            data = base64.b64encode(part.get_content()).decode()
            uri = f"data:{part.get_content_type()};base64,{data}"
            text = text.replace(f"cid:{cid.strip('<>')}", uri)
    return text


@dataclass(frozen=True, kw_only=True)
class SmtpChannel:
    """Sends rendered mails over SMTP: plain, STARTTLS (``starttls``) or implicit TLS (``ssl``)."""

    host: str
    port: int = 25
    sender: str
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    max_plots: int = 3
    local_hostname: str | None = None  # the EHLO name; None: the machine's FQDN
    name: str = field(default="email", init=False)

    def __post_init__(self) -> None:
        if self.ssl and self.starttls:
            raise ValueError("choose ssl (implicit TLS, port 465) or starttls (port 587), not both")

    def send(self, notification: Notification) -> None:
        if not notification.recipients:
            raise DeliveryError(
                f"alert {notification.alert_id}: no e-mail recipients for model "
                f"{notification.model!r}",
                retryable=False,
            )
        message = render_email(notification, self.sender, self.max_plots)
        where = f"SMTP {self.host}:{self.port}"
        try:
            with self._connect() as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl_module.create_default_context())
                if self.username is not None:
                    smtp.login(self.username, self.password or "")
                refused = smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:  # every recipient refused
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryError(
                f"{where} refused all recipients: {exc.recipients}",
                retryable=not all(code >= 500 for code in codes),
            ) from exc
        except smtplib.SMTPResponseException as exc:  # auth, sender, data: the server's code
            reply = (
                exc.smtp_error.decode(errors="replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            raise DeliveryError(
                f"{where}: {exc.smtp_code} {reply}", retryable=exc.smtp_code < 500
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:  # no STARTTLS or no AUTH: configuration
            raise DeliveryError(f"{where}: {exc}", retryable=False) from exc
        except (smtplib.SMTPException, OSError) as exc:  # refused, timeout, TLS, disconnect
            raise DeliveryError(f"{where}: {type(exc).__name__}: {exc}", retryable=True) from exc
        if refused:
            # some got it: retrying would mail them twice, so report and count it delivered
            log.warning("alert %s: %s refused %s", notification.alert_id, where, refused)

    def _connect(self) -> smtplib.SMTP:
        if self.ssl:
            return smtplib.SMTP_SSL(
                self.host,
                self.port,
                local_hostname=self.local_hostname,
                timeout=self.timeout,
                context=ssl_module.create_default_context(),
            )
        return smtplib.SMTP(
            self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout
        )
