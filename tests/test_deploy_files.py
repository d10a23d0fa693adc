"""The service files in deploy/, read as their tools read them: the systemd
units' sandboxing, the Dockerfile's base and user, the Kubernetes manifests'
replicas, mounts, probes and Service, HAProxy's configuration; and nowhere in
them, or in the docs, is certificate verification turned off."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from addon.rules import load_rules
from bench.haproxy_bench import render_config
from tests.helpers import REPO

DEPLOY = REPO / "deploy"
ADMIN_PORT = 9464
RULES_DIR = "/etc/tokenfix"


# -- systemd -------------------------------------------------------------------------


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    """A systemd unit's sections: each key with all its values, in order, and
    backslash-continued lines joined as systemd joins them."""
    text = (DEPLOY / name).read_text(encoding="utf-8")
    text = re.sub(r"\\\n\s*", " ", text)
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


SANDBOX = {
    "NoNewPrivileges": "yes",
    "DynamicUser": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictNamespaces": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "SystemCallFilter": "@system-service",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "ReadOnlyPaths": RULES_DIR,
}


class TestSystemd:
    @pytest.mark.parametrize("name", ["tokenfix.service", "tokenfix-worker@.service"])
    def test_the_service_is_sandboxed(self, name):
        service = unit(name)["Service"]

        for key, value in SANDBOX.items():
            assert service.get(key) == [value], key
        assert "User" not in service  # DynamicUser makes one up

    def test_the_front_service_keeps_only_the_right_to_bind_443(self):
        service = unit("tokenfix.service")["Service"]

        assert service["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
        assert service["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
        (command,) = service["ExecStart"]
        assert "--mode reverse:${UPSTREAM}@443 " in command
        assert "--certs *=%d/tls.pem " in command
        assert f"--set tokenfix_rules={RULES_DIR}/rules.yaml " in command
        assert f"--set tokenfix_admin_listen=127.0.0.1:{ADMIN_PORT} " in command

    def test_a_worker_has_no_capability_and_listens_on_loopback(self):
        service = unit("tokenfix-worker@.service")["Service"]

        assert service["CapabilityBoundingSet"] == [""]
        (command,) = service["ExecStart"]
        assert "--mode reverse:${UPSTREAM}@808%i " in command
        assert "--listen-host 127.0.0.1 " in command
        assert "--set tokenfix_admin_listen=127.0.0.1:946%i " in command
        assert "--certs" not in command


# -- the container image -------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)
    pairs = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            instruction, _, rest = line.strip().partition(" ")
            pairs.append((instruction.upper(), " ".join(rest.split())))
    return pairs


class TestDockerfile:
    def test_a_slim_python_base(self):
        bases = [args for op, args in dockerfile() if op == "FROM"]

        assert len(bases) == 1
        assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", bases[0])

    def test_it_runs_as_a_user_that_is_not_root(self):
        steps = dockerfile()
        users = [args for op, args in steps if op == "USER"]
        last_run = max(i for i, (op, _) in enumerate(steps) if op == "RUN")
        last_user = max(i for i, (op, _) in enumerate(steps) if op == "USER")

        assert users[-1].split(":")[0] not in ("root", "0")
        assert last_user > last_run  # nothing after it runs as root

    def test_the_rules_are_read_from_the_mounted_folder(self):
        (entrypoint,) = [args for op, args in dockerfile() if op == "ENTRYPOINT"]

        assert f'"tokenfix_rules={RULES_DIR}/rules.yaml"' in entrypoint
        assert f'"tokenfix_admin_listen=0.0.0.0:{ADMIN_PORT}"' in entrypoint
        # the usage comment mounts the folder, read-only, over the default
        head = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
        assert f"-v /srv/tokenfix/rules:{RULES_DIR}:ro" in head

    def test_the_healthcheck_asks_the_admin_listener(self):
        (check,) = [args for op, args in dockerfile() if op == "HEALTHCHECK"]

        assert f"http://127.0.0.1:{ADMIN_PORT}/health" in check


# -- Kubernetes ----------------------------------------------------------------------


def manifests() -> dict[str, dict]:
    docs = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            docs[doc["kind"]] = doc
    return docs


@pytest.fixture(scope="module")
def k8s() -> dict[str, dict]:
    return manifests()


def container(k8s) -> dict:
    (only,) = k8s["Deployment"]["spec"]["template"]["spec"]["containers"]
    return only


def port_number(k8s, name: str) -> int:
    (port,) = [p for p in container(k8s)["ports"] if p["name"] == name]
    return port["containerPort"]


class TestKubernetes:
    def test_kustomize_lists_every_manifest(self, k8s):
        listed = set(k8s["Kustomization"]["resources"])
        files = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")}

        assert listed == files - {"kustomization.yaml"}

    def test_several_replicas_spread_over_nodes(self, k8s):
        spec = k8s["Deployment"]["spec"]

        assert spec["replicas"] > 1
        assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        assert k8s["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1

    def test_the_rules_configmap_is_mounted_as_a_folder(self, k8s):
        pod = k8s["Deployment"]["spec"]["template"]["spec"]
        (mount,) = [m for m in container(k8s)["volumeMounts"] if m["name"] == "rules"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == "rules"]

        assert volume["configMap"]["name"] == k8s["ConfigMap"]["metadata"]["name"]
        # a subPath mount would never see an update
        assert mount == {"name": "rules", "mountPath": RULES_DIR, "readOnly": True}

    def test_the_configmaps_rules_load(self, k8s, tmp_path):
        path = tmp_path / "rules.yaml"
        path.write_text(k8s["ConfigMap"]["data"]["rules.yaml"], encoding="utf-8")

        rules = load_rules(str(path))

        assert [rule.name for rule in rules.rules] == ["auth0-refresh-expires-in"]

    @pytest.mark.parametrize(
        ("probe", "path"),
        [("readinessProbe", "/health/ready"), ("livenessProbe", "/health/live")],
    )
    def test_probes_ask_the_admin_port(self, k8s, probe, path):
        get = container(k8s)[probe]["httpGet"]

        assert get == {"path": path, "port": "admin"}
        assert port_number(k8s, "admin") == ADMIN_PORT

    def test_the_service_serves_443_and_not_the_admin_port(self, k8s):
        service = k8s["Service"]["spec"]
        labels = k8s["Deployment"]["spec"]["template"]["metadata"]["labels"]

        assert service["selector"].items() <= labels.items()
        assert [(p["port"], p["targetPort"]) for p in service["ports"]] == [
            (443, "https")
        ]
        assert port_number(k8s, "https") == 8443
        assert "reverse:https://TENANT.auth0.com@8443" in container(k8s)["args"]

    def test_the_pod_runs_unprivileged(self, k8s):
        pod = k8s["Deployment"]["spec"]["template"]["spec"]
        security = container(k8s)["securityContext"]

        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"] == {"drop": ["ALL"]}


# -- HAProxy -------------------------------------------------------------------------


class TestHAProxy:
    def test_workers_are_checked_on_their_admin_port(self):
        text = (DEPLOY / "haproxy.cfg").read_text(encoding="utf-8")

        assert "http-check send meth GET uri /health/ready" in text
        servers = re.findall(
            r"^\s*server (\S+) 127\.0\.0\.1:(\d+) port (\d+)$", text, re.M
        )
        assert servers == [("worker1", "8081", "9461"), ("worker2", "8082", "9462")]

    @pytest.mark.skipif(shutil.which("haproxy") is None, reason="no haproxy here")
    def test_haproxy_accepts_the_configuration(self, tmp_path):
        # as the benchmark runs it: plain HTTP, so no certificate file is needed
        text = (DEPLOY / "haproxy.cfg").read_text(encoding="utf-8")
        config = tmp_path / "haproxy.cfg"
        rendered = render_config(text, 18080, [(18081, 19461)], tmp_path / "s.sock")
        config.write_text(rendered, encoding="utf-8")

        done = subprocess.run(
            ["haproxy", "-c", "-f", str(config)], capture_output=True, text=True
        )

        assert done.returncode == 0, done.stdout + done.stderr


# -- certificate verification stays on -----------------------------------------------

# ways to turn TLS verification off in mitmproxy, Python, curl, Node.js, HAProxy
NO_VERIFY = re.compile(
    r"ssl[-_]insecure|verify\s*=\s*false|verify:\s*false|cert_none"
    r"|check_hostname\s*=\s*false|--insecure\b|\bcurl\b.*\s-\w*k\b"
    r"|pythonhttpsverify\s*=\s*0|node_tls_reject_unauthorized\s*=\s*0"
    r"|\bverify\s+none\b|ssl_verify_upstream\w*\s*=\s*(?:false|0|no)\b",
    re.IGNORECASE,
)


def documents() -> list[Path]:
    """deploy/, the docs and every Markdown file of the project, the Makefile."""
    found = [p for p in DEPLOY.rglob("*") if p.is_file()]
    found += [p for p in (REPO / "docs").rglob("*") if p.suffix != ".png"]
    for pattern in ("*.md", "bench/*.md", "recipes/*", "tests/cases/*.md"):
        found += REPO.glob(pattern)
    return sorted({p for p in found if p.is_file()} | {REPO / "Makefile"})


class TestVerificationStaysOn:
    def test_the_pattern_catches_what_it_should(self):
        for text in (
            "mitmdump --ssl-insecure",
            "--set ssl_insecure=true",
            "requests.get(url, verify=False)",
            "curl -sk https://x",
            "server a 10.0.0.1:443 ssl verify none",
            "ctx.check_hostname = False",
        ):
            assert NO_VERIFY.search(text), text
        assert not NO_VERIFY.search("--set ssl_verify_upstream_trusted_ca=ca.pem")

    def test_nothing_turns_it_off(self):
        files = documents()
        offending = [
            f"{path.relative_to(REPO)}:{n}: {line.strip()}"
            for path in files
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if NO_VERIFY.search(line)
        ]

        assert REPO / "README.md" in files and DEPLOY / "Dockerfile" in files
        assert offending == []
