"""The webhook channel: a signed JSON POST with an idempotency key.

The receiver checks ``X-Closer-Signature`` = ``sha256=`` + HMAC-SHA256 of
``"{X-Closer-Timestamp}.{raw body}"`` under the shared secret (see `verify`),
and applies each ``Idempotency-Key`` (the message id) once.  The contract for
receivers (payload, headers, signature, retries) is docs/webhooks.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from adapters.base import DeliveryReceipt, TemplateAdapter, now
from adapters.errors import DeliveryError
from adapters.message import Message, MessageContext
from adapters.rendering import Renderer

SIGNATURE_HEADER = "X-Closer-Signature"
TIMESTAMP_HEADER = "X-Closer-Timestamp"


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str | bytes, headers: Mapping[str, str], body: bytes,
           tolerance: float = 300.0, at: float | None = None) -> bool:
    """True when ``headers`` carry a valid, fresh signature of ``body``."""
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    signature = lowered.get(SIGNATURE_HEADER.lower(), "")
    try:
        age = abs((time.time() if at is None else at) - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance and hmac.compare_digest(signature, sign(secret, timestamp, body))


def payload(message: Message) -> bytes:
    """The JSON body for ``message``: the same bytes on every retry."""
    data = {
        "message_id": message.message_id, "kind": message.kind.value,
        "medium": message.medium, "to": list(message.to), "subject": message.subject,
        "body": message.body, "headers": message.headers,
        "attachments": [{"filename": a.filename, "mimetype": a.mimetype,
                         "content_base64": base64.b64encode(a.content).decode()}
                        for a in message.attachments],
    }
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def post_signed(url: str, secret: str | bytes, body: bytes, *, idempotency_key: str,
                channel: str, timeout: float = 10.0) -> dict[str, Any]:
    """POST ``body`` signed; `DeliveryError` (retryable for 408, 429, 5xx, network)."""
    timestamp = str(int(time.time()))
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "Idempotency-Key": idempotency_key,
        TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret, timestamp, body),
        "User-Agent": "closer-webhook/0.1",
    })
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return {"url": url, "status": response.status,
                    "response": response.read(2000).decode(errors="replace")}
    except urllib.error.HTTPError as error:
        retryable = error.code in (408, 425, 429) or error.code >= 500
        raise DeliveryError(channel, idempotency_key, f"HTTP {error.code} from {url}",
                            retryable=retryable) from error
    except (urllib.error.URLError, OSError) as error:
        raise DeliveryError(channel, idempotency_key, f"{url}: {error}", retryable=True) \
            from error


class WebhookAdapter(TemplateAdapter):
    """POSTs each message as signed JSON to ``url`` (chat tools, ATSs)."""

    channel = "webhook"
    medium = None  # the kind's own medium

    def __init__(self, *, url: str, secret: str | bytes, timeout: float = 10.0,
                 templates: Renderer | str | None = None) -> None:
        super().__init__(templates=templates)
        if not secret:
            raise ValueError("a webhook needs a secret to sign with")
        self.url, self.secret, self.timeout = url, secret, timeout

    def headers(self, context: MessageContext, subject: str) -> dict[str, str]:
        headers = {"Idempotency-Key": context.message_id}
        if context.candidacy_id:
            headers["X-Closer-Candidacy"] = context.candidacy_id
        return headers

    def deliver(self, message: Message) -> DeliveryReceipt:
        detail = post_signed(self.url, self.secret, payload(message), timeout=self.timeout,
                             idempotency_key=message.message_id, channel=self.channel)
        return DeliveryReceipt(self.channel, message.message_id, "sent", now(), detail)
