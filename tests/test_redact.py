import pytest

from addon.redact import (
    REDACTED,
    SECRET_FIELDS,
    is_secret_path,
    mask_known,
    redact_value,
    secret_names,
    secret_values,
    shorten,
)


class TestSecretFields:
    def test_the_spec_list(self):
        assert SECRET_FIELDS == {
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

    def test_no_extra_names(self):
        assert secret_names() is SECRET_FIELDS
        assert secret_names([]) is SECRET_FIELDS

    def test_extra_names_are_added(self):
        names = secret_names(["api_key", " session "])
        assert names == SECRET_FIELDS | {"api_key", "session"}

    def test_blank_extra_names_are_ignored(self):
        assert secret_names(["", "  "]) is SECRET_FIELDS


class TestIsSecretPath:
    @pytest.mark.parametrize(
        "path",
        [
            "access_token",
            "refresh_token",
            "authed_user.access_token",  # a nested token (Slack)
            "access_token.value",  # inside a secret object
            "a.b.client_secret",
        ],
    )
    def test_secret(self, path):
        assert is_secret_path(path)

    @pytest.mark.parametrize(
        "path",
        [
            "expires_in",
            "token_type",
            "access_token_expires_in",  # a name that only starts like one
            "authed_user",
            "scope",
            "",
        ],
    )
    def test_not_secret(self, path):
        assert not is_secret_path(path)

    def test_extra_names(self):
        secrets = secret_names(["api_key"])
        assert is_secret_path("api_key", secrets)
        assert is_secret_path("data.api_key", secrets)
        assert not is_secret_path("api_key", SECRET_FIELDS)


class TestRedactValue:
    def test_scalars_pass(self):
        assert [redact_value(v) for v in (1, "x", None, True)] == [1, "x", None, True]

    def test_secret_members_at_any_depth(self):
        value = {
            "id": "U1",
            "access_token": "xoxp-user",
            "nested": [{"refresh_token": "rt-9", "scope": "chat"}],
        }
        assert redact_value(value) == {
            "id": "U1",
            "access_token": REDACTED,
            "nested": [{"refresh_token": REDACTED, "scope": "chat"}],
        }

    def test_null_secret_stays_null(self):
        assert redact_value({"access_token": None}) == {"access_token": None}

    def test_a_copy_is_returned(self):
        value = {"a": {"b": [1]}}
        copy = redact_value(value)
        copy["a"]["b"].append(2)
        assert value == {"a": {"b": [1]}}

    def test_extra_names(self):
        value = {"api_key": "k-1", "code": "c-1"}
        assert redact_value(value, secret_names(["api_key"])) == {
            "api_key": REDACTED,
            "code": REDACTED,
        }


class TestShorten:
    def test_long_token(self):
        assert shorten("eyJhbGciOiJub25lIn0.payload.") == "eyJhbG…(28 chars)"

    @pytest.mark.parametrize("value", ["", "short", "12345678"])
    def test_short_values_are_redacted_whole(self, value):
        assert shorten(value) == REDACTED

    def test_keep(self):
        assert shorten("abcdefghijkl", keep=3) == "abc…(12 chars)"


class TestSecretValues:
    def test_values_of_secret_fields_at_any_depth_longest_first(self):
        params = {"refresh_token": "rt-presented-1", "grant_type": "refresh_token"}
        body = {"authed_user": {"access_token": "xoxp-user-token-22"}, "ok": True}
        found = secret_values([params, body, None], also=["client-secret-9", None])
        assert found == ["xoxp-user-token-22", "client-secret-9", "rt-presented-1"]

    def test_short_values_are_left_to_their_own_fields(self):
        # masking "abc" everywhere would mask ordinary words
        assert secret_values([{"code": "abc", "password": "hunter2x"}]) == ["hunter2x"]


class TestMaskKnown:
    def test_every_occurrence_is_masked_in_text_and_json(self):
        known = ["rt-presented-1"]
        doc = {
            "error_description": "revoked: rt-presented-1",
            "n": [1, "rt-presented-1"],
        }
        assert mask_known(doc, known) == {
            "error_description": f"revoked: {REDACTED}",
            "n": [1, REDACTED],
        }
        assert mask_known("a rt-presented-1 b", known) == f"a {REDACTED} b"
