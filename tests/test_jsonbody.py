import json

import pytest

from addon.jsonbody import MAX_BODY, BodySkip, dump, parse_form, parse_object


class TestParseObject:
    def test_object(self):
        body = b'{"access_token":"at-1","expires_in":3600,"ok":true,"n":null}'
        assert parse_object(body) == {
            "access_token": "at-1",
            "expires_in": 3600,
            "ok": True,
            "n": None,
        }

    def test_key_order_is_kept(self):
        assert list(parse_object(b'{"z":1,"a":2,"m":3}')) == ["z", "a", "m"]

    def test_numbers_keep_their_type(self):
        doc = parse_object(b'{"i":3600,"f":3600.0,"e":1e3,"neg":-0.5}')
        assert [type(v) for v in doc.values()] == [int, float, float, float]

    def test_non_ascii_text(self):
        body = '{"name":"Zoë 東京","esc":"\\u00e9"}'.encode()
        assert parse_object(body) == {"name": "Zoë 東京", "esc": "é"}

    def test_surrogate_pair_escape_is_fine(self):
        assert parse_object(b'{"e":"\\ud83d\\ude00"}') == {"e": "\U0001f600"}

    def test_whitespace_around(self):
        assert parse_object(b' \r\n{"a" : 1}\n') == {"a": 1}

    def test_largest_allowed_body(self):
        filler = "x" * (MAX_BODY - len('{"a":""}'))
        body = json.dumps({"a": filler}, separators=(",", ":")).encode()
        assert len(body) == MAX_BODY
        assert parse_object(body)["a"] == filler

    def test_large_integer_within_float_range(self):
        text = str(10**307)
        assert parse_object(f'{{"n":{text}}}'.encode()) == {"n": 10**307}


class TestParseObjectSkips:
    @pytest.mark.parametrize(
        "body, reason",
        [
            (b"", "empty body"),
            (b"not json", "not JSON (JSONDecodeError)"),
            (b'{"a":1', "not JSON (JSONDecodeError)"),
            (b'{"a":1}{"b":2}', "not JSON (JSONDecodeError)"),
            (b"<html>error</html>", "not JSON (JSONDecodeError)"),
            (b"[1,2]", "JSON is a top-level list, not an object"),
            (b'"token"', "JSON is a top-level str, not an object"),
            (b"42", "JSON is a top-level int, not an object"),
            (b"null", "JSON is a top-level NoneType, not an object"),
            (b'{"a":1,"a":2}', "duplicate key 'a'"),
            (b'{"x":{"b":1,"c":2,"b":3}}', "duplicate key 'b'"),
            (b'{"a":NaN}', "non-standard number NaN"),
            (b'{"a":Infinity}', "non-standard number Infinity"),
            (b'{"a":-Infinity}', "non-standard number -Infinity"),
            (b'{"a":1e400}', "number beyond float range"),
            (b'{"a":-1e400}', "number beyond float range"),
            (b'{"a":' + b"9" * 309 + b"}", "number beyond float range"),
            (b'{"a":-' + b"9" * 400 + b"}", "number beyond float range"),
            (b'{"a":' + b"1" * 5000 + b"}", "not JSON (ValueError)"),
            (b'{"a":"\xff"}', "body is not UTF-8 text"),
            (b'{"a":"\xed\xa0\x80"}', "body is not UTF-8 text"),  # a UTF-8 surrogate
            ('{"a":"b"}'.encode("utf-16"), "body is not UTF-8 text"),
            ('{"a":"b"}'.encode("utf-16-le"), "not JSON (JSONDecodeError)"),
            ('{"a":"b"}'.encode("utf-32"), "body is not UTF-8 text"),
            (b'\xef\xbb\xbf{"a":"b"}', "not JSON (JSONDecodeError)"),  # a BOM
            (b'{"a":"\\ud800"}', "string with a lone surrogate escape"),
            (b'{"a":["x","\\udfff"]}', "string with a lone surrogate escape"),
        ],
    )
    def test_reason(self, body, reason):
        with pytest.raises(BodySkip) as e:
            parse_object(body)
        assert str(e.value) == reason

    @pytest.mark.parametrize("opener, closer", [(b"[", b"]"), (b'{"a":', b"}")])
    def test_nesting_thousands_deep(self, opener, closer):
        depth = 100_000
        body = b'{"x":' + opener * depth + b"1" + closer * depth + b"}"
        with pytest.raises(BodySkip, match="^JSON nested too deep$"):
            parse_object(body)

    def test_one_byte_over_the_limit(self):
        body = b'{"a":"' + b"x" * (MAX_BODY - 7) + b'"}'
        assert len(body) == MAX_BODY + 1
        with pytest.raises(BodySkip, match=f"^body larger than {MAX_BODY} bytes$"):
            parse_object(body)

    def test_a_lone_surrogate_escape_name_is_not_confused_with_a_pair(self):
        # "\\ud800" is an escaped backslash followed by text, not an escape
        assert parse_object(b'{"a":"\\\\ud800"}') == {"a": "\\ud800"}


class TestParseForm:
    def test_form(self):
        body = b"access_token=gho_16C7&scope=repo%2Cgist&token_type=bearer"
        assert parse_form(body) == {
            "access_token": "gho_16C7",
            "scope": "repo,gist",
            "token_type": "bearer",
        }

    def test_order_plus_and_blank_values(self):
        form = parse_form(b"b=x+y&a=&c=%C3%A9")
        assert list(form.items()) == [("b", "x y"), ("a", ""), ("c", "é")]

    @pytest.mark.parametrize(
        "body, reason",
        [
            (b"", "empty or oversized body"),
            (b"a=" + b"x" * MAX_BODY, "empty or oversized body"),
            (b"a=\xff", "body is not UTF-8 text"),
            (b"just text", "body is not a form"),
            (b'{"a":"b=c"}', "body is not a form"),
            (b'["a=b"]', "body is not a form"),
            (b"<p>a=b</p>", "body is not a form"),
            (b"a=1&&b=2", "body is not a form"),
            (b"a=1&junk", "body is not a form"),
            (b"a=1&b=2&a=3", "form has a duplicate key"),
        ],
    )
    def test_reason(self, body, reason):
        with pytest.raises(BodySkip) as e:
            parse_form(body)
        assert str(e.value) == reason


class TestDump:
    def test_compact_with_key_order(self):
        assert dump({"z": 1, "a": [1, 2], "m": {"k": None}}) == (
            b'{"z":1,"a":[1,2],"m":{"k":null}}'
        )

    def test_non_ascii_stays_as_text(self):
        assert dump({"name": "Zoë 東京"}) == '{"name":"Zoë 東京"}'.encode()

    def test_round_trip_of_a_compact_body_is_byte_for_byte(self):
        body = '{"access_token":"at","expires_in":3600,"x":1.5,"y":"é"}'.encode()
        assert dump(parse_object(body)) == body
