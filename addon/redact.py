"""Which values are secrets, and how they are shown when they are."""

from collections.abc import Iterable

REDACTED = "<redacted>"

# RFC 6749, 7523, 7636, 8628 and 8693 parameters and token response members
# whose value grants access or proves identity.
SECRET_FIELDS = frozenset(
    {
        "access_token",
        "refresh_token",
        "id_token",
        "code",
        "code_verifier",
        "client_secret",
        "client_assertion",
        "assertion",
        "password",
        "device_code",
        "subject_token",
        "actor_token",
    }
)


def secret_names(extra: Iterable[str] = ()) -> frozenset[str]:
    """The default secret field names plus the operator's own."""
    extra = {name.strip() for name in extra if name and name.strip()}
    return SECRET_FIELDS | extra if extra else SECRET_FIELDS


def is_secret_path(path: str, secrets: frozenset[str] = SECRET_FIELDS) -> bool:
    """A dotted path is secret when any of its segments names a secret field."""
    if path in secrets:
        return True
    return "." in path and any(part in secrets for part in path.split("."))


def redact_value(value: object, secrets: frozenset[str] = SECRET_FIELDS) -> object:
    """A copy of a JSON value with the members of secret fields redacted, at any
    depth (a copied `authed_user` object holds an access token)."""
    if isinstance(value, dict):
        return {
            key: REDACTED
            if key in secrets and item is not None
            else redact_value(item, secrets)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_value(item, secrets) for item in value]
    return value


def shorten(value: str, keep: int = 6) -> str:
    """A short prefix of a token, for views that must tell tokens apart."""
    if len(value) <= keep + 2:
        return REDACTED
    return f"{value[:keep]}…({len(value)} chars)"
