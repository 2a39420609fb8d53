"""SMS through Twilio's REST API, with the ``twilio`` library's ``Client``.

One ``Client`` and one pooled HTTP session per process, shared by the dispatcher's sending
threads. ``TWILIO_API_BASE_URL`` points the client at another Twilio-compatible API (or the
fake one in the tests). Errors are classified for the dispatcher (:func:`classify`):

=================================================  ===========================================
Twilio's answer                                    classification
=================================================  ===========================================
21610 (the recipient replied STOP)                 opt-out: recorded, never retried
21211, 21614, 21408, 21612, 21617, 21635           permanent: the next channel is tried
20429, 21611, HTTP 429, HTTP 5xx                   transient, after ``Retry-After`` if given
20003 / HTTP 401 or 403, 21606, 21659, 21603,      transient (our configuration; logged loudly)
21701-21705 (the messaging service)
other 4xx                                          permanent
connection errors, connect timeouts                transient
read timeouts (the request went out)               transient and *unsure*: asked before retry
=================================================  ===========================================
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import requests
import urllib3
from twilio.base.exceptions import (
    TwilioException,
    TwilioRestException,
    TwilioServiceException,
)
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from config.model import mask_address
from notifiers.base import Message, Notifier, NotifierError, SendResult
from rituals.sms import MAX_LENGTH, count_segments, to_gsm7

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = ["SEND_TIMEOUT", "SmsNotifier", "classify"]

log = logging.getLogger(__name__)

SEND_TIMEOUT = 15.0  # seconds for one API call: connect + answer
MAX_BODY = MAX_LENGTH  # Twilio refuses longer bodies (error 21617)

OPT_OUT = frozenset({21610})
PERMANENT = frozenset({21211, 21614, 21408, 21612, 21617, 21635})
# Errors of this deployment's own settings: no use trying the partner's next channel, and
# maybe fixed before the retries run out. Logged as errors.
OURS = frozenset(
    {20003, 20404, 21606, 21659, 21603, 21604, 21602, 21701, 21702, 21703, 21704, 21705}
)
# Temporary although answered with a 4xx: the sender's queue is full.
BUSY = frozenset({21611})

# The twilio library logs every request at INFO, query strings (phone numbers) included:
# give its HTTP client a logger that only speaks up for warnings.
_HTTP_LOG = logging.getLogger("notifiers.sms.http")
_HTTP_LOG.setLevel(logging.WARNING)


class _NoQueryStrings(logging.Filter):
    """urllib3 logs each request line at DEBUG, and the message list's query has the number
    (``To=%2B1555...``): cut query strings from its arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                a.partition("?")[0] + "?..." if isinstance(a, str) and "?" in a else a
                for a in record.args
            )
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_NoQueryStrings())


class _HttpClient(TwilioHttpClient):  # type: ignore[misc]  # the library has no types
    """The library's client, remembering each thread's last ``Retry-After`` header (the
    library's exceptions carry no headers) and with a connection pool sized for the
    dispatcher's threads."""

    def __init__(self, *, timeout: float, pool_size: int, base_url: str) -> None:
        super().__init__(pool_connections=True, timeout=timeout, logger=_HTTP_LOG)
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=pool_size, pool_block=False)
        assert self.session is not None
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        # requests reads the proxy variables, NO_PROXY, ~/.netrc and the CA bundle variables
        # again on every request: a third of a send's CPU in the dispatch benchmark's
        # profile. The environment's settings for the API's host are read once, here, and
        # the session stops looking (the library always passes its own credentials, so
        # .netrc has nothing to add).
        found = self.session.merge_environment_settings(base_url, {}, None, None, None)
        self.proxy = found["proxies"]
        self.session.verify = found["verify"]
        self.session.trust_env = False
        self.local = threading.local()

    def request(self, *args: Any, **kwargs: Any) -> Response:
        self.local.retry_after = None
        response = super().request(*args, **kwargs)
        if response.status_code == 429 or response.status_code >= 500:
            self.local.retry_after = _seconds(response.headers)
        return response

    def close(self) -> None:
        if self.session is not None:
            self.session.close()


def _seconds(headers: Any) -> float | None:
    value = (headers or {}).get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date: rare from APIs; the backoff decides instead
        return None


def classify(
    status: int | None, code: int | None, text: str, retry_after: float | None = None
) -> NotifierError:
    """Twilio's HTTP status and error code -> the dispatcher's classification."""
    label = f"Twilio {code or status}: {text}".strip()
    if code in OPT_OUT:
        return NotifierError(label, opt_out=True, code=str(code))
    if code in PERMANENT:
        return NotifierError(label, permanent=True, code=str(code))
    if code == 20429 or code in BUSY or status == 429 or (status is not None and status >= 500):
        return NotifierError(label, retry_after=retry_after, code=str(code or status))
    if code in OURS or status in (401, 403, 404):
        return NotifierError(
            f"{label} (check the Twilio settings)", code=str(code or status), config=True
        )
    if status is not None and 400 <= status < 500:
        return NotifierError(label, permanent=True, code=str(code or status))
    return NotifierError(label, code=str(code or status) if code or status else None)


def _classified(
    exc: TwilioRestException | TwilioServiceException, retry_after: float | None
) -> NotifierError:
    """Either error shape twilio 9 raises: the classic one, or RFC 9457 problem details."""
    if isinstance(exc, TwilioServiceException):
        return classify(exc.status, exc.code, exc.detail or exc.title, retry_after)
    return classify(exc.status, exc.code, exc.msg, retry_after)


