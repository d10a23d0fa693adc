"""Line-aware YAML: lines of keys and items, duplicates recorded, safe loading."""

import datetime

import pytest

from addon.yamlsrc import LineDict, LineList, YamlError, load


def fault(text: str) -> tuple[int, str]:
    with pytest.raises(YamlError) as info:
        load(text)
    return info.value.line, info.value.message


class TestLines:
    def test_keys_of_a_block_mapping(self):
        doc = load("a: 1\n\nb:\n  c: 2\n  d: 3\n")
        assert doc == {"a": 1, "b": {"c": 2, "d": 3}}
        assert doc.line == 1
        assert doc.lines == {"a": 1, "b": 3}
        assert doc["b"].line == 4
        assert doc["b"].lines == {"c": 4, "d": 5}

    def test_items_of_a_block_sequence(self):
        doc = load("rules:\n  # a comment\n  - name: x\n\n  - name: y\n  - 3\n")
        items = doc["rules"]
        assert isinstance(items, LineList)
        assert items == [{"name": "x"}, {"name": "y"}, 3]
        assert items.line == 3
        assert items.lines == [3, 5, 6]
        assert items[1].lines == {"name": 5}

    def test_flow_collections_on_one_line(self):
        doc = load("a: [1, {b: 2}]\n")
        assert doc["a"].lines == [1, 1]
        assert doc["a"][1].lines == {"b": 1}

    def test_multiline_flow_mapping(self):
        doc = load("a: {b: 1,\n    c: 2}\n")
        assert doc["a"].lines == {"b": 1, "c": 2}

    def test_containers_are_plain_dicts_and_lists(self):
        doc = load("a: [1]\n")
        assert isinstance(doc, LineDict) and isinstance(doc, dict)
        assert isinstance(doc["a"], list)

    def test_key_order_is_kept(self):
        assert list(load("z: 1\na: 2\nm: 3\n")) == ["z", "a", "m"]

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("", None),
            ("# only a comment\n", None),
            ("~\n", None),
            ("just text\n", "just text"),
            ("- 1\n", [1]),
        ],
    )
    def test_documents_that_are_not_mappings(self, text, expected):
        assert load(text) == expected


class TestDuplicates:
    def test_recorded_with_both_lines_and_first_value_kept(self):
        doc = load("a: 1\nb: 2\na: 3\n")
        assert doc == {"a": 1, "b": 2}
        assert doc.duplicates == [(3, "a", 1)]

    def test_recorded_at_every_level(self):
        doc = load("x:\n  - y: 1\n    y: 2\n  - z: {k: 1, k: 2}\n")
        assert doc.duplicates == []
        assert doc["x"][0].duplicates == [(3, "y", 2)]
        assert doc["x"][1]["z"].duplicates == [(4, "k", 4)]

    def test_every_repeat_is_recorded(self):
        doc = load("a: 1\na: 2\na: 3\n")
        assert doc.duplicates == [(2, "a", 1), (3, "a", 1)]

    def test_none_in_a_clean_mapping(self):
        assert load("a: 1\nb: 2\n").duplicates == []


class TestMergeKeys:
    def test_own_keys_override_merged_ones_without_a_duplicate(self):
        doc = load("base: &b {host: a, path: /t}\nuse:\n  <<: *b\n  path: /u\n")
        assert doc["use"] == {"host": "a", "path": "/u"}
        assert doc["use"].duplicates == []
        assert doc["use"].lines == {"host": 1, "path": 4}

    def test_earlier_merge_sources_win(self):
        doc = load("a: &a {k: 1}\nb: &b {k: 2, j: 3}\nc:\n  <<: [*a, *b]\n")
        assert doc["c"] == {"k": 1, "j": 3}
        assert doc["c"].duplicates == []

    def test_own_keys_still_clash_with_each_other(self):
        doc = load("a: &a {k: 1}\nc:\n  <<: *a\n  j: 1\n  j: 2\n")
        assert doc["c"] == {"k": 1, "j": 1}
        assert doc["c"].duplicates == [(5, "j", 4)]


class TestScalars:
    def test_safe_types(self):
        doc = load("i: 1\nf: 1.5\nb: true\nn: null\ns: '1'\nd: 2024-01-02\n")
        assert doc == {
            "i": 1,
            "f": 1.5,
            "b": True,
            "n": None,
            "s": "1",
            "d": datetime.date(2024, 1, 2),
        }

    def test_set_and_binary_are_constructed_for_the_loader_to_refuse(self):
        doc = load("s: !!set {a, b}\nb: !!binary aGk=\n")
        assert doc == {"s": {"a", "b"}, "b": b"hi"}


