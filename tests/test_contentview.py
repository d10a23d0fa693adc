"""The "OAuth token" view on the content view API of the installed mitmproxy
(11: `contentviews.View`; 12: `contentviews.Contentview`). Run the suite under
both lines to cover both."""

import json

import pytest
from mitmproxy import contentviews, http
from mitmproxy.test import taddons, tflow

from addon import contentview
from addon.redact import secret_names
from tests.helpers import basic_auth

NAME = "OAuth token"
REFRESH = "v1.rotating-refresh-token-value"
ACCESS = "opaque-access-token-value-0123456789"


def token_flow(**response_fields) -> http.HTTPFlow:
    flow = tflow.tflow(resp=True)
    req = flow.request
    req.method, req.path = "POST", "/oauth/token"
    req.headers["Content-Type"] = "application/x-www-form-urlencoded"
    req.headers["Authorization"] = basic_auth("alexa-skill", "client-secret-value")
    req.content = f"grant_type=refresh_token&refresh_token={REFRESH}".encode()
    fields = {"access_token": ACCESS, "token_type": "Bearer", **response_fields}
    flow.response.headers["Content-Type"] = "application/json"
    flow.response.content = json.dumps(fields).encode()
    return flow


def json_flow() -> http.HTTPFlow:
    flow = tflow.tflow(resp=True)
    flow.request.path = "/api/devices"
    flow.response.headers["Content-Type"] = "application/json"
    flow.response.content = b'{"devices": []}'
    return flow


def shown(message, flow, view_name: str) -> tuple[str | None, str]:
    """(which view answered, its text) through the installed API's public calls."""
    if contentview.NEW_API:
        result = contentviews.prettify_message(message, flow, view_name=view_name)
        return result.view_name, result.text
    description, lines, _error = contentviews.get_message_content_view(
        view_name, message, flow
    )
    lines = list(lines)
    # a blank line is drawn as a space: mitmweb 11 gives an empty one no height
    assert description != NAME or [("text", " ")] in lines
    text = "\n".join("".join(text for _style, text in line) for line in lines)
    return description, "\n".join(line.rstrip() for line in text.split("\n"))


@pytest.fixture
def view():
    with taddons.context():
        view = contentview.OAuthTokenView()
        contentview.register(view)
        yield view
        contentview.unregister(view)


class TestApi:
    def test_the_api_matches_the_installed_mitmproxy(self):
        from mitmproxy import version

        major = int(version.VERSION.split(".")[0])
        assert contentview.NEW_API is (major >= 12)
        base = contentviews.Contentview if major >= 12 else contentviews.View
        assert isinstance(contentview.OAuthTokenView(), base)


class TestAutoChoice:
    def test_a_token_response_is_shown_in_the_token_view(self, view):
        flow = token_flow(expires_in=300)

        name, text = shown(flow.response, flow, "auto")

        assert name == NAME
        lines = text.splitlines()
        assert lines[:3] == [
            "OAuth token request: POST /oauth/token",
            "grant type         refresh_token",
            'client             "alexa-skill", authenticated with HTTP Basic '
            "(client_secret_basic)",
        ]
        assert "  access_token     opaque, opaque…(36 chars)" in lines
        assert "  expires_in       300" in lines

    def test_a_token_request_is_shown_in_the_token_view(self, view):
        flow = token_flow()
        name, text = shown(flow.request, flow, "auto")
        assert name == NAME
        assert "  refresh_token    v1.rot…(31 chars)" in text.splitlines()

    def test_other_json_keeps_the_json_view(self, view):
        flow = json_flow()
        name, text = shown(flow.response, flow, "auto")
        assert name == "JSON"
        assert '"devices"' in text

    def test_chosen_by_hand_for_another_flow_it_declines(self, view):
        flow = json_flow()
        name, text = shown(flow.response, flow, NAME)
        if contentview.NEW_API:
            assert text.startswith("Couldn't parse as OAuth token:")
            assert "not an OAuth token request (no grant_type)" in text
        else:
            assert name == "Couldn't parse: falling back to Raw"
            assert text == '{"devices": []}'

    def test_a_gzipped_request_body_is_read(self, view):
        flow = token_flow()
        flow.request.encode("gzip")
        assert shown(flow.response, flow, "auto")[0] == NAME


class TestWhatTheViewShows:
    def test_tokenfix_changes_and_findings_from_the_flow_metadata(self, view):
        flow = token_flow(expires_in=299)
        flow.metadata["tokenfix"] = [
            {
                "rule": "local-refresh",
                "target": "body",
                "field": "expires_in",
                "op": "default",
                "old": None,
                "new": 299,
            }
        ]
        flow.metadata["tokenfix_profile"] = "alexa"
        flow.metadata["tokenfix_findings"] = [
            {"code": "no-store", "severity": "warning", "message": "no no-store"}
        ]

        lines = shown(flow.response, flow, NAME)[1].splitlines()

        start = lines.index("client profile alexa: 0 errors, 1 warning")
        assert lines[start : start + 8] == [
            "client profile alexa: 0 errors, 1 warning",
            "  warning  no no-store",
            "",
            "tokenfix changes",
            "  rule 'local-refresh'",
            "    default expires_in",
            "      before       (missing or null)",
            "      after        299",
        ]

    def test_a_request_without_its_response_yet(self, view):
        flow = token_flow()
        flow.response = None
        text = shown(flow.request, flow, NAME)[1]
        assert text.endswith("\n\nresponse: not received yet")

    def test_the_operators_secret_fields_are_hidden(self, view):
        flow = token_flow(session_key="operator-named-secret-value")
        view.secrets = secret_names(["session_key"])

        text = shown(flow.response, flow, NAME)[1]

        assert "  session_key      operat…(27 chars)" in text.splitlines()
        for secret in (ACCESS, REFRESH, "client-secret-value", "operator-named"):
            assert secret not in text


class TestRegistration:
    def test_registering_again_replaces_the_earlier_view(self, view):
        again = contentview.OAuthTokenView()
        contentview.register(again)
        flow = token_flow()
        assert shown(flow.response, flow, "auto")[0] == NAME
        if not contentview.NEW_API:
            assert [v for v in contentviews.views if v.name == NAME] == [again]
        contentview.unregister(again)

    @pytest.mark.skipif(contentview.NEW_API, reason="mitmproxy 12 cannot remove views")
    def test_unregister_removes_it_on_mitmproxy_11(self):
        view = contentview.OAuthTokenView()
        contentview.register(view)
        contentview.unregister(view)
        assert contentviews.get(NAME) is None
        contentview.unregister(view)  # twice is harmless
