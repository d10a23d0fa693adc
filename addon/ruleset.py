"""A loaded rule set and its index by host and path.

Most traffic through the proxy is not a token response any rule cares about,
so the question "which rules could apply to this request?" must cost next to
nothing: rules are indexed by literal host, by the literal tail of a host
glob, and the answer per (host, path) is remembered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from addon.conditions import is_glob
from addon.exchange import RequestInfo

if TYPE_CHECKING:
    from addon.rules import Rule

CACHE_SIZE = 4096


def _host_key(pattern: str) -> str | None:
    """The index key of a host glob: its literal tail from the first dot on.

    "*.auth0.com" is found under ".auth0.com"; a glob with no literal dotted
    tail ("*", "auth*") has no key and is tried against every host.
    """
    tail = pattern.lower()
    for i, char in enumerate(reversed(tail)):
        if char in "*?[]":
            tail = tail[len(tail) - i :]
            break
    dot = tail.find(".")
    return tail[dot:] if dot >= 0 else None


class RuleSet:
    """Rules in file order, with a fast answer to "which may apply here?"."""

    def __init__(self, rules: tuple[Rule, ...], path: str = "<rules>") -> None:
        self.rules = rules
        self.path = path
        self._exact: dict[str, list[int]] = {}
        self._suffix: dict[str, list[int]] = {}
        self._anywhere: list[int] = []
        self._cache: dict[tuple[str, str], tuple[Rule, ...]] = {}
        for index, rule in enumerate(rules):
            self._index(index, rule)

    def __len__(self) -> int:
        return len(self.rules)

    def _index(self, index: int, rule: Rule) -> None:
        if rule.match.hosts is None:
            self._anywhere.append(index)
            return
        keys: set[tuple[str, str | None]] = set()
        for host in rule.match.hosts:
            if not is_glob(host):
                keys.add(("exact", host.lower()))
            else:
                keys.add(("suffix", _host_key(host)))
        if any(key is None for _, key in keys):
            self._anywhere.append(index)
            return
        for table, key in keys:
            target = self._exact if table == "exact" else self._suffix
            target.setdefault(key, []).append(index)

    def _host_path(self, host: str, path: str) -> tuple[Rule, ...]:
        host = host.lower()
        found = set(self._anywhere)
        found.update(self._exact.get(host, ()))
        if self._suffix:
            dot = host.find(".")
            while dot >= 0:
                found.update(self._suffix.get(host[dot:], ()))
                dot = host.find(".", dot + 1)
        result = []
        for index in sorted(found):
            match = self.rules[index].match
            if match.host_re is not None and not match.host_re.match(host):
                continue
            if match.path_re is not None and not match.path_re.match(path):
                continue
            result.append(self.rules[index])
        return tuple(result)

    def by_host_path(self, host: str, path: str) -> tuple[Rule, ...]:
        """Rules whose host and path conditions hold, in file order."""
        key = (host, path)
        rules = self._cache.get(key)
        if rules is None:
            rules = self._host_path(host, path)
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = rules
        return rules

    def for_request(self, req: RequestInfo) -> tuple[Rule, ...]:
        """Rules whose request-side conditions all hold, in file order."""
        rules = self.by_host_path(req.host, req.path)
        if not rules:
            return rules
        return tuple(rule for rule in rules if request_matches(rule, req))


def request_matches(rule: Rule, req: RequestInfo) -> bool:
    """Method, headers, grant type and client id; host and path are indexed."""
    match = rule.match
    if req.method not in match.methods:
        return False
    for name, regex in match.headers:
        value = req.header(name)
        if value is None or not regex.match(value):
            return False
    if match.grant_types is not None and req.grant_type not in match.grant_types:
        return False
    if match.client_ids is not None:
        # a JSON body may hold any value here, a list even: only a string matches
        client_id = req.param("client_id")
        if not isinstance(client_id, str) or client_id not in match.client_ids:
            return False
    return True