class TestFaults:
    @pytest.mark.parametrize(
        ("text", "line", "message"),
        [
            (
                "a:\n  b: !!python/object/apply:os.system [ls]\n",
                2,
                "invalid YAML: could not determine a constructor for the tag"
                " 'tag:yaml.org,2002:python/object/apply:os.system'"
                " (rules files are loaded safely: no tags)",
            ),
            (
                "a: !!python/name:os.system\n",
                1,
                "invalid YAML: could not determine a constructor for the tag"
                " 'tag:yaml.org,2002:python/name:os.system'"
                " (rules files are loaded safely: no tags)",
            ),
            (
                "a:\n  b: !Ref x\n",
                2,
                "invalid YAML: could not determine a constructor for the tag '!Ref'"
                " (rules files are loaded safely: no tags)",
            ),
            (
                "a:\n  b: [1, 2\n  c: 3\n",
                3,
                "invalid YAML: expected ',' or ']', but got ':'"
                " (while parsing a flow sequence from line 2)",
            ),
            (
                "a:\n  b: [1, 2\n",
                2,
                "invalid YAML: expected ',' or ']', but got '<stream end>'"
                " (while parsing a flow sequence)",
            ),
            (
                'a:\n  b: "open\n  c: 3\n',
                2,
                "invalid YAML: found unexpected end of stream"
                " (while scanning a quoted scalar)",
            ),
            (
                "a:\n  b: 1\n   c: 2\n",
                3,
                "invalid YAML: mapping values are not allowed here"
                " (quote a value that holds ': ')",
            ),
            (
                "a:\n  - 1\n -  2\n",
                3,
                "invalid YAML: expected <block end>,"
                " but found '<block sequence start>'"
                " (while parsing a block mapping from line 1)",
            ),
            (
                "a:\n\tb: 1\n",
                2,
                "invalid YAML: found character '\\t' that cannot start any token",
            ),
            ("a: *nowhere\n", 1, "invalid YAML: found undefined alias 'nowhere'"),
            (
                "a:\n  <<: 1\n",
                2,
                "invalid YAML: expected a mapping or list of mappings for merging,"
                " but found scalar (while constructing a mapping)",
            ),
            (
                "a: 1\n---\nb: 2\n",
                2,
                "invalid YAML: expected a single document in the stream,"
                " but found another document",
            ),
        ],
    )
    def test_invalid_yaml(self, text, line, message):
        assert fault(text) == (line, message)

    @pytest.mark.parametrize(
        ("text", "line", "message"),
        [
            ("a: 1\n1: 2\n", 2, "key '1' is read as number 1, not a string: quote it"),
            (
                "a:\n  on: 1\n",
                2,
                "key 'on' is read as boolean true, not a string: quote it",
            ),
            ("~: 1\n", 1, "key '~' is read as null, not a string: quote it"),
            ("1.5: 1\n", 1, "key '1.5' is read as number 1.5, not a string: quote it"),
            (
                "x:\n  2024-01-02: 1\n",
                2,
                "key '2024-01-02' is read as a date, not a string: quote it",
            ),
            ("? [a]\n: 1\n", 1, "keys must be strings, got a list"),
            ("? {a: 1}\n: 1\n", 1, "keys must be strings, got a mapping"),
        ],
    )
    def test_keys_must_be_strings(self, text, line, message):
        assert fault(text) == (line, message)

    def test_quoted_keys_are_strings(self):
        assert load("'on': 1\n'1': 2\n") == {"on": 1, "1": 2}

    def test_error_carries_line_and_message(self):
        error = YamlError(7, "boom")
        assert (error.line, error.message, str(error)) == (7, "boom", "boom")


class TestBounds:
    """Nesting and alias expansion that would cost every later walk over the
    rules without bound, or overflow the stack, are refused with a line."""

    @pytest.mark.parametrize("depth", [65, 300, 100_000])
    def test_nesting_deeper_than_the_limit(self, depth):
        text = "rules:\n  - set: {a: " + "[" * depth + "]" * depth + "}\n"
        assert fault(text) == (2, "nested more than 64 levels deep")

    def test_nesting_up_to_the_limit_loads(self):
        text = "a: " + "[" * 62 + "1" + "]" * 62 + "\n"
        node = load(text)["a"]
        for _ in range(61):
            node = node[0]
        assert node == [1]

    def test_aliases_that_expand_past_the_budget(self):
        levels = ["x0: &x0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
        for i in range(1, 7):
            levels.append(f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * 10) + "]")
        assert fault("\n".join(levels) + "\n") == (
            6,
            "more than 1,000,000 values once aliases are expanded",
        )

    def test_aliases_within_the_budget_are_shared(self):
        doc = load("a: &a {k: [1, 2]}\nb: *a\n")
        assert doc["a"] is doc["b"] and doc.size == 1 + 2 * 4
