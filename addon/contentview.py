"""The "OAuth token" content view, on whichever content view API mitmproxy has.

mitmproxy 12 replaced 11's `contentviews.View` (a callable returning styled
lines) by `contentviews.Contentview` (`prettify` returning text); the API is
chosen once, at import. Either way the text comes from `addon.tokenview`, and
the view asks to be chosen ("auto") only for token requests and their
responses: requests with a `grant_type`.
"""

from mitmproxy import contentviews, http

from addon import tokenview
from addon.decoding import decode_bounded
from addon.exchange import RequestInfo
from addon.jsonbody import BodySkip
from addon.redact import SECRET_FIELDS

NAME = "OAuth token"
# above the JSON and URL-encoded views (1), which would otherwise be chosen
PRIORITY = 2.0
# a token request is a few hundred bytes; larger bodies are not read
REQUEST_BODY_LIMIT = 65536
# mitmproxy 12 and later
NEW_API = hasattr(contentviews, "Contentview")


def token_request(flow: object) -> RequestInfo | None:
    """The flow's request when it is a token request (it has a grant_type)."""
    if not isinstance(flow, http.HTTPFlow):
        return None
    req = flow.request
    if not _may_name_grant_type(req):
        return None
    path, _, query = req.path.partition("?")
    body = request_body(req)
    info = RequestInfo(req.method, req.host, path, query, req.headers, body)
    return info if info.grant_type is not None else None


def _may_name_grant_type(req: http.Request) -> bool:
    """A cheap test first: most traffic is no token request, and its body is
    then never decoded or parsed."""
    if "grant_type" in req.path:
        return True
    body = req.raw_content
    if not body:
        return False
    # an encoded body is decoded before it is read
    return b"grant_type" in body or bool(req.headers.get("content-encoding"))


def request_body(req: http.Request) -> bytes | None:
    """A request's body, decoded without ever inflating past the limit of a
    token request; None when there is none or it cannot be decoded."""
    return _decoded(req, REQUEST_BODY_LIMIT)


def _decoded(message: http.Message, limit: int | None = None) -> bytes | None:
    if not message.raw_content:
        return None
    encoding = message.headers.get("content-encoding")
    try:
        if limit is None:
            return decode_bounded(message.raw_content, encoding)
        return decode_bounded(message.raw_content, encoding, limit)
    except BodySkip:
        return None


def lines(flow: object, secrets: frozenset[str] = SECRET_FIELDS) -> list[str] | None:
    """The view of a token exchange; None when the flow is not one."""
    request = token_request(flow)
    if request is None:
        return None
    assert isinstance(flow, http.HTTPFlow)
    resp = flow.response
    if resp is None:
        return tokenview.render(request, secrets=secrets)

    return tokenview.render(
        request,
        status=resp.status_code,
        reason=resp.reason,
        headers=resp.headers,
        body=_decoded(resp),
        received=resp.timestamp_end or resp.timestamp_start,
        changes=flow.metadata.get("tokenfix") or (),
        profile=flow.metadata.get("tokenfix_profile"),
        findings=flow.metadata.get("tokenfix_findings"),
        secrets=secrets,
    )


if NEW_API:

    class OAuthTokenView(contentviews.Contentview):
        """The view on mitmproxy 12's API."""

        name = NAME
        syntax_highlight = "none"

        def __init__(self) -> None:
            self.secrets = SECRET_FIELDS

        def prettify(self, data: bytes, metadata: contentviews.Metadata) -> str:
            text = lines(metadata.flow, self.secrets)
            if text is None:
                raise ValueError("not an OAuth token request (no grant_type)")
            return "\n".join(text)

        def render_priority(
            self, data: bytes, metadata: contentviews.Metadata
        ) -> float:
            return PRIORITY if token_request(metadata.flow) is not None else -1

else:

    class OAuthTokenView(contentviews.View):  # type: ignore[no-redef]
        """The view on mitmproxy 11's API."""

        name = NAME

        def __init__(self) -> None:
            self.secrets = SECRET_FIELDS

        def __call__(self, data: bytes, *, flow=None, **metadata):
            text = lines(flow, self.secrets)
            if text is None:
                return None  # mitmproxy falls back to the raw view
            # mitmweb 11 draws an empty line with no height at all
            return NAME, iter([[("text", line or " ")] for line in text])

        def render_priority(self, data: bytes, *, flow=None, **metadata) -> float:
            return PRIORITY if token_request(flow) is not None else -1


def register(view: OAuthTokenView) -> None:
    """Make the view available in mitmweb, the console and the REST API."""
    if not NEW_API:
        # a reloaded script brings a new instance under the same name
        previous = contentviews.get(NAME)
        if previous is not None:
            contentviews.remove(previous)
    contentviews.add(view)


def unregister(view: OAuthTokenView) -> None:
    # mitmproxy 12 has no way to remove a view (its `remove` does nothing);
    # the view keeps no state of the addon's, so it may outlive it
    if not NEW_API and view in contentviews.views:
        contentviews.remove(view)
