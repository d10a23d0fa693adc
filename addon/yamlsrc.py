"""YAML loading that remembers lines and refuses what PyYAML would hide.

PyYAML keeps the last of two equal keys without a word; here every mapping
records its duplicates and the line of each key, so that the rule loader can
name file:line in every message.
"""

import yaml

MAP_TAG = "tag:yaml.org,2002:map"
SEQ_TAG = "tag:yaml.org,2002:seq"
MERGE_TAG = "tag:yaml.org,2002:merge"


# no rules file needs more: a rule's values are JSON of a few levels
MAX_DEPTH = 64
# values once aliases are expanded; a 10,000-rule file holds about 210,000,
# and a few lines of nested aliases can hold billions
MAX_VALUES = 1_000_000


class LineDict(dict):
    """A mapping from YAML, with the line of each key (1-based)."""

    line: int = 0
    lines: dict
    duplicates: list[tuple[int, str, int]]
    # values at and below it, aliases expanded
    size: int = 1


class LineList(list):
    """A sequence from YAML, with the line of each item (1-based)."""

    line: int = 0
    lines: list[int]
    size: int = 1


class YamlError(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _Loader(yaml.SafeLoader):
    """SafeLoader with line-aware containers: no tags, no objects."""


# libyaml's parser, where PyYAML was built with it, reads a large rules file
# several times faster; the pure-Python one stays the reference for messages
_FastLoader = type("_FastLoader", (getattr(yaml, "CSafeLoader", _Loader),), {})


def _size(value: object) -> int:
    return value.size if isinstance(value, LineDict | LineList) else 1


def _nested(construct):
    """Refuse nesting deeper than MAX_DEPTH and documents that expand, through
    aliases, to more than MAX_VALUES values: both would cost every walk over
    the rules without bound, or overflow the stack."""

    def guarded(loader, node):
        depth = getattr(loader, "tokenfix_depth", 0) + 1
        line = node.start_mark.line + 1
        if depth > MAX_DEPTH:
            raise YamlError(line, f"nested more than {MAX_DEPTH} levels deep")
        loader.tokenfix_depth = depth
        try:
            result = construct(loader, node)
        finally:
            loader.tokenfix_depth = depth - 1
        if result.size > MAX_VALUES:
            message = f"more than {MAX_VALUES:,} values once aliases are expanded"
            raise YamlError(line, message)
        return result

    return guarded


@_nested
def _mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    # flattening puts the pairs of `<<: *anchor` merges first; the mapping's own
    # keys follow and override them, as YAML says, without being duplicates
    own = sum(1 for key_node, _ in node.value if key_node.tag != MERGE_TAG)
    loader.flatten_mapping(node)
    first_own = len(node.value) - own
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.lines = {}
    result.duplicates = []
    own_keys: set[str] = set()
    for index, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            raise YamlError(line, _key_message(key_node, key))
        if key in own_keys:
            result.duplicates.append((line, key, result.lines[key]))
            continue
        if index >= first_own:
            own_keys.add(key)
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = line
    result.size = 1 + sum(map(_size, result.values()))
    return result


def _key_message(node: yaml.Node, key: object) -> str:
    if not isinstance(node, yaml.ScalarNode):
        kind = "a list" if isinstance(key, list) else "a mapping"
        return f"keys must be strings, got {kind}"
    if key is None:
        kind = "null"
    elif isinstance(key, bool):
        kind = f"boolean {str(key).lower()}"
    elif isinstance(key, int | float):
        kind = f"number {key!r}"
    else:
        kind = f"a {type(key).__name__}"
    return f"key {node.value!r} is read as {kind}, not a string: quote it"


@_nested
def _sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(item, deep=True) for item in node.value)
    result.line = node.start_mark.line + 1
    result.lines = [item.start_mark.line + 1 for item in node.value]
    result.size = 1 + sum(map(_size, result))
    return result


for _cls in {_Loader, _FastLoader}:
    _cls.add_constructor(MAP_TAG, _mapping)
    _cls.add_constructor(SEQ_TAG, _sequence)


def load(text: str) -> object:
    """Parse one YAML document; YamlError carries the line of any fault."""
    try:
        return yaml.load(text, Loader=_FastLoader)  # noqa: S506 - a safe loader
    except YamlError:
        raise
    except (yaml.YAMLError, RecursionError) as e:
        # parse again with the pure-Python parser, whose messages say more
        fast_error = e
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except YamlError:
        raise
    except yaml.MarkedYAMLError as e:
        raise YamlError(*_located(e)) from None
    except yaml.reader.ReaderError as e:
        # a character YAML does not allow: located by its offset in the text
        line = text.count("\n", 0, e.position) + 1
        message = f"invalid YAML: unacceptable character #x{e.character:04x}"
        raise YamlError(line, f"{message}: {e.reason}") from None
    except yaml.YAMLError as e:
        raise YamlError(1, f"invalid YAML: {e}") from None
    except RecursionError:
        # the pure-Python parser nests a call per level before any check;
        # libyaml stops at its own depth limit, on the right line
        line = 1
        if isinstance(fast_error, yaml.MarkedYAMLError) and fast_error.problem_mark:
            line = fast_error.problem_mark.line + 1
        raise YamlError(line, f"nested more than {MAX_DEPTH} levels deep") from None


def _located(e: yaml.MarkedYAMLError) -> tuple[int, str]:
    """The line to blame and the message: the problem, then where its context began.

    An unclosed quote or bracket is found only at the end of the file, so the
    line where it began is the one to blame.
    """
    problem = e.problem or str(e)
    mark = e.problem_mark or e.context_mark
    line = mark.line + 1 if mark else 1
    if e.context_mark and ("end of stream" in problem or "<stream end>" in problem):
        line = e.context_mark.line + 1
    if e.context and problem.startswith("but "):
        problem = f"{e.context}, {problem}"
    elif e.context and e.context_mark:
        start = e.context_mark.line + 1
        where = f" from line {start}" if start != line else ""
        problem = f"{problem} ({e.context}{where})"
    if problem.startswith("mapping values are not allowed"):
        problem += " (quote a value that holds ': ')"
    if "could not determine a constructor" in problem:
        problem = f"{problem} (rules files are loaded safely: no tags)"
    return line, f"invalid YAML: {problem}"
