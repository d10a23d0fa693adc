"""The `tokenfix` command: check rules and try them on recorded flows.

tokenfix check [RULES]          validate and run the rules' examples
tokenfix try RULES FLOWS...     apply rules to recorded exchanges, show diffs
tokenfix token --token-url ...  a test access token (client credentials grant)
"""

import argparse
import difflib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from addon import expect, jsonbody, offline, tokencmd
from addon.exchange import basic_secret
from addon.redact import (
    REDACTED,
    is_secret_path,
    mask_known,
    secret_names,
    secret_values,
)
from addon.rules import RuleError, load_rules
from addon.ruleset import RuleSet
from addon.yamlsrc import LineDict, LineList, YamlError, load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tokenfix",
        description="Check tokenfix rules, try them on recorded exchanges, and "
        "get test tokens.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check_p = sub.add_parser("check", help="validate a rules file, run its examples")
    check_p.add_argument("rules", nargs="?", default="rules.yaml")
    try_p = sub.add_parser(
        "try",
        help="apply rules to flows recorded with mitmdump -w, HAR files, or YAML "
        "exchanges, and show what would change",
    )
    try_p.add_argument("rules")
    try_p.add_argument("flows", nargs="+", metavar="FLOWS")
    try_p.add_argument(
        "--fail-on-change",
        action="store_true",
        help="exit 1 when any exchange would change (for CI)",
    )
    try_p.add_argument(
        "--secret-field",
        action="append",
        default=[],
        metavar="NAME",
        help="another field whose value is never shown (repeatable)",
    )
    tokencmd.add_parser(sub)
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            return check(args.rules)
        if args.command == "token":
            return tokencmd.run(args)
        return try_flows(args.rules, args.flows, args.fail_on_change, args.secret_field)
    except BrokenPipeError:  # `tokenfix try ... | head`
        sys.stderr.close()
        return 0


# ---------------------------------------------------------------- check


def check(path: str, out=None) -> int:
    # sys.stdout at call time, not at import: tests and callers may swap it
    out = out or sys.stdout
    try:
        rules = load_rules(path)
    except RuleError as e:
        print(e, file=out)
        return 1
    now = time.time()
    passed = failed = 0
    for rule in rules.rules:
        for i, example in enumerate(rule.examples):
            line = example.line if isinstance(example, LineDict) else rule.line
            label = example.get("name") or f"example {i + 1}"
            failures = _run_example(rules, rule.name, example, path, line, now)
            if failures:
                failed += 1
                print(f"{path}:{line}: rule {rule.name!r}: {label}: FAILED", file=out)
                for failure in failures:
                    print(f"    {failure}", file=out)
            else:
                passed += 1
    examples = passed + failed
    print(
        f"{path}: {_count(len(rules), 'rule')} valid; "
        f"{_count(examples, 'example')}: {passed} passed, {failed} failed",
        file=out,
    )
    return 1 if failed else 0


def _run_example(rules: RuleSet, rule: str, example: dict, path, line, now) -> list:
    try:
        ex = offline.exchange_from_mapping(example, now)
        result = offline.run(rules, ex, now=now)
        return expect.check(result, example.get("expect"), path, line, rule, now)
    except (ValueError, RuleError) as e:
        return [str(e)]


# ---------------------------------------------------------------- try


def try_flows(rules_path, flow_paths, fail_on_change, extra_secrets, out=None):
    out = out or sys.stdout
    try:
        rules = load_rules(rules_path)
    except RuleError as e:
        print(e, file=out)
        return 2
    secrets = secret_names(extra_secrets)
    now = time.time()
    total = changed = 0
    for flow_path in flow_paths:
        try:
            exchanges = read_exchanges(flow_path, now)
        except OSError as e:
            print(f"{flow_path}: cannot read: {e.strerror or e}", file=out)
            return 2
        except ValueError as e:
            print(f"{flow_path}: cannot read: {e}", file=out)
            return 2
        for ex in exchanges:
            total += 1
            result = offline.run(rules, ex, now=now, secrets=secrets)
            changed += result.changed
            _show_result(result, total, secrets, out)
    print(f"{total} exchanges, {changed} would change", file=out)
    return 1 if fail_on_change and changed else 0


def read_exchanges(path: str, now: float) -> list[offline.Exchange]:
    """Exchanges from a YAML file of cases, or from a mitmproxy or HAR flow file."""
    suffix = Path(path).suffix.lower()
    if suffix in (".yaml", ".yml"):
        return _yaml_exchanges(path, now)
    return _flow_exchanges(path)


def _yaml_exchanges(path: str, now: float) -> list[offline.Exchange]:
    try:
        doc = load(Path(path).read_text(encoding="utf-8"))
    except YamlError as e:
        raise ValueError(f"line {e.line}: {e.message}") from None
    if isinstance(doc, dict) and "exchanges" in doc:
        doc = doc["exchanges"]
    items = doc if isinstance(doc, list) else [doc]
    exchanges = []
    for i, item in enumerate(items):
        line = item.line if isinstance(item, LineDict | LineList) else 1
        if not isinstance(item, dict):
            raise ValueError(f"line {line}: expected an exchange mapping")
        try:
            label = str(item.get("id") or item.get("name") or f"#{i + 1}")
            exchanges.append(offline.exchange_from_mapping(item, now, label))
        except ValueError as e:
            raise ValueError(f"line {line}: {e}") from None
    return exchanges


