"""YAML loading that remembers lines and refuses what PyYAML would hide.

PyYAML keeps the last of two equal keys without a word; here every mapping
records its duplicates and the line of each key, so that the rule loader can
name file:line in every message.
"""

import yaml

MAP_TAG = "tag:yaml.org,2002:map"
SEQ_TAG = "tag:yaml.org,2002:seq"


class LineDict(dict):
    """A mapping from YAML, with the line of each key (1-based)."""

    line: int = 0
    lines: dict
    duplicates: list[tuple[int, str, int]]


class LineList(list):
    """A sequence from YAML, with the line of each item (1-based)."""

    line: int = 0
    lines: list[int]


class YamlError(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _Loader(yaml.SafeLoader):
    """SafeLoader with line-aware containers: no tags, no objects."""


def _mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.lines = {}
    result.duplicates = []
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            raise YamlError(line, f"keys must be strings, got {key!r}")
        if key in result:
            result.duplicates.append((line, key, result.lines[key]))
            continue
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = line
    return result


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(item, deep=True) for item in node.value)
    result.line = node.start_mark.line + 1
    result.lines = [item.start_mark.line + 1 for item in node.value]
    return result


_Loader.add_constructor(MAP_TAG, _mapping)
_Loader.add_constructor(SEQ_TAG, _sequence)


def load(text: str) -> object:
    """Parse one YAML document; YamlError carries the line of any fault."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except YamlError:
        raise
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 1
        problem = e.problem or str(e)
        if isinstance(e, yaml.constructor.ConstructorError):
            problem = f"{problem} (rules files are loaded safely: no tags)"
        raise YamlError(line, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as e:
        raise YamlError(1, f"invalid YAML: {e}") from None
