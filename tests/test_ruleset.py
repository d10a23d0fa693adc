"""RuleSet: which rules may apply to a request, found through the host index."""

import base64
import fnmatch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mitmproxy.http import Headers

from addon import ruleset
from addon.exchange import RequestInfo, request_info
from addon.rules import parse_rules
from addon.ruleset import RuleSet, request_matches

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def rules_for(*matches: str) -> RuleSet:
    """One rule per `match` flow mapping, named r0, r1, ... in file order."""
    text = "rules:\n" + "".join(
        f"  - name: r{i}\n    match: {m}\n    actions: [{{set: {{a: 1}}}}]\n"
        for i, m in enumerate(matches)
    )
    return parse_rules(text, "rules.yaml")


def names(rules) -> list[str]:
    return [rule.name for rule in rules]


def post(
    url_path: str = "/oauth/token",
    body: bytes | None = b"grant_type=refresh_token",
    host: str = "t.auth0.com",
    method: str = "POST",
    **headers: str,
) -> RequestInfo:
    names_ = {k.replace("_", "-"): v for k, v in headers.items()}
    return request_info(method, host, url_path, "", names_, body)


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


class TestHostIndex:
    def test_exact_host(self):
        rs = rules_for("{host: login.example.com}")
        assert names(rs.by_host_path("login.example.com", "/")) == ["r0"]
        assert names(rs.by_host_path("LOGIN.Example.COM", "/")) == ["r0"]
        assert rs.by_host_path("other.example.com", "/") == ()
        assert rs.by_host_path("example.com", "/") == ()

    def test_exact_host_written_in_capitals(self):
        rs = rules_for("{host: Login.Example.com}")
        assert names(rs.by_host_path("login.example.com", "/")) == ["r0"]

    @pytest.mark.parametrize(
        "host", ["t.auth0.com", "eu.t.auth0.com", "T.AUTH0.COM", "x-y.auth0.com"]
    )
    def test_glob_found_through_its_tail(self, host):
        rs = rules_for("{host: '*.auth0.com'}")
        assert names(rs.by_host_path(host, "/oauth/token")) == ["r0"]

    @pytest.mark.parametrize(
        "host", ["auth0.com", "t.auth0.com.evil.net", "tauth0.com", "t.auth0.co"]
    )
    def test_glob_tail_alone_is_not_a_match(self, host):
        rs = rules_for("{host: '*.auth0.com'}")
        assert rs.by_host_path(host, "/oauth/token") == ()

    @pytest.mark.parametrize(
        ("pattern", "host", "expected"),
        [
            ("*", "anything.example", True),
            ("*", "localhost", True),
            ("auth*", "auth.example.com", True),
            ("auth*", "authz", True),
            ("auth*", "login.example.com", False),
            ("*auth0.com", "auth0.com", True),
            ("*auth0.com", "myauth0.com", True),
            ("tenant-?.example.com", "tenant-1.example.com", True),
            ("tenant-?.example.com", "tenant-12.example.com", False),
            ("tenant[12].example.com", "tenant2.example.com", True),
            ("login.*.example.com", "login.eu.example.com", True),
            ("login.*.example.com", "login.example.com", False),
            ("*.example.*", "a.example.org", True),
            ("127.0.0.*", "127.0.0.1", True),
        ],
    )
    def test_globs_of_every_shape(self, pattern, host, expected):
        rs = rules_for(f"{{host: '{pattern}'}}")
        assert bool(rs.by_host_path(host, "/")) is expected

    def test_rule_without_host_matches_every_host(self):
        rs = rules_for("{path: /oauth/token}")
        assert names(rs.by_host_path("a.example", "/oauth/token")) == ["r0"]
        assert names(rs.by_host_path("localhost", "/oauth/token")) == ["r0"]

    def test_list_of_hosts_mixing_exact_and_glob(self):
        rs = rules_for("{host: [login.example.com, '*.auth0.com']}")
        assert names(rs.by_host_path("login.example.com", "/")) == ["r0"]
        assert names(rs.by_host_path("t.auth0.com", "/")) == ["r0"]
        assert rs.by_host_path("example.com", "/") == ()

    def test_list_with_an_unkeyed_glob(self):
        rs = rules_for("{host: [login.example.com, 'auth*']}")
        assert names(rs.by_host_path("authserver", "/")) == ["r0"]
        assert names(rs.by_host_path("login.example.com", "/")) == ["r0"]
        assert rs.by_host_path("other.example.com", "/") == ()

    def test_file_order_kept_across_index_tables(self):
        rs = rules_for(
            "{host: '*'}",
            "{host: t.auth0.com}",
            "{path: /oauth/token}",
            "{host: '*.auth0.com'}",
            "{host: other.com}",
            "{host: ['*.com', t.auth0.com]}",
        )
        found = rs.by_host_path("t.auth0.com", "/oauth/token")
        assert names(found) == ["r0", "r1", "r2", "r3", "r5"]

    def test_a_rule_listed_under_two_keys_appears_once(self):
        rs = rules_for("{host: ['*.auth0.com', '*.eu.auth0.com']}")
        assert names(rs.by_host_path("t.eu.auth0.com", "/")) == ["r0"]

    @pytest.mark.parametrize(
        ("pattern", "key"),
        [
            ("*.auth0.com", ".auth0.com"),
            ("*.AUTH0.com", ".auth0.com"),
            ("*auth0.com", ".com"),
            ("login.*.example.com", ".example.com"),
            ("tenant[12].example.com", ".example.com"),
            ("auth?.example.com", ".example.com"),
            ("*", None),
            ("auth*", None),
            ("*.example.*", None),
            ("127.0.0.*", None),
        ],
    )
    def test_index_key_of_a_glob(self, pattern, key):
        assert ruleset._host_key(pattern) == key


