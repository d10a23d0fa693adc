"""The benchmarks' traffic and rules: an Auth0-like refresh, and rules files.

The token exchange is Alexa's refresh as Auth0 answered it during the
outage: a form body with HTTP Basic client authentication, and a response
with a JWT access token and no `expires_in`, which the last rule adds.
The other traffic, `GET /userinfo`, is what no rule matches.
"""

import base64
import json
import time

HOST = "127.0.0.1"
TOKEN_PATH = "/oauth/token"
OTHER_PATH = "/userinfo"
TARGET_RULE = "bench-refresh-expires-in"

REFRESH_FORM = (
    "grant_type=refresh_token"
    "&refresh_token=v1.MjQ2NGQ1ZjMtYmVuY2gtcmVmcmVzaC10b2tlbi1ub3QtYS1zZWNyZXQ"
)
REFRESH_HEADERS = {
    "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8",
    # "alexa-skill:bench-not-a-secret"
    "Authorization": "Basic YWxleGEtc2tpbGw6YmVuY2gtbm90LWEtc2VjcmV0",
    "User-Agent": "Apache-HttpClient/4.5.13 (Java/17.0.8)",
    "Accept": "application/json",
}
USERINFO_HEADERS = {
    "Authorization": "Bearer bench-opaque-access-token",
    "Accept": "application/json",
}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _jwt(claims: dict) -> str:
    """An RS256-shaped JWT: the benchmark needs the size, not a valid signature."""
    header = _b64url(b'{"alg":"RS256","typ":"JWT","kid":"bench-key-1"}')
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signature = _b64url(bytes(range(256)))  # a 2048-bit signature's length
    return f"{header}.{payload}.{signature}"


def token_response(now: float | None = None) -> bytes:
    """A refresh response as Auth0 sent it: a day-long JWT, no expires_in."""
    now = int(time.time() if now is None else now)
    claims = {
        "iss": "https://bench.auth0.com/",
        "sub": "auth0|64d2f1c0a1b2c3d4e5f60718",
        "aud": ["https://api.bench.example", "https://bench.auth0.com/userinfo"],
        "iat": now,
        "exp": now + 86400,
        "azp": "alexa-skill",
        "scope": "openid profile offline_access",
    }
    body = {
        "access_token": _jwt(claims),
        "id_token": _jwt({**claims, "aud": "alexa-skill", "exp": now + 36000}),
        "scope": "openid profile offline_access",
        "token_type": "Bearer",
    }
    return json.dumps(body, separators=(",", ":")).encode()


def userinfo_response() -> bytes:
    body = {
        "sub": "auth0|64d2f1c0a1b2c3d4e5f60718",
        "name": "Bench User",
        "email": "bench@example.com",
        "email_verified": True,
    }
    return json.dumps(body, separators=(",", ":")).encode()


# -- rules files ----------------------------------------------------------------

TARGET = """\
  - name: {name}
    match:
      host: "{host}"
      path: {path}
      grant_type: refresh_token
    when:
      expires_in: missing
    actions:
      - default: {{expires_in: {{from_jwt_exp: access_token, fallback: 3600}}}}
"""

# rules for the same token endpoint that this exchange does not satisfy: one
# for the code grant, one chosen at request time and skipped on the status
NEIGHBOURS = (
    """\
  - name: code-exchange-scope
    match:
      host: "{host}"
      path: {path}
      grant_type: authorization_code
    actions:
      - coerce: {{scope: space_delimited}}
""",
    """\
  - name: error-as-invalid-grant
    match:
      host: "{host}"
      path: {path}
      status: 4xx
    when:
      error: {{in: [invalid_request, unauthorized]}}
    actions:
      - status: 400
""",
    """\
  - name: other-path-same-host
    match:
      host: "{host}"
      path: /api/v2/token
    actions:
      - rename: {{expiresIn: expires_in}}
""",
)

# rules for other tenants, in four shapes that exercise every index table
OTHERS = (
    """\
  - name: tenant-{i}-exact
    match:
      host: idp-{i}.example.com
      path: /oauth/token
      grant_type: refresh_token
    when:
      expires_in: missing
    actions:
      - default: {{expires_in: 3600}}
""",
    """\
  - name: tenant-{i}-glob
    match:
      host: "*.tenant-{i}.example.net"
      path: /oauth2/*/token
    actions:
      - coerce: {{expires_in: integer}}
""",
    """\
  - name: tenant-{i}-list
    match:
      host: [login-{i}.example.org, "sso-{i}.*.example.org"]
      path: /token
      method: [POST, PUT]
      client_id: [client-{i}, client-{i}-staging]
    actions:
      - unwrap: data
      - header: {{Cache-Control: no-store}}
""",
    """\
  - name: realm-{i}-any-host
    match:
      path: /realms/realm-{i}/protocol/openid-connect/token
    when:
      token_type: bearer
    actions:
      - set: {{token_type: Bearer}}
""",
)


def rules_yaml(count: int, host: str = HOST) -> str:
    """A rules file of `count` rules whose last one rewrites the canned refresh.

    Up to three rules before it share its host; the rest are other tenants'.
    The rule that applies comes last, so that file order is the worst case.
    """
    if count < 1:
        raise ValueError("a rules file for the benchmark needs at least one rule")
    parts = ["rules:\n"]
    fillers = count - 1
    neighbours = NEIGHBOURS[: min(fillers, len(NEIGHBOURS))]
    parts.extend(text.format(host=host, path=TOKEN_PATH) for text in neighbours)
    for i in range(fillers - len(neighbours)):
        parts.append(OTHERS[i % len(OTHERS)].format(i=i))
    parts.append(TARGET.format(name=TARGET_RULE, host=host, path=TOKEN_PATH))
    return "".join(parts)
