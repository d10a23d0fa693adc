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


# shorter values would mask ordinary words; their own fields still hide them
MIN_KNOWN = 8


def secret_values(
    documents: Iterable[object],
    secrets: frozenset[str] = SECRET_FIELDS,
    also: Iterable[str | None] = (),
) -> list[str]:
    """The string values of secret fields at any depth of these JSON values
    (request parameters, response bodies), and `also`, longest first so that a
    secret holding another is masked whole."""
    found = {value for value in also if isinstance(value, str)}
    for document in documents:
        _collect(document, secrets, found)
    return sorted((v for v in found if len(v) >= MIN_KNOWN), key=len, reverse=True)


def _collect(value: object, secrets: frozenset[str], found: set) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in secrets and isinstance(item, str):
                found.add(item)
            else:
                _collect(item, secrets, found)
    elif isinstance(value, list):
        for item in value:
            _collect(item, secrets, found)


def mask_known(value: object, known: Iterable[str]) -> object:
    """A JSON value (or text) with every occurrence of a known secret value
    redacted: a copy under another name, or an error description quoting the
    refresh token the client sent."""
    if isinstance(value, str):
        for secret in known:
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {key: mask_known(item, known) for key, item in value.items()}
    if isinstance(value, list):
        return [mask_known(item, known) for item in value]
    return value


def shorten(value: str, keep: int = 6) -> str:
    """A short prefix of a token, for views that must tell tokens apart."""
    if len(value) <= keep + 2:
        return REDACTED
    return f"{value[:keep]}…({len(value)} chars)"
