"""How an alert reads in a Telegram message and an e-mail (plain text: no markup to escape)."""

from __future__ import annotations

from quantdesk.alerts.model import Delivery

TELEGRAM_MAX_CHARS = 4096  # Bot API limit of one message's text
SUBJECT_MAX_CHARS = 200


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _when(delivery: Delivery) -> str:
    return delivery.alert.ts.isoformat(timespec="seconds").replace("+00:00", "Z")


def headline(delivery: Delivery) -> str:
    """``[CRITICAL] risk_halt: <title> (+N similar)``: one line, no control characters."""
    alert = delivery.alert
    line = f"[{alert.severity.value.upper()}] {alert.kind.value}: {_one_line(alert.title)}"
    if delivery.similar:
        line += f" (+{delivery.similar} similar)"
    return line


def footer(delivery: Delivery) -> list[str]:
    alert = delivery.alert
    who = f"user {alert.user_id}" if alert.user_id is not None else "system"
    lines = [f"{who} | {_when(delivery)}"]
    if delivery.similar:
        lines.append(
            f"(+{delivery.similar} similar alert{'s' if delivery.similar != 1 else ''} "
            "suppressed in the deduplication window)"
        )
    if delivery.dropped:
        lines.append(
            f"(+{delivery.dropped} other alert{'s' if delivery.dropped != 1 else ''} "
            "dropped by this channel's rate limit)"
        )
    return lines


def text(delivery: Delivery) -> str:
    parts = [headline(delivery)]
    if delivery.alert.body:
        parts.append(delivery.alert.body)
    parts.append("\n".join(footer(delivery)))
    return "\n\n".join(parts)


def telegram_text(delivery: Delivery) -> str:
    body = "QuantDesk " + text(delivery)
    if len(body) > TELEGRAM_MAX_CHARS:
        body = body[: TELEGRAM_MAX_CHARS - 1] + "\u2026"
    return body


def email_subject(delivery: Delivery) -> str:
    subject = f"[QuantDesk] {headline(delivery)}"
    if len(subject) > SUBJECT_MAX_CHARS:
        subject = subject[: SUBJECT_MAX_CHARS - 1] + "\u2026"
    return subject
