"""Shared Key authentication, exactly as the azure-batch SDK and the az CLI sign requests.

    Authorization: SharedKey <account>:<base64 HMAC-SHA256 of the string to sign>

The string to sign is, joined by newlines: the method; the values of the eleven
standard headers below (Content-Length "0" for a body-less request other than
GET/HEAD, empty when absent); every non-empty header whose lower-cased name holds
"ocp-", as "name:value", sorted; then "/<account><path as sent, still encoded>";
then, per query parameter sorted by name, "\\nname:value" (value decoded, first
value only, empty values left out). We rebuild it from the request as received.

A captured request cannot be replayed later: `ocp-date` (or `Date`), which the
signature covers, must be within BATCHSITE_SHARED_KEY_SKEW of our clock. Keys are
compared in constant time, against both of the account's keys. Every failure is
the same 401 AuthenticationFailed, whatever the account or the job: nothing says
whether an account exists.
"""

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs

from django.conf import settings
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from .models import BatchAccount

SIGNED_HEADERS = ("content-encoding", "content-language", "content-length", "content-md5", "content-type", "date",
                  "if-modified-since", "if-match", "if-none-match", "if-unmodified-since", "range")


def raw_path(request) -> str:
    """The request path as the client sent it, percent-encoding kept."""
    scope = getattr(request, "scope", None)  # ASGI (daphne): the bytes on the wire
    if scope and scope.get("raw_path"):
        return scope["raw_path"].decode("latin-1").split("?", 1)[0]
    return request.META.get("RAW_URI", "").split("?", 1)[0] or request.get_full_path().split("?", 1)[0]


def string_to_sign(request, account: str) -> str:
    headers = {name.lower(): value for name, value in request.headers.items() if value}
    if request.method not in ("GET", "HEAD") and "content-length" not in headers:
        headers["content-length"] = "0"
    lines = [request.method, *(headers.get(name, "") for name in SIGNED_HEADERS)]
    text = "\n".join(lines) + "\n"
    for name, value in sorted((n, v) for n, v in headers.items() if "ocp-" in n):
        text += f"{name}:{value}\n"
    text += f"/{account}{raw_path(request)}"
    query = parse_qs(request.META.get("QUERY_STRING", ""))
    for name in sorted(query):
        if query[name][0]:
            text += f"\n{name}:{query[name][0]}"
    return text


def sign(key: str, text: str) -> str:
    return base64.b64encode(hmac.new(base64.b64decode(key), text.encode(), hashlib.sha256).digest()).decode()


@dataclass(frozen=True)
class AccountScope:
    """request.auth for a Shared Key request: the account it acts for, with every right."""

    account: BatchAccount


class AccountUser:
    """request.user for a Shared Key request: the account's key holder, not a person."""

    is_authenticated = True
    is_active = True
    is_staff = is_superuser = False
    pk = id = None

    def __init__(self, account: BatchAccount):
        self.account = account
        self.username = f"account {account.name}"

    def __str__(self) -> str:
        return self.username


def _refuse(detail: str):
    raise AuthenticationFailed(detail)


def _fresh(request) -> None:
    stamp = request.headers.get("ocp-date") or request.headers.get("Date")
    if not stamp:
        _refuse("The request has no ocp-date or Date header.")
    try:
        sent = parsedate_to_datetime(stamp)
    except (TypeError, ValueError):
        _refuse("The request's date is not an RFC 1123 date.")
    if sent.tzinfo is None or abs(timezone.now() - sent) > settings.BATCHSITE_SHARED_KEY_SKEW:
        _refuse("The request's date is too far from the server's time.")


class SharedKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        header = get_authorization_header(request).decode("latin-1")
        if not header.startswith("SharedKey "):
            return None
        name, _, signature = header[len("SharedKey "):].strip().partition(":")
        _fresh(request)
        account = BatchAccount.objects.filter(name=name).first()
        text = string_to_sign(request, name)
        # The same work whether or not the account exists: a signature check per key.
        keys = account.keys() if account else (base64.b64encode(b"\0" * 64).decode(),) * 2
        matched = False
        for key in keys:
            try:
                matched |= hmac.compare_digest(sign(key, text), signature)
            except (binascii.Error, ValueError):
                pass
        if account is None or not matched:
            _refuse("The MAC signature found in the HTTP request is not the same as any computed signature.")
        return AccountUser(account), AccountScope(account)

    def authenticate_header(self, request):
        return "SharedKey"
