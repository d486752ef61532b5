"""Account keys: 64 random bytes, base64, as Azure Batch gives them."""

import base64
import secrets


def new_key() -> str:
    return base64.b64encode(secrets.token_bytes(64)).decode()
