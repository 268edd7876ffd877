"""``X-Twilio-Signature`` checks shared by the Twilio channels (SMS and Voice)."""
from __future__ import annotations

import hmac
from collections.abc import Mapping

from twilio.request_validator import RequestValidator

from channels.base import ForgedRequest


class TwilioSignature:
    """Checks a webhook's signature over ``GATEWAY_PUBLIC_URL`` + path and query, with Twilio's validator."""

    def __init__(self, auth_token: str | None, public_url: str | None) -> None:
        self.public_url = public_url
        self._validator = RequestValidator(auth_token) if auth_token else None

    def verify(self, path_qs: str, params: Mapping[str, str], signature: str | None) -> None:
        """Raise ``ForgedRequest`` unless ``signature`` is Twilio's for this URL and form."""
        if self._validator is None or not self.public_url:
            raise ForgedRequest("Twilio webhooks are disabled: GATEWAY_TWILIO_AUTH_TOKEN and "
                                "GATEWAY_PUBLIC_URL must be set to verify signatures")
        if not signature:
            raise ForgedRequest("missing X-Twilio-Signature")
        url, form = self.public_url + path_qs, dict(params)
        # Twilio signs the URL it was given, ours: one HMAC settles it. The validator's own check
        # (which always computes two, the URL with and without a default port) only when it fails.
        if hmac.compare_digest(self._validator.compute_signature(url, form).encode(), signature.encode()):
            return
        if not self._validator.validate(url, form, signature):
            raise ForgedRequest("X-Twilio-Signature does not match")
