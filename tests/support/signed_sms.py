"""An SMS posted to Tend's webhook as Twilio posts it: the form signed with the account's
auth token (``X-Twilio-Signature``), and the text of the TwiML answer."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

TOKEN = "0123456789abcdef0123456789abcdef"
PUBLIC = "https://tend.example.com"
PATH = "/twilio/sms"
FORM = "application/x-www-form-urlencoded"


def signed(
    form: dict[str, str], *, token: str = TOKEN, url: str = PUBLIC + PATH
) -> tuple[str, dict[str, str]]:
    """The body and headers of `form` posted to `url`, signed with `token`."""
    signature = RequestValidator(token).compute_signature(url, form)
    return urlencode(form), {"Content-Type": FORM, "X-Twilio-Signature": signature}


def answer_text(client: Any, form: dict[str, str], *, token: str = TOKEN, path: str = PATH) -> str:
    """POST `form` signed to `client` (a FastAPI ``TestClient``) at `path`; the answer must
    be 200, and its messages' text is returned, joined."""
    content, headers = signed(form, token=token, url=PUBLIC + path)
    answer = client.post(path, content=content, headers=headers)
    assert answer.status_code == 200, answer.text
    return "".join(child.text or "" for child in ET.fromstring(answer.content))