# hosts and globs over a small alphabet, so that hits are common
HOST_CHARS = st.sampled_from("abA.")
GLOB_PARTS = st.sampled_from(["a", "b", ".", "*", "?", "[ab]", "[!a]", "[.]", "A"])


@st.composite
def host_globs(draw):
    return "".join(draw(st.lists(GLOB_PARTS, min_size=1, max_size=6)))


class TestIndexAgreesWithGlobs:
    @settings(max_examples=300, deadline=None)
    @given(
        patterns=st.lists(st.lists(host_globs(), min_size=1, max_size=3), max_size=5),
        hosts=st.lists(
            st.text(HOST_CHARS, min_size=1, max_size=7), min_size=1, max_size=10
        ),
    )
    def test_same_answer_as_trying_every_rule(self, patterns, hosts):
        flows = [
            "{host: [" + ", ".join(f"'{p}'" for p in globs) + "]}" for globs in patterns
        ]
        rs = rules_for(*flows) if flows else parse_rules("rules: []\n")
        for host in hosts:
            expected = [
                f"r{i}"
                for i, globs in enumerate(patterns)
                if any(fnmatch.fnmatchcase(host.lower(), g.lower()) for g in globs)
            ]
            assert names(rs.by_host_path(host, "/")) == expected


class TestPaths:
    @pytest.mark.parametrize(
        ("pattern", "path", "expected"),
        [
            ("/oauth/token", "/oauth/token", True),
            ("/oauth/token", "/OAuth/Token", True),
            ("/oauth/token", "/oauth/token/", False),
            ("/oauth/token", "/v2/oauth/token", False),
            ("/oauth/*", "/oauth/v2/token", True),
            ("*/token", "/realms/x/protocol/openid-connect/token", True),
            ("/oauth2/v?/token", "/oauth2/v1/token", True),
            ("[/]token", "/token", True),
        ],
    )
    def test_path_globs(self, pattern, path, expected):
        rs = rules_for(f"{{path: '{pattern}'}}")
        assert bool(rs.by_host_path("h", path)) is expected

    def test_list_of_paths(self):
        rs = rules_for("{path: [/token, /oauth/token]}")
        assert names(rs.by_host_path("h", "/token")) == ["r0"]
        assert names(rs.by_host_path("h", "/oauth/token")) == ["r0"]
        assert rs.by_host_path("h", "/authorize") == ()

    def test_host_and_path_both_hold(self):
        rs = rules_for("{host: a.com, path: /token}", "{host: a.com}", "{path: /token}")
        assert names(rs.by_host_path("a.com", "/token")) == ["r0", "r1", "r2"]
        assert names(rs.by_host_path("a.com", "/other")) == ["r1"]
        assert names(rs.by_host_path("b.com", "/token")) == ["r2"]

    def test_path_is_matched_without_the_query(self):
        rs = rules_for("{path: /oauth/token}")
        req = post("/oauth/token?grant_type=refresh_token", body=None)
        assert names(rs.for_request(req)) == ["r0"]


