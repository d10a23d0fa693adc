"""The mitmproxy addon: wires the pure rule engine to mitmproxy's hooks."""

import asyncio
import http
import logging
import os
import weakref
from collections.abc import Sequence

from mitmproxy import command, ctx, exceptions
from mitmproxy import http as mhttp

from addon import engine
from addon.decoding import decode_bounded
from addon.exchange import RequestInfo
from addon.jsonbody import BodySkip
from addon.redact import secret_names
from addon.rules import RuleError, load_rules
from addon.ruleset import RuleSet
from addon.stats import Stats
from addon.throttle import Throttle

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0
MARK = ":wrench:"


def file_signature(path: str) -> tuple | None:
    """What changes when the file is edited, renamed over or swapped by symlink."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)


class TokenFix:
    def __init__(self) -> None:
        self.rules: RuleSet | None = None
        self.signature: tuple | None = None
        self.secrets = secret_names()
        self.stats = Stats()
        self.throttle = Throttle()
        # the rules in force when a request arrived, kept for its response
        self.pinned: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._poller: asyncio.Task | None = None
        self._running = False

    # ------------------------------------------------------------ options

    def load(self, loader) -> None:
        loader.add_option(
            "tokenfix_rules",
            str,
            "rules.yaml",
            "Path of tokenfix's rules file; polled and reloaded when it changes.",
        )
        loader.add_option(
            "tokenfix_secret_fields",
            Sequence[str],
            [],
            "Extra field names whose values tokenfix never logs or shows.",
        )
        loader.add_option(
            "tokenfix_dry_run",
            bool,
            False,
            "Match and report what tokenfix would change, without changing flows.",
        )

    def configure(self, updated: set[str]) -> None:
        if "tokenfix_secret_fields" in updated:
            self.secrets = secret_names(ctx.options.tokenfix_secret_fields)
        if "tokenfix_rules" in updated:
            self._load_initial()

    def _load_initial(self) -> None:
        path = ctx.options.tokenfix_rules
        try:
            rules = load_rules(path)
        except RuleError as e:
            if self._running:
                # an option change at run time is refused; the old rules stay
                raise exceptions.OptionsError(str(e)) from None
            # at start-up an error log line makes mitmdump exit non-zero,
            # with this message and no traceback
            logger.error(f"{e}")
            return
        self._install(rules, path)
        logger.info(f"tokenfix: loaded {len(rules)} rules from {path}")

    def _install(self, rules: RuleSet, path: str) -> None:
        self.rules = rules
        self.signature = file_signature(path)

    def running(self) -> None:
        self._running = True
        if self._poller is None:
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    def done(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        for line in self.stats.lines():
            logger.info(f"tokenfix stats: {line}")

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            path = ctx.options.tokenfix_rules
            signature = file_signature(path)
            if signature != self.signature:
                self.signature = signature
                self._reload(path)

    def _reload(self, path: str) -> bool:
        try:
            rules = load_rules(path)
        except RuleError as e:
            self.stats.failed_reloads += 1
            kept = f"{len(self.rules)} rules" if self.rules is not None else "no rules"
            logger.error(f"{e} (keeping the last good rules: {kept})")
            return False
        self.rules = rules
        self.stats.reloads += 1
        logger.info(f"tokenfix: reloaded {len(rules)} rules from {path}")
        return True

    @command.command("tokenfix.reload")
    def reload(self) -> None:
        """Reload tokenfix's rules file now."""
        path = ctx.options.tokenfix_rules
        self.signature = file_signature(path)
        self._reload(path)

    @command.command("tokenfix.stats")
    def show_stats(self) -> str:
        """Per rule: matched, changed and skipped exchanges, with reasons."""
        lines = self.stats.lines()
        for line in lines:
            logger.info(f"tokenfix stats: {line}")
        return "\n".join(lines)

    # ------------------------------------------------------------ hooks

    def request(self, flow: mhttp.HTTPFlow) -> None:
        rules = self.rules
        if rules is None or flow.error:
            return
        req = flow.request
        path, _, query = req.path.partition("?")
        if not rules.by_host_path(req.host, path):
            return
        raw = req.raw_content
        body = req.get_content(strict=False) if raw and len(raw) <= 65536 else None
        info = RequestInfo(req.method, req.host, path, query, req.headers, body)
        matched = rules.for_request(info)
        if not matched:
            return
        self.pinned[flow] = (matched, info)
        if ctx.options.tokenfix_dry_run:
            return
        for name, value in engine.request_headers(matched).items():
            if value is None:
                req.headers.pop(name, None)
            else:
                req.headers[name] = value

    def response(self, flow: mhttp.HTTPFlow) -> None:
        pinned = self.pinned.pop(flow, None)
        if pinned is None or flow.response is None or flow.error:
            return
        rules, info = pinned
        resp = flow.response
        if resp.stream or resp.raw_content is None:
            self._skip(flow, rules, "streamed body")
            return
        try:
            body = decode_bounded(
                resp.raw_content, resp.headers.get("content-encoding")
            )
        except BodySkip as e:
            self._skip(flow, rules, str(e))
            return
        outcome = engine.rewrite(
            rules, info, resp.status_code, resp.headers, body, secrets=self.secrets
        )
        self.stats.count(outcome)
        apply = outcome.changed and not ctx.options.tokenfix_dry_run
        if apply:
            # before any change, so that Revert restores the original
            flow.backup()
        self._report(flow, outcome)
        if apply:
            self._apply(flow, outcome)

    def _skip(self, flow: mhttp.HTTPFlow, rules, reason: str) -> None:
        self.stats.skip_all(rules, f"body skipped: {reason}")
        allowed, held = self.throttle.allow(f"skip:{reason}")
        if allowed:
            more = f" ({held} more since the last such line)" if held else ""
            logger.debug(
                f"tokenfix: {flow.request.method} {flow.request.path.split('?')[0]}: "
                f"response left as is: {reason}{more}"
            )

    def _report(self, flow: mhttp.HTTPFlow, outcome: engine.Outcome) -> None:
        for warning in outcome.warnings:
            allowed, held = self.throttle.allow(f"warn:{warning}")
            if allowed:
                more = f" ({held} more since the last such line)" if held else ""
                logger.warning(f"tokenfix: {warning}{more}")
        for note in outcome.notes:
            logger.debug(f"tokenfix: {note}")
        if not outcome.changed:
            return
        dry = ctx.options.tokenfix_dry_run
        lines = []
        for rule in dict.fromkeys(change.rule for change in outcome.changes):
            done = ", ".join(c.describe() for c in outcome.changes if c.rule == rule)
            verb = "would " if dry else ""
            lines.append(f"rule {rule!r}: {verb}{done}")
            logger.info(
                f"tokenfix: {flow.request.method} {flow.request.path.split('?')[0]}: "
                f"rule {rule!r}: {verb}{done}"
            )
        comment = "tokenfix: " + "; ".join(lines)
        flow.comment = f"{flow.comment}\n{comment}" if flow.comment else comment
        flow.metadata["tokenfix"] = [change.as_dict() for change in outcome.changes]

    def _apply(self, flow: mhttp.HTTPFlow, outcome: engine.Outcome) -> None:
        resp = flow.response
        if outcome.body is not None:
            # mitmproxy re-encodes with the Content-Encoding and fixes the length
            resp.content = outcome.body
        if outcome.status is not None:
            resp.status_code = outcome.status
            resp.reason = _reason_phrase(outcome.status)
        for name, value in outcome.headers.items():
            if value is None:
                resp.headers.pop(name, None)
            else:
                resp.headers[name] = value
        flow.marked = MARK


def _reason_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""
