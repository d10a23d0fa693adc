"""Deployment end to end: the admin listener, TLS on both sides, and rules
mounted from a Kubernetes ConfigMap, through a real mitmdump in front of the
demo authorization server."""

import os
import socket
import ssl
import subprocess
import time

import pytest
import requests

from demo.authserver import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from tests.deployhelpers import (
    ConfigMapVolume,
    ReverseAtPort,
    TestCA,
    TLSFront,
    admin_address,
    admin_get,
    health,
    metric,
)
from tests.helpers import (
    LOCAL_RULE,
    LOCAL_RULES,
    Mitmdump,
    TokenClient,
    free_port,
    jwt_claims,
    wait_until,
    write_atomically,
)

pytestmark = pytest.mark.e2e

ADMIN_ON = "tokenfix_admin_listen=127.0.0.1:0"
# line 10 holds the mistake
BROKEN_RULES = LOCAL_RULES.replace("- default:", "- defualt:")
BROKEN_ERROR = ":10: rule 'local-refresh-expires-in': unknown action 'defualt' ("


@pytest.fixture
def rules(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(LOCAL_RULES, encoding="utf-8")
    return path


def refresh_token_from(base_url: str) -> str:
    client = TokenClient(base_url)
    resp = client.exchange_code(client.authorize())
    assert resp.status == 200, resp.body
    return resp.json()["refresh_token"]


class TestAdminListener:
    @pytest.fixture
    def proxy(self, shared_mitmdump, authserver, local_rules):
        return shared_mitmdump(authserver.url, local_rules, ADMIN_ON)

    def test_health_follows_the_rules_file_on_disk(
        self, start_mitmdump, authserver, rules
    ):
        proxy = start_mitmdump(authserver.url, rules, ADMIN_ON)
        admin = admin_address(proxy)
        assert health(admin) == (
            200,
            {"status": "ok", "rules": 1, "last_reload": "never"},
        )

        write_atomically(rules, BROKEN_RULES)
        status, body = wait_until(
            lambda: (h := health(admin))[0] == 503 and h, timeout=5, what="503"
        )
        assert (body["status"], body["rules"], body["last_reload"]) == (
            "degraded",
            1,
            "failed",
        )
        assert body["error"].startswith(f"{rules}{BROKEN_ERROR}")
        # still in service: the older rules work, and every replica has the edit
        assert admin_get(admin, "/health/ready")[0] == 200
        assert admin_get(admin, "/health/live")[0] == 200

        # the older rules still repair refreshes meanwhile
        token = refresh_token_from(proxy.url)
        assert "expires_in" in TokenClient(proxy.url).refresh(token).json()

        write_atomically(rules, LOCAL_RULES)
        wait_until(lambda: health(admin)[0] == 200, timeout=5, what="200 again")
        assert health(admin)[1] == {"status": "ok", "rules": 1, "last_reload": "ok"}

    def test_metrics_count_a_rewrite(self, proxy):
        admin = admin_address(proxy)
        changed = f'tokenfix_rule_changed_total{{rule="{LOCAL_RULE}"}}'
        before = metric(admin, changed) or 0.0

        token = refresh_token_from(proxy.url)
        assert "expires_in" in TokenClient(proxy.url).refresh(token).json()

        # the response hook has run before the client has the response
        assert metric(admin, changed) == before + 1
        assert metric(admin, f'tokenfix_rule_matched_total{{rule="{LOCAL_RULE}"}}')
        assert metric(admin, "tokenfix_rules") == 1.0
        assert metric(admin, "tokenfix_reloads_failed_total") == 0.0

    def test_the_admin_port_is_not_the_proxy_port(self, proxy, authserver):
        host, port = admin_address(proxy)
        assert (host, port) != ("127.0.0.1", proxy.port)
        # on the proxy's port, /health is the upstream's business
        status, body = admin_get(("127.0.0.1", proxy.port), "/health")
        assert status == 404
        assert b"not_found" in body
        assert authserver.answers[-1].status == 404

    def test_the_proxy_port_is_refused(self, tmp_path, mitmproxy_confdir, rules):
        proc = Mitmdump(
            "http://127.0.0.1:9",
            rules,
            workdir=tmp_path,
            confdir=mitmproxy_confdir,
        )
        proc.port = free_port()
        proc.options.append(f"tokenfix_admin_listen=127.0.0.1:{proc.port}")
        done = subprocess.run(
            proc.command(), cwd=tmp_path, capture_output=True, text=True, timeout=20
        )
        assert done.returncode == 1
        assert (
            f"tokenfix_admin_listen: port {proc.port} is the proxy's own port"
            in done.stdout + done.stderr
        )
        assert "Traceback" not in done.stdout + done.stderr


# -- TLS ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory, mitmproxy_confdir, authserver, local_rules):
    """mitmdump as deployed: `reverse:https://HOST:PORT@PORT`, its own certificate
    from --certs, and the upstream verified against the test's CA."""
    folder = tmp_path_factory.mktemp("tls")
    ca = TestCA(folder)
    front = TLSFront(authserver.port, ca.leaf("upstream")).start()
    proc = ReverseAtPort(
        f"https://127.0.0.1:{front.port}",
        local_rules,
        workdir=folder,
        confdir=mitmproxy_confdir,
        options=[f"ssl_verify_upstream_trusted_ca={ca.path}"],
        extra=("--certs", f"*={ca.leaf('proxy').bundle}"),
    )
    proc.start()
    yield ca, front, proc
    proc.stop()
    front.stop()


def tls_refresh(url: str, ca: TestCA, refresh_token: str) -> requests.Response:
    with requests.Session() as session:
        return session.post(
            f"{url}/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
            verify=str(ca.path),
            timeout=10,
        )


class TestTLS:
    def test_a_refresh_is_fixed_over_tls_end_to_end(self, tls, authserver):
        ca, front, proc = tls
        assert proc.url.startswith("https://")
        assert "--ssl-insecure" not in proc.command()

        resp = tls_refresh(proc.url, ca, refresh_token_from(authserver.url))

        assert resp.status_code == 200, resp.text
        body = resp.json()
        left = jwt_claims(body["access_token"])["exp"] - body["expires_in"]
        assert abs(left - jwt_claims(body["access_token"])["iat"]) <= 2
        assert front.handshakes >= 1  # it came over the TLS upstream

    def test_the_client_sees_the_proxys_certificate(self, tls):
        ca, _, proc = tls
        context = ssl.create_default_context(cafile=str(ca.path))
        raw = socket.create_connection(("127.0.0.1", proc.port), timeout=5)
        with context.wrap_socket(raw, server_hostname="localhost") as conn:
            cert = conn.getpeercert()
        assert dict(x[0] for x in cert["subject"])["commonName"] == "127.0.0.1"
        assert dict(x[0] for x in cert["issuer"])["commonName"] == "tokenfix test CA"

    def test_a_client_without_the_ca_refuses_the_proxy(self, tls, authserver):
        _, _, proc = tls
        with pytest.raises(requests.exceptions.SSLError):
            requests.post(f"{proc.url}/oauth/token", timeout=10)

    def test_an_upstream_the_ca_does_not_vouch_for_is_refused(
        self, tls, tmp_path, authserver
    ):
        ca, front, proc = tls
        leaf = TestCA(tmp_path, "rogue CA").leaf("upstream")
        # new connections from the proxy get the rogue CA's certificate
        good, front.context = front.context, ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        front.context.load_cert_chain(leaf.cert, leaf.key)
        try:
            resp = tls_refresh(proc.url, ca, "rt-never-reaches-the-server")
        finally:
            front.context = good

        assert resp.status_code == 502
        assert "certificate verify failed" in resp.text.lower()


# -- rules from a ConfigMap ----------------------------------------------------------

FIXED_RULE = "local-fixed-lifetime"
FIXED_LIFETIME = 1234
FIXED_RULES = f"""\
rules:
  - name: {FIXED_RULE}
    match: {{host: 127.0.0.1, path: /oauth/token, grant_type: refresh_token}}
    when: {{expires_in: missing}}
    actions:
      - default: {{expires_in: {FIXED_LIFETIME}}}
"""


class TestConfigMapReload:
    """The kubelet's update of a mounted ConfigMap: files in a timestamped
    folder, `..data` a symlink to it, `rules.yaml` a symlink to
    `..data/rules.yaml`, and an update an atomic rename of `..data`."""

    def test_a_swap_of_data_reloads_and_a_broken_one_keeps_the_rules(
        self, start_mitmdump, authserver, tmp_path
    ):
        volume = ConfigMapVolume(tmp_path / "tokenfix-rules")
        first = volume.publish({"rules.yaml": LOCAL_RULES})
        rules = volume.root / "rules.yaml"
        assert os.readlink(rules) == "..data/rules.yaml"
        proxy = start_mitmdump(authserver.url, rules, ADMIN_ON)
        admin = admin_address(proxy)
        client = TokenClient(proxy.url)
        token = refresh_token_from(proxy.url)

        def refresh() -> dict:
            nonlocal token
            body = client.refresh(token).json()
            token = body["refresh_token"]  # the demo server rotates them
            return body

        # the first rules: the lifetime read from the access token
        assert refresh()["expires_in"] in (authserver.lifetime - 1, authserver.lifetime)

        volume.publish({"rules.yaml": FIXED_RULES})
        swapped = time.monotonic()
        assert not first.exists()  # the kubelet removed the old folder
        wait_until(
            lambda: refresh()["expires_in"] == FIXED_LIFETIME,
            timeout=2,
            what="the new rules in force",
        )
        assert time.monotonic() - swapped < 2
        assert health(admin) == (200, {"status": "ok", "rules": 1, "last_reload": "ok"})
        assert metric(admin, f'tokenfix_rule_changed_total{{rule="{FIXED_RULE}"}}')

        volume.publish({"rules.yaml": BROKEN_RULES})
        status, body = wait_until(
            lambda: (h := health(admin))[0] == 503 and h, timeout=2, what="503"
        )
        assert (body["status"], body["rules"], body["last_reload"]) == (
            "degraded",
            1,
            "failed",
        )
        assert body["error"].startswith(f"{rules}{BROKEN_ERROR}")
        assert metric(admin, "tokenfix_rules_file_ok") == 0.0
        assert metric(admin, "tokenfix_reloads_failed_total") == 1.0
        # the rules from before the broken swap still serve
        assert refresh()["expires_in"] == FIXED_LIFETIME
        assert admin_get(admin, "/health/ready")[0] == 200

        volume.publish({"rules.yaml": LOCAL_RULES})
        wait_until(lambda: health(admin)[0] == 200, timeout=2, what="200 again")
        assert refresh()["expires_in"] in (authserver.lifetime - 1, authserver.lifetime)
        assert metric(admin, "tokenfix_reloads_total") == 2.0