def _flow_exchanges(path: str) -> list[offline.Exchange]:
    from mitmproxy import exceptions, http, io

    flows = []
    with open(path, "rb") as f:
        try:
            for flow in io.FlowReader(f).stream():
                flows.append(flow)
        except exceptions.FlowReadException as e:
            if not flows:
                raise ValueError(
                    f"not a flow file written by mitmdump -w, nor a HAR file ({e})"
                ) from None
            # a file cut short, as when mitmdump was killed while writing:
            # the flows before the cut are whole
            print(
                f"{path}: cut short after {len(flows)} flows ({e}); trying those",
                file=sys.stderr,
            )
    exchanges = []
    for flow in flows:
        if not isinstance(flow, http.HTTPFlow) or flow.response is None:
            continue
        label = flow.id[:8]
        if flow.modified():
            # saved by a proxy that changed it (tokenfix, or someone in
            # mitmweb): the rules are tried on what the server sent
            flow.revert()
        elif "tokenfix" in flow.metadata:
            label += " (rewritten by tokenfix, and the original was not saved)"
        req, resp = flow.request, flow.response
        exchanges.append(
            offline.Exchange(
                method=req.method,
                url=req.url,
                request_headers=dict(req.headers.items()),
                request_body=req.get_content(strict=False) or b"",
                status=resp.status_code,
                response_headers=dict(resp.headers.items()),
                response_body=resp.raw_content or b"",
                label=label,
            )
        )
    return exchanges


def _redact_url(url: str, secrets: frozenset[str]) -> str:
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [
        (k, REDACTED if k in secrets else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return parts._replace(query=urlencode(query, safe="<>")).geturl()


def _pretty(body: bytes, secrets: frozenset[str]) -> list[str]:
    """A body as redacted, indented JSON lines (forms are shown as JSON too)."""
    doc = _document(body)
    if doc is None:
        return [f"<{len(body)} bytes, not shown>"]
    doc = _redacted(doc, secrets, "")
    return json.dumps(doc, indent=2, ensure_ascii=False).splitlines()


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _document(body: bytes) -> dict | None:
    """A body as JSON object or form, or None when it is neither."""
    for parse in (jsonbody.parse_object, jsonbody.parse_form):
        try:
            return parse(body)
        except jsonbody.BodySkip:
            continue
    return None


def _is_form(body: bytes) -> bool:
    # parse_form refuses a body that opens as JSON does
    try:
        jsonbody.parse_form(body)
    except jsonbody.BodySkip:
        return False
    return True


def _redacted(value: object, secrets: frozenset[str], path: str) -> object:
    if isinstance(value, list):
        # members of objects in a list are judged by their own names
        return [_redacted(item, secrets, path) for item in value]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            sub = f"{path}.{key}" if path else key
            secret = is_secret_path(sub, secrets) and item is not None
            out[key] = REDACTED if secret else _redacted(item, secrets, sub)
        return out
    return value


def _show_result(result: offline.Result, n: int, secrets, out) -> None:
    known = _known_secrets(result, secrets)
    for line in _result_lines(result, n, secrets):
        print(mask_known(line, known), file=out)


def _known_secrets(result: offline.Result, secrets) -> list[str]:
    """Secret values of the exchange, to be masked wherever they reappear."""
    info = result.exchange.request_info()
    documents = [info.params, _document(result.original_body), _document(result.body)]
    password = basic_secret(info.header("authorization"))
    return secret_values(documents, secrets, also=[password])


def _result_lines(result: offline.Result, n: int, secrets) -> Iterator[str]:
    ex = result.exchange
    grant = result.grant_type
    label = f" [{ex.label}]" if ex.label else ""
    yield (
        f"== {n}{label}: {ex.method} {_redact_url(ex.url, secrets)}"
        f" (grant_type {grant or '-'}) -> {ex.status}"
    )
    if result.skipped_reason:
        yield f"   left as is: {result.skipped_reason}"
        return
    yield f"   rules matched: {', '.join(result.matched) or 'none'}"
    outcome = result.outcome
    if outcome is not None:
        for rule, reason in outcome.skipped:
            yield f"   rule {rule!r} skipped: {reason}"
        for warning in outcome.warnings:
            yield f"   warning: {warning}"
    if not result.changed:
        yield "   no change"
        return
    if result.status != ex.status:
        yield f"   status: {ex.status} -> {result.status}"
    for change in outcome.changes:
        if change.target == "header":
            yield f"   header {change.field}: {change.old!r} -> {change.new!r}"
    if outcome.body is not None:
        received = "response body (received)"
        if _is_form(result.original_body):
            received = "response body (received as a form, shown as JSON)"
        diff = difflib.unified_diff(
            _pretty(result.original_body, secrets),
            _pretty(result.body, secrets),
            received,
            "response body (after tokenfix)",
            lineterm="",
        )
        for line in diff:
            yield f"   {line}"


if __name__ == "__main__":
    sys.exit(main())