class TestCache:
    def test_answer_is_remembered(self):
        rs = rules_for("{host: '*.auth0.com'}")
        first = rs.by_host_path("t.auth0.com", "/oauth/token")
        assert rs.by_host_path("t.auth0.com", "/oauth/token") is first

    def test_correct_after_many_distinct_keys(self, monkeypatch):
        monkeypatch.setattr(ruleset, "CACHE_SIZE", 8)
        rs = rules_for("{host: '*.auth0.com', path: /oauth/token}", "{host: '*'}")
        for round_ in range(3):
            for i in range(20):
                host = f"t{i}.auth0.com" if i % 2 else f"t{i}.example.com"
                got = names(rs.by_host_path(host, "/oauth/token"))
                assert got == (["r0", "r1"] if i % 2 else ["r1"]), (round_, i)
                assert names(rs.by_host_path(host, "/x")) == ["r1"]
                assert len(rs._cache) <= 8

    def test_cleared_when_full(self, monkeypatch):
        monkeypatch.setattr(ruleset, "CACHE_SIZE", 3)
        rs = rules_for("{host: a.com}")
        for path in ("/1", "/2", "/3"):
            rs.by_host_path("a.com", path)
        assert len(rs._cache) == 3
        assert names(rs.by_host_path("a.com", "/4")) == ["r0"]
        assert list(rs._cache) == [("a.com", "/4")]

    def test_default_size(self):
        assert ruleset.CACHE_SIZE == 4096


class TestRuleSet:
    def test_len_rules_and_path(self):
        rs = rules_for("{}", "{}")
        assert len(rs) == 2
        assert names(rs.rules) == ["r0", "r1"]
        assert rs.path == "rules.yaml"

    def test_empty(self):
        rs = parse_rules("rules: []\n")
        assert len(rs) == 0
        assert rs.for_request(post()) == ()


class TestMethod:
    @pytest.mark.parametrize(
        ("match", "method", "expected"),
        [
            ("{}", "POST", True),
            ("{}", "post", True),
            ("{}", "GET", False),
            ("{method: GET}", "GET", True),
            ("{method: get}", "GET", True),
            ("{method: GET}", "POST", False),
            ("{method: [GET, POST]}", "POST", True),
            ("{method: [GET, POST]}", "PUT", False),
        ],
    )
    def test_method(self, match, method, expected):
        rs = rules_for(match)
        assert bool(rs.for_request(post(method=method))) is expected


class TestHeaders:
    def test_glob_with_case_insensitive_name_and_value(self):
        rs = rules_for("{headers: {User-Agent: 'apache-httpclient/*'}}")
        req = post(User_Agent="Apache-HttpClient/4.5 (Java/1.8)")
        assert names(rs.for_request(req)) == ["r0"]

    def test_rule_name_in_any_case(self):
        rs = rules_for("{headers: {USER-AGENT: '*Alexa*'}}")
        assert names(rs.for_request(post(user_agent="x Alexa y"))) == ["r0"]

    def test_with_mitmproxy_headers(self):
        rs = rules_for("{headers: {user-agent: 'Apache-HttpClient/*'}}")
        headers = Headers(**{"User-Agent": "Apache-HttpClient/4.5"})
        req = RequestInfo("POST", "h", "/", "", headers, None)
        assert names(rs.for_request(req)) == ["r0"]

    def test_missing_header_fails(self):
        rs = rules_for("{headers: {User-Agent: '*'}}")
        assert rs.for_request(post()) == ()

    def test_empty_header_value_against_star(self):
        rs = rules_for("{headers: {X-Empty: '*'}}")
        assert names(rs.for_request(post(X_Empty=""))) == ["r0"]

    def test_whole_value(self):
        rs = rules_for("{headers: {Accept: json}}")
        assert rs.for_request(post(Accept="application/json")) == ()

    def test_every_header_must_hold(self):
        rs = rules_for("{headers: {User-Agent: 'Alexa*', Accept: '*json*'}}")
        assert names(rs.for_request(post(User_Agent="Alexa", Accept="json"))) == ["r0"]
        assert rs.for_request(post(User_Agent="Alexa", Accept="text/html")) == ()

    def test_list_of_globs(self):
        rs = rules_for("{headers: {User-Agent: ['Alexa*', 'Google*']}}")
        assert names(rs.for_request(post(User_Agent="Google-HA"))) == ["r0"]
        assert rs.for_request(post(User_Agent="curl/8")) == ()