def _why(exc: requests.exceptions.RequestException) -> str:
    """A short reason for a failed connection, without the URL (a list's query has the
    number in it)."""
    text = str(exc).lower()
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error"
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "resolve" in text or "nodename" in text:
        return "host name not found"
    if "unreachable" in text:
        return "network unreachable"
    return type(exc).__name__


class SmsNotifier(Notifier):
    channel = "sms"
    max_length = MAX_BODY
    can_tell_sent = True
    has_receipts = True
    address_field = "phone"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        api_base_url: str | None = None,
        status_callback: str | None = None,
        timeout: float = SEND_TIMEOUT,
        pool_size: int = 16,
    ) -> None:
        if not (from_number or messaging_service_sid):
            raise ValueError("set TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID")
        base_url = (api_base_url or "https://api.twilio.com").rstrip("/")
        self._http = _HttpClient(timeout=timeout, pool_size=pool_size, base_url=base_url)
        # The settings above are the whole configuration: no TWILIO_REGION or TWILIO_EDGE
        # from the environment rewriting the host behind our back (the library reads
        # os.environ when given an empty mapping, so the keys are given, empty).
        self._client = Client(
            account_sid,
            auth_token,
            http_client=self._http,
            environment={"TWILIO_REGION": "", "TWILIO_EDGE": ""},
        )
        if api_base_url:
            self._client.api.base_url = base_url
        self._messages = self._client.api.v2010.account.messages
        self._from = from_number
        self._service = messaging_service_sid
        self._status_callback = status_callback

    @classmethod
    def from_settings(cls, settings: Settings) -> SmsNotifier:
        if not (settings.twilio_account_sid and settings.twilio_auth_token):
            raise ValueError("set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
        public = settings.public_url
        return cls(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            from_number=settings.twilio_from,
            messaging_service_sid=settings.twilio_messaging_service_sid,
            api_base_url=str(settings.twilio_api_base_url or "") or None,
            status_callback=f"{str(public).rstrip('/')}/twilio/status" if public else None,
            pool_size=max(settings.senders * 2, 4),
        )

    def prepare(self, message: Message) -> Message:
        body = to_gsm7(message.body)
        # "…" -> "..." makes a body longer: never so long that a sendable one is refused.
        if body == message.body or len(body) > MAX_BODY >= len(message.body):
            return message
        return replace(message, body=body)

    def _send(self, message: Message) -> SendResult:
        to = message.recipient.phone
        assert to is not None  # checked by Notifier.send
        sender: dict[str, Any] = (
            {"messaging_service_sid": self._service} if self._service else {"from_": self._from}
        )
        if self._status_callback:
            sender["status_callback"] = self._status_callback
        try:
            created = self._messages.create(to=to, body=message.body, **sender)
        except (TwilioRestException, TwilioServiceException) as exc:
            raise _classified(exc, self._http.local.retry_after) from None
        except requests.exceptions.ConnectTimeout:
            raise NotifierError(f"Twilio: cannot reach {self._api()} (connect timeout)") from None
        except requests.exceptions.Timeout as exc:
            raise NotifierError(
                f"Twilio: no answer in time ({type(exc).__name__}); it may have been sent",
                unsure=True,
            ) from None
        except requests.exceptions.ConnectionError as exc:
            # Dropped after the request went out (urllib3's ProtocolError: the peer closed or
            # reset mid-answer) is as unsure as a timeout; refused or unreachable is not.
            dropped = bool(exc.args) and isinstance(exc.args[0], urllib3.exceptions.ProtocolError)
            if dropped:
                raise NotifierError(
                    f"Twilio: connection to {self._api()} lost before the answer; "
                    "it may have been sent",
                    unsure=True,
                ) from None
            raise NotifierError(f"Twilio: cannot reach {self._api()} ({_why(exc)})") from None
        except (requests.exceptions.RequestException, TwilioException) as exc:
            # Connection refused or reset before an answer, a proxy error, a broken page.
            raise NotifierError(f"Twilio: {type(exc).__name__}") from None
        segments = created.num_segments
        return SendResult(
            provider_id=created.sid,
            status=created.status or "queued",
            segments=int(segments) if segments else count_segments(message.body).count,
        )

    def _api(self) -> str:
        return str(self._client.api.base_url)

    def was_sent(self, message: Message, since: datetime) -> SendResult | None:
        """Twilio's newest messages to the number: one created since `since` (less a minute
        of clock skew) with this body means it was sent."""
        prepared = self.prepare(message)
        to = prepared.recipient.phone
        if not to:
            return None
        after = since - timedelta(minutes=1)
        # Sent through a messaging service, the message is from one of its numbers, which
        # need not be TWILIO_FROM: filter by sender only when that is what sends.
        sender = {"from_": self._from} if self._from and not self._service else {}
        try:
            recent = self._messages.list(to=to, limit=50, **sender)
        except (TwilioRestException, TwilioServiceException) as exc:
            raise _classified(exc, self._http.local.retry_after) from None
        except (requests.exceptions.RequestException, TwilioException) as exc:
            raise NotifierError(f"Twilio: listing messages failed ({type(exc).__name__})") from None
        for sent in recent:
            created_at = sent.date_created
            if created_at is not None and created_at < after:
                continue
            # A trial account prefixes the body; a canceled message never went out.
            if (sent.body or "").endswith(prepared.body) and sent.status != "canceled":
                return SendResult(provider_id=sent.sid, status=sent.status or "sent")
        return None

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        sender = self._service or mask_address(self._from)
        return f"<SmsNotifier from={sender} api={self._client.api.base_url}>"
