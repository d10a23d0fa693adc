"""The mitmproxy addon: wires the pure rule engine to mitmproxy's hooks."""

import asyncio
import http
import logging
import os
import time
import weakref
from collections.abc import Sequence

from mitmproxy import command, ctx, exceptions
from mitmproxy import http as mhttp
from mitmproxy.proxy import mode_specs

from addon import contentview, engine, profiles
from addon.admin import AdminServer, Health, parse_listen
from addon.decoding import decode_bounded
from addon.exchange import RequestInfo
from addon.jsonbody import BodySkip
from addon.redact import secret_names
from addon.rules import RuleError, load_rules
from addon.ruleset import RuleSet
from addon.stats import Stats
from addon.throttle import Throttle, shape

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0
MARK = ":wrench:"
# a client profile's error finding: outranks MARK, as the client will still fail
FLAG = ":x:"
BODY_SKIPPED = "body skipped: "


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
        self.view = contentview.OAuthTokenView()
        # the rules in force when a request arrived, kept for its response
        self.pinned: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._poller: asyncio.Task | None = None
        self._running = False
        # the last reload's outcome, for the admin listener's /health
        self.last_reload = "never"
        self.reload_error = ""
        self.admin: AdminServer | None = None
        # when the event loop last ran the poller: the admin's liveness signal
        self.heartbeat: float | None = None
        # option values the hooks read, kept here by configure(): reading an
        # option through ctx.options deep-copies its value every time
        self.dry_run = False
        self.profile = profiles.DEFAULT_PROFILE
        self.keep_backups = False

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
        loader.add_option(
            "tokenfix_profile",
            str,
            profiles.DEFAULT_PROFILE,
            "The client whose expectations token responses are checked against.",
            choices=profiles.PROFILES,
        )
        loader.add_option(
            "tokenfix_admin_listen",
            str,
            "",
            "HOST:PORT of the admin listener serving /health and /metrics, "
            "for example 127.0.0.1:9464; off when empty. Never the proxy's port.",
        )
        contentview.register(self.view)

    def configure(self, updated: set[str]) -> None:
        if "tokenfix_secret_fields" in updated:
            self.secrets = secret_names(ctx.options.tokenfix_secret_fields)
            self.view.secrets = self.secrets
        if "tokenfix_profile" in updated:
            try:
                self.profile = profiles.parse_profile(ctx.options.tokenfix_profile)
            except ValueError as e:
                raise exceptions.OptionsError(f"tokenfix_profile: {e}") from None
        if "tokenfix_dry_run" in updated:
            self.dry_run = ctx.options.tokenfix_dry_run
        if "save_stream_file" in updated:
            self.keep_backups = _backups_wanted()
        if "tokenfix_rules" in updated:
            self._load_initial()
        if "tokenfix_admin_listen" in updated and self._running:
            # at start-up, running() checks and starts it
            self._check_admin_listen()
            self._start_admin()

    def _load_initial(self) -> None:
        path = ctx.options.tokenfix_rules
        rules = _try_load(path)
        if isinstance(rules, Exception):
            message = _load_error(path, rules)
            if self._running:
                # an option change at run time is refused; the old rules stay
                raise exceptions.OptionsError(message) from None
            # at start-up an error log line makes mitmdump exit non-zero,
            # with this message and no traceback
            logger.error(message)
            return
        self._install(rules, path)
        logger.info(f"tokenfix: loaded {_count(rules)} from {path}")

    def _install(self, rules: RuleSet, path: str) -> None:
        self.rules = rules
        self.signature = file_signature(path)
        self.reload_error = ""

    def running(self) -> None:
        self._running = True
        self.heartbeat = time.monotonic()
        if self._poller is None:
            self._poller = asyncio.get_running_loop().create_task(self._poll())
        try:
            self._check_admin_listen()
            self._start_admin()
        except exceptions.OptionsError as e:
            # at start-up an error log line makes mitmdump exit non-zero,
            # with this message and no traceback
            logger.error(f"{e}")

    def done(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        if self.admin is not None:
            self.admin.stop()
            self.admin = None
        contentview.unregister(self.view)
        for line in self.stats.lines():
            logger.info(f"tokenfix stats: {line}")

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            self.heartbeat = time.monotonic()
            path = ctx.options.tokenfix_rules
            signature = file_signature(path)
            if signature != self.signature:
                self.signature = signature
                # read and compiled off the event loop: a large file must not
                # hold up the exchanges in flight
                self._reloaded(path, await asyncio.to_thread(_try_load, path))

    def _reload(self, path: str) -> bool:
        return self._reloaded(path, _try_load(path))

    def _reloaded(self, path: str, rules: RuleSet | Exception) -> bool:
        """Put a freshly loaded rule set in force, or report why it is not."""
        if isinstance(rules, Exception):
            self.stats.failed_reloads += 1
            kept = _count(self.rules) if self.rules is not None else "no rules"
            message = _load_error(path, rules)
            logger.error(f"{message} (keeping the last good rules: {kept})")
            self.last_reload, self.reload_error = "failed", message
            return False
        self.rules = rules
        self.stats.reloads += 1
        self.last_reload, self.reload_error = "ok", ""
        logger.info(f"tokenfix: reloaded {_count(rules)} from {path}")
        return True

    # ------------------------------------------------------------ admin

    def health(self) -> Health:
        """Called from the admin listener's thread: reads, never writes."""
        rules = self.rules
        beat = self.heartbeat
        return Health(
            rules=len(rules) if rules is not None else 0,
            ok=rules is not None and not self.reload_error,
            last_reload=self.last_reload,
            message=self.reload_error,
            loaded=rules is not None,
            loop_lag=time.monotonic() - beat if beat is not None else 0.0,
        )

    def _check_admin_listen(self) -> None:
        listen = ctx.options.tokenfix_admin_listen
        if not listen:
            return
        try:
            _, port = parse_listen(listen)
        except ValueError as e:
            raise exceptions.OptionsError(f"tokenfix_admin_listen: {e}") from None
        if port and port in _proxy_ports():
            # a load balancer's health check must not reach the proxied port
            raise exceptions.OptionsError(
                f"tokenfix_admin_listen: port {port} is the proxy's own port; "
                "give the admin listener a port of its own, such as 9464"
            )

    def _start_admin(self) -> None:
        """(Re)start the admin listener on the address the option names.

        The old listener stops first, so that the same port can be bound
        again; when the new one fails, mitmproxy puts the old option value
        back and configure() starts the old listener again.
        """
        if self.admin is not None:
            self.admin.stop()
            self.admin = None
        listen = ctx.options.tokenfix_admin_listen
        if not listen:
            return
        admin = AdminServer(self.stats, self.health)
        try:
            host, port = admin.start(listen)
        except (OSError, ValueError) as e:
            raise exceptions.OptionsError(
                f"tokenfix_admin_listen: cannot listen on {listen}: {e}"
            ) from None
        self.admin = admin
        logger.info(f"tokenfix: admin listener on {host}:{port} (/health, /metrics)")

    @command.command("tokenfix.reload")
    def reload(self) -> None:
        """Reload tokenfix's rules file now."""
        path = ctx.options.tokenfix_rules
        self.signature = file_signature(path)
        self._reload(path)

    @command.command("tokenfix.stats")
    def show_stats(self) -> str:
        """Per rule: matched, changed and skipped exchanges, with reasons; per
        client profile finding: how many exchanges got it."""
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
        body = contentview.request_body(req)
        info = RequestInfo(req.method, req.host, path, query, req.headers, body)
        matched = rules.for_request(info)
        if not matched:
            return
        self.pinned[flow] = (matched, info)
        if self.dry_run:
            return
        for name, value in engine.request_headers(matched).items():
            if value is None:
                req.headers.pop(name, None)
            else:
                req.headers[name] = value

    def response(self, flow: mhttp.HTTPFlow) -> None:
        pinned = self.pinned.pop(flow, None)
        body = self._rewrite(flow, pinned)
        self._check_profile(flow, pinned[1] if pinned else None, body)

    def _rewrite(self, flow: mhttp.HTTPFlow, pinned) -> bytes | None:
        """Apply the pinned rules; the decoded body the client gets, when known."""
        if pinned is None or flow.response is None or flow.error:
            return None
        rules, info = pinned
        resp = flow.response
        if resp.stream or resp.raw_content is None:
            self._skip(flow, rules, "streamed body")
            return None
        try:
            body = decode_bounded(
                resp.raw_content, resp.headers.get("content-encoding")
            )
        except BodySkip as e:
            self._skip(flow, rules, str(e))
            return None
        outcome = engine.rewrite(
            rules, info, resp.status_code, resp.headers, body, secrets=self.secrets
        )
        self.stats.count(outcome)
        body_skips = [r for _, r in outcome.skipped if r.startswith(BODY_SKIPPED)]
        if body_skips and not outcome.changed:
            self._log_skip(flow, body_skips[0].removeprefix(BODY_SKIPPED))
        apply = outcome.changed and not self.dry_run
        if apply and (self.keep_backups or _has_flow_view()):
            # before any change, so that Revert restores the original
            flow.backup()
        self._report(flow, outcome)
        if not apply:
            return body
        self._apply(flow, outcome)
        return body if outcome.body is None else outcome.body

    def _skip(self, flow: mhttp.HTTPFlow, rules, reason: str) -> None:
        self.stats.skip_all(rules, f"{BODY_SKIPPED}{reason}")
        self._log_skip(flow, reason)

    def _log_skip(self, flow: mhttp.HTTPFlow, reason: str) -> None:
        message = f"{_where(flow)}response left as is: {reason}"
        self._log_throttled(logging.DEBUG, f"skip:{shape(reason)}", message)

    def _log_throttled(self, level: int, key: str, message: str) -> None:
        """Log, unless lines of this key have come too often; the next line
        allowed says how many were held back."""
        allowed, held = self.throttle.allow(key)
        if allowed:
            more = f" ({held} more since the last such line)" if held else ""
            logger.log(level, f"tokenfix: {message}{more}")

    def _report(self, flow: mhttp.HTTPFlow, outcome: engine.Outcome) -> None:
        for warning in outcome.warnings:
            kind = getattr(warning, "kind", warning)
            self._log_throttled(logging.WARNING, f"warn:{kind}", warning)
        for note in outcome.notes:
            logger.debug(f"tokenfix: {note}")
        if not outcome.changed:
            return
        dry = self.dry_run
        lines = []
        for rule in dict.fromkeys(change.rule for change in outcome.changes):
            done = ", ".join(c.describe() for c in outcome.changes if c.rule == rule)
            verb = "would " if dry else ""
            lines.append(f"rule {rule!r}: {verb}{done}")
            logger.info(f"tokenfix: {_where(flow)}rule {rule!r}: {verb}{done}")
        comment = "tokenfix: " + "; ".join(lines)
        flow.comment = f"{flow.comment}\n{comment}" if flow.comment else comment
        flow.metadata["tokenfix"] = [change.as_dict() for change in outcome.changes]

    def _apply(self, flow: mhttp.HTTPFlow, outcome: engine.Outcome) -> None:
        resp = flow.response
        if outcome.body is not None:
            _set_body(resp, outcome.body)
        if outcome.status is not None:
            resp.status_code = outcome.status
            resp.reason = _reason_phrase(outcome.status)
        for name, value in outcome.headers.items():
            if value is None:
                resp.headers.pop(name, None)
            else:
                resp.headers[name] = value
        flow.marked = MARK

    # ------------------------------------------------------------ profile

    def _check_profile(
        self,
        flow: mhttp.HTTPFlow,
        info: RequestInfo | None,
        body: bytes | None,
    ) -> None:
        """Check what the client finally receives against its profile.

        `info` and `body` are the request and decoded response body as the
        rules saw and left them, when they ran; else both are read here.
        """
        profile = self.profile
        resp = flow.response
        if profile == "none" or resp is None or flow.error:
            return
        if resp.stream or resp.raw_content is None:
            return
        if info is None:
            info = contentview.token_request(flow)
        if info is None or info.grant_type is None:
            return
        if body is None:
            try:
                body = decode_bounded(
                    resp.raw_content, resp.headers.get("content-encoding")
                )
            except BodySkip:
                return
        duration = None
        if resp.timestamp_end and flow.request.timestamp_start:
            duration = resp.timestamp_end - flow.request.timestamp_start

        findings = profiles.check(
            profile,
            info.grant_type,
            resp.status_code,
            resp.headers,
            body,
            duration=duration,
        )
        self._flag(flow, profile, findings)

    def _flag(self, flow: mhttp.HTTPFlow, profile: str, findings: list) -> None:
        flow.metadata["tokenfix_profile"] = profile
        flow.metadata["tokenfix_findings"] = [f.as_dict() for f in findings]
        for finding in findings:
            self.stats.findings[f"{finding.code} ({finding.severity})"] += 1
        if not findings:
            return
        lines = [f"tokenfix: {profile} {f.severity}: {f.message}" for f in findings]
        flow.comment = "\n".join([flow.comment, *lines] if flow.comment else lines)

        errors = [f for f in findings if f.severity == "error"]
        if not errors:
            return
        flow.marked = FLAG
        messages = "; ".join(f.message for f in errors)
        key = f"flag:{[f.code for f in errors]}"
        self._log_throttled(
            logging.WARNING, key, f"{_where(flow)}{profile}: {messages}"
        )


def _proxy_ports() -> set[int]:
    """The ports mitmproxy's own servers listen on, as far as options tell."""
    ports = set()
    for spec in ctx.options.mode:
        try:
            port = mode_specs.ProxyMode.parse(spec).listen_port(ctx.options.listen_port)
        except ValueError:
            continue
        if port:
            ports.add(port)
    return ports


def _has_flow_view() -> bool:
    """Whether a flow view (mitmweb's, the console's) can show and revert a
    flow's backup; asked per rewrite, as a view may be added after tokenfix."""
    return ctx.master.addons.get("view") is not None


def _backups_wanted() -> bool:
    """Whether a saved flow file would carry a flow's backup to a flow view.

    Without a flow file or a view (mitmdump on its own) nothing reads a
    backup, and a backup is a copy of the whole flow: the largest share of
    tokenfix's cost per rewrite.
    """
    return bool(getattr(ctx.options, "save_stream_file", None))


def _try_load(path: str) -> RuleSet | Exception:
    """The rules of the file, or why they cannot be had.

    Any exception is caught, not only a RuleError: a fault of the loader
    itself must not end live reloading nor crash the proxy, and the last
    good rules stay in force.
    """
    try:
        return load_rules(path)
    except Exception as e:  # noqa: BLE001 - reported, and the old rules stay
        return e


def _load_error(path: str, error: Exception) -> str:
    if isinstance(error, RuleError):
        return str(error)
    return f"{path}: cannot load the rules ({type(error).__name__}: {error})"


def _where(flow: mhttp.HTTPFlow) -> str:
    """The start of a log line about one exchange: method and path, no query
    (a query may carry a code or a secret)."""
    return f"{flow.request.method} {flow.request.path.split('?')[0]}: "


def _count(rules: RuleSet) -> str:
    return f"{len(rules)} rule" + ("" if len(rules) == 1 else "s")


def _set_body(resp: mhttp.Response, body: bytes) -> None:
    """Set the body; mitmproxy re-encodes it and fixes the Content-Length."""
    encoding = resp.headers.get("content-encoding", "")
    if encoding.strip().lower() != "x-gzip":
        resp.content = body
        return
    # mitmproxy knows gzip only by its main name, and would drop the header
    # (x-gzip is gzip: RFC 9110 section 8.4.1.3)
    resp.headers["content-encoding"] = "gzip"
    resp.content = body
    resp.headers["content-encoding"] = encoding


def _reason_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""