class TestGrantType:
    def test_from_a_form_body(self):
        rs = rules_for("{grant_type: refresh_token}")
        assert names(rs.for_request(post(body=b"grant_type=refresh_token"))) == ["r0"]
        assert rs.for_request(post(body=b"grant_type=authorization_code")) == ()

    def test_from_a_json_body(self):
        rs = rules_for("{grant_type: refresh_token}")
        req = post(body=b'{"grant_type": "refresh_token", "client_id": "c"}')
        assert names(rs.for_request(req)) == ["r0"]

    def test_only_in_the_query(self):
        # case 16: the Go client puts grant_type only in the query
        rs = rules_for("{host: auth.example.com, grant_type: refresh_token}")
        req = post(
            "/oauth/token?redirect_uri=https%3A%2F%2Fwww.bing.com%2Fagents%2Foauth"
            "&grant_type=refresh_token",
            body=b"refresh_token=RT",
            host="auth.example.com",
            **FORM,
        )
        assert names(rs.for_request(req)) == ["r0"]

    def test_list_of_grant_types(self):
        rs = rules_for("{grant_type: [refresh_token, authorization_code]}")
        assert rs.for_request(post(body=b"grant_type=authorization_code"))
        assert not rs.for_request(post(body=b"grant_type=password"))

    def test_exact_and_case_sensitive(self):
        rs = rules_for("{grant_type: refresh_token}")
        assert rs.for_request(post(body=b"grant_type=Refresh_Token")) == ()
        assert rs.for_request(post(body=b"grant_type=refresh_token_x")) == ()

    @pytest.mark.parametrize(
        "body",
        [None, b"", b"refresh_token=RT", b'{"grant_type": ["refresh_token"]}'],
        ids=["no body", "empty", "absent", "json list"],
    )
    def test_absent_or_not_a_string(self, body):
        rs = rules_for("{grant_type: refresh_token}")
        assert rs.for_request(post(body=body)) == ()

    def test_no_grant_type_condition_matches_any(self):
        rs = rules_for("{}")
        assert names(rs.for_request(post(body=None))) == ["r0"]


class TestClientId:
    def test_from_a_form_body(self):
        rs = rules_for("{client_id: alexa-skill}")
        req = post(body=b"grant_type=refresh_token&client_id=alexa-skill")
        assert names(rs.for_request(req)) == ["r0"]

    def test_from_a_json_body(self):
        rs = rules_for("{client_id: alexa-skill}")
        req = post(body=b'{"grant_type": "refresh_token", "client_id": "alexa-skill"}')
        assert names(rs.for_request(req)) == ["r0"]

    def test_from_http_basic(self):
        rs = rules_for("{client_id: alexa-skill}")
        req = post(Authorization=basic("alexa-skill:secret"))
        assert names(rs.for_request(req)) == ["r0"]

    def test_from_http_basic_form_decoded(self):
        # RFC 6749 section 2.3.1: the id is form-encoded inside Basic
        rs = rules_for("{client_id: my client}")
        req = post(Authorization=basic("my%20client:s"))
        assert names(rs.for_request(req)) == ["r0"]

    def test_other_client(self):
        rs = rules_for("{client_id: alexa-skill}")
        assert rs.for_request(post(Authorization=basic("google:secret"))) == ()
        assert rs.for_request(post(body=b"client_id=google")) == ()
        assert rs.for_request(post(body=b"grant_type=refresh_token")) == ()

    def test_list_of_client_ids(self):
        rs = rules_for("{client_id: [a, b]}")
        assert rs.for_request(post(body=b"client_id=b"))
        assert not rs.for_request(post(body=b"client_id=c"))

    @pytest.mark.parametrize(
        "body",
        [
            b'{"client_id": ["alexa-skill"]}',
            b'{"client_id": {"id": "alexa-skill"}}',
            b'{"client_id": 7}',
            b'{"client_id": null}',
        ],
        ids=["list", "object", "number", "null"],
    )
    def test_json_client_id_that_is_not_a_string(self, body):
        rs = rules_for("{client_id: [alexa-skill, '7']}")
        assert rs.for_request(post(body=body)) == ()


class TestRequestMatches:
    def test_all_request_side_conditions_together(self):
        rs = rules_for(
            "{host: '*.auth0.com', path: /oauth/token, method: POST,"
            " grant_type: refresh_token, client_id: alexa,"
            " headers: {User-Agent: 'Apache-HttpClient/*'}}"
        )
        (rule,) = rs.rules
        good = dict(Authorization=basic("alexa:s"), User_Agent="Apache-HttpClient/4")
        assert request_matches(rule, post(**good))
        assert names(rs.for_request(post(**good))) == ["r0"]
        assert not request_matches(rule, post(method="PUT", **good))
        assert not request_matches(rule, post(body=b"grant_type=password", **good))
        assert not request_matches(rule, post(Authorization=basic("alexa:s")))
        assert rs.for_request(post(host="auth0.com", **good)) == ()

    def test_status_is_not_a_request_condition(self):
        rs = rules_for("{status: 500}")
        assert names(rs.for_request(post())) == ["r0"]

    def test_several_rules_in_file_order(self):
        rs = rules_for(
            "{grant_type: refresh_token}",
            "{grant_type: authorization_code}",
            "{host: '*.auth0.com'}",
            "{}",
        )
        assert names(rs.for_request(post())) == ["r0", "r2", "r3"]
