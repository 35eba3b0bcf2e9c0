"""Assertions on the rendered objects: every promise the chart makes, scenario by scenario."""

from __future__ import annotations

import base64

import pytest
import yaml

from tests.support.chart import (
    CHART,
    KUBE_VERSIONS,
    LATEST,
    SCENARIOS,
    SERVICE_MONITOR_API,
    Rendered,
    containers,
    env_of,
    labels_match,
    pod_labels,
    render,
    render_error,
)

APP_UID = 10001


def config(rendered: Rendered) -> dict[str, str]:
    """Data of the app's ConfigMap (the one the Deployment's envFrom names)."""
    return rendered.named("ConfigMap", rendered.deployment["metadata"]["name"] + "-config")["data"]


def web_container(rendered: Rendered) -> dict:
    return rendered.deployment["spec"]["template"]["spec"]["containers"][0]


def volumes_by_name(spec: dict) -> dict[str, dict]:
    return {v["name"]: v for v in spec.get("volumes", [])}


# ---------------------------------------------------------------- the web Deployment


def test_web_container_runs_the_web_process_on_named_port_http(scenario: Rendered) -> None:
    web = web_container(scenario)
    assert "command" not in web  # the image's ENTRYPOINT `python -m service`
    assert web["args"] == ["web"]
    assert web["ports"] == [{"name": "http", "containerPort": 5000, "protocol": "TCP"}]
    assert config(scenario)["PORT"] == "5000"


def test_probes_use_healthz_for_liveness_and_startup_and_readyz_for_readiness(
    scenario: Rendered,
) -> None:
    web = web_container(scenario)
    assert web["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert web["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert web["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    startup = web["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30
    # /readyz gives up on the database (503 with a reason) before the kubelet gives up on /readyz
    assert float(config(scenario)["READINESS_TIMEOUT"]) < web["readinessProbe"]["timeoutSeconds"]


@pytest.mark.parametrize("probe_timeout", [1, 2, 5])
def test_readiness_timeout_follows_the_probe_timeout(probe_timeout: int) -> None:
    rendered = render("--set", f"probes.readiness.timeoutSeconds={probe_timeout}")
    assert 0 < float(config(rendered)["READINESS_TIMEOUT"]) < probe_timeout


def test_every_pod_and_container_runs_restricted(scenario: Rendered) -> None:
    for doc, spec in scenario.pod_specs():
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        assert spec["automountServiceAccountToken"] is False, where
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, where
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, where
        is_mysql = pod_labels(doc)["app.kubernetes.io/component"] == "database"
        if not is_mysql:
            assert (pod["runAsUser"], pod["runAsGroup"], pod["fsGroup"]) == (APP_UID,) * 3
        for container in containers(spec):
            ctx = container["securityContext"]
            name = f"{where}/{container['name']}"
            assert ctx["runAsNonRoot"] is True, name
            assert ctx["readOnlyRootFilesystem"] is True, name
            assert ctx["allowPrivilegeEscalation"] is False, name
            assert ctx["privileged"] is False, name
            assert ctx["capabilities"] == {"drop": ["ALL"]}, name
            assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}, name
            assert container["resources"]["requests"] and container["resources"]["limits"], name
            assert {"cpu", "memory"} <= container["resources"]["limits"].keys(), name


def test_writable_paths_are_emptydirs_tmp_for_metrics_and_memory_dev_shm(
    scenario: Rendered,
) -> None:
    spec = scenario.deployment["spec"]["template"]["spec"]
    volumes = volumes_by_name(spec)
    mounts = {m["mountPath"]: m["name"] for m in web_container(scenario)["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
    data = config(scenario)
    assert data["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/service-metrics"
    assert data["WORKER_TMP_DIR"] == "/dev/shm"


def test_config_comes_from_the_configmap_and_the_password_from_a_file(
    scenario: Rendered,
) -> None:
    web = web_container(scenario)
    assert web["envFrom"] == [
        {"configMapRef": {"name": scenario.deployment["metadata"]["name"] + "-config"}}
    ]
    assert env_of(web) == {"DATABASE_PASSWORD_FILE": "/etc/users-service/db/web-password"}
    data = config(scenario)
    for key in ("DATABASE_HOST", "DATABASE_PORT", "DATABASE_NAME", "DATABASE_USER"):
        assert data[key], key
    for key in ("WEB_CONCURRENCY", "GRACEFUL_TIMEOUT", "LOG_LEVEL", "WEB_TIMEOUT", "WEB_RELOAD"):
        assert key in data


def test_no_password_appears_in_any_configmap_or_env_value(scenario: Rendered) -> None:
    secrets = [
        base64.b64decode(value).decode()
        for secret in scenario.all("Secret")
        for value in secret.get("data", {}).values()
    ]
    for configmap in scenario.all("ConfigMap"):
        for key, value in configmap.get("data", {}).items():
            assert "PASSWORD" not in key.upper() or key.endswith("_FILE"), key
            for secret in secrets:
                assert secret not in value, f"a password is in ConfigMap key {key}"
    for _doc, spec in scenario.pod_specs():
        for container in containers(spec):
            for entry in container.get("env", []):
                if "PASSWORD" in entry["name"]:
                    assert entry["name"].endswith("_FILE"), entry["name"]


def test_secret_is_mounted_as_a_volume_never_through_subpath(scenario: Rendered) -> None:
    mounted = 0
    for doc, spec in scenario.pod_specs():
        secret_volumes = {v["name"] for v in spec.get("volumes", []) if "secret" in v}
        for container in containers(spec):
            for mount in container.get("volumeMounts", []):
                if mount["name"] in secret_volumes:
                    mounted += 1
                    assert "subPath" not in mount, f"{doc['metadata']['name']}: subPath"
                    assert mount.get("readOnly") is True
    assert mounted >= 2


def test_web_pods_get_only_the_web_password_and_the_job_also_the_migrate_one(
    scenario: Rendered,
) -> None:
    def items(spec: dict) -> list[str]:
        secret = volumes_by_name(spec)["db-credentials"]["secret"]
        return [i["path"] for i in secret["items"]]

    assert items(scenario.deployment["spec"]["template"]["spec"]) == ["web-password"]
    job_spec = scenario.job["spec"]["template"]["spec"]
    assert items(job_spec) == ["web-password", "migrate-password"]
    env = env_of(job_spec["containers"][0])
    assert env["MIGRATE_DATABASE_PASSWORD_FILE"] == "/etc/users-service/db/migrate-password"
    assert env["MIGRATE_DATABASE_USER"]


def test_a_config_change_changes_the_pod_checksum_and_rolls_the_pods(default: Rendered) -> None:
    def checksum(rendered: Rendered) -> str:
        return rendered.deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum(render()) == checksum(default)  # deterministic
    assert checksum(render("--set", "logLevel=DEBUG")) != checksum(default)
    assert checksum(render("--set", "web.concurrency=3")) != checksum(default)


def test_rolling_update_never_drops_below_the_desired_replicas(scenario: Rendered) -> None:
    strategy = scenario.deployment["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    assert strategy["rollingUpdate"]["maxSurge"] >= 1


def test_web_pods_spread_across_nodes(default: Rendered) -> None:
    spec = default.deployment["spec"]["template"]["spec"]
    [constraint] = spec["topologySpreadConstraints"]
    assert constraint["topologyKey"] == "kubernetes.io/hostname"
    assert labels_match(constraint["labelSelector"], pod_labels(default.deployment))


def test_web_reload_sets_web_reload_and_gives_skaffold_a_writable_code_dir() -> None:
    assert config(render())["WEB_RELOAD"] == "false"
    assert [
        c["name"] for c in render().deployment["spec"]["template"]["spec"]["initContainers"]
    ] == ["wait-for-schema"]
    rendered = render("--set", "web.reload=true")
    assert config(rendered)["WEB_RELOAD"] == "true"
    spec = rendered.deployment["spec"]["template"]["spec"]
    copy = spec["initContainers"][0]
    assert copy["name"] == "copy-source"
    # entry by entry into the emptyDir (its root is not the container user's): service/admin.py
    assert copy["command"] == ["python", "-m", "service", "copy-source", "/source"]
    mounts = {m["mountPath"]: m["name"] for m in web_container(rendered)["volumeMounts"]}
    assert "emptyDir" in volumes_by_name(spec)[mounts["/app/service"]]
    assert web_container(rendered)["securityContext"]["readOnlyRootFilesystem"] is True


# ---------------------------------------------------------------- shutdown timing


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_grace_period_covers_prestop_plus_graceful_timeout(
    renders: dict, kube_version: str
) -> None:
    for name in SCENARIOS:
        rendered = renders[name, kube_version]
        spec = rendered.deployment["spec"]["template"]["spec"]
        pre_stop = spec["containers"][0]["lifecycle"]["preStop"]
        if kube_version < "1.30":
            # the native sleep action is feature-gated off in 1.29: the service's sleep instead
            command = pre_stop["exec"]["command"]
            assert command[:4] == ["python", "-m", "service", "sleep"]
            drain = int(command[4])
        else:
            drain = pre_stop["sleep"]["seconds"]
        graceful = int(config(rendered)["GRACEFUL_TIMEOUT"])
        assert drain > 0 and graceful > 0
        assert spec["terminationGracePeriodSeconds"] > drain + graceful, name


def test_shutdown_timing_derives_from_the_shutdown_values() -> None:
    rendered = render(
        "--set", "shutdown.drainSeconds=7", "--set", "shutdown.gracefulTimeoutSeconds=40"
    )
    spec = rendered.deployment["spec"]["template"]["spec"]
    assert spec["containers"][0]["lifecycle"]["preStop"] == {"sleep": {"seconds": 7}}
    assert config(rendered)["GRACEFUL_TIMEOUT"] == "40"
    assert spec["terminationGracePeriodSeconds"] == 7 + 40 + 5


def test_prestop_action_can_be_forced_to_exec_on_newer_clusters() -> None:
    rendered = render("--set", "shutdown.preStopAction=exec")
    pre_stop = web_container(rendered)["lifecycle"]["preStop"]
    assert pre_stop == {"exec": {"command": ["python", "-m", "service", "sleep", "10"]}}


@pytest.mark.parametrize("action", ["auto", "sleep", "exec"])
@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_zero_drain_renders_no_prestop_hook_and_the_grace_period_without_it(
    kube_version: str, action: str
) -> None:
    # Before 1.33 the API server rejects a sleep action of 0 seconds: no hook at all instead.
    rendered = render(
        "--set", "shutdown.drainSeconds=0", "--set", f"shutdown.preStopAction={action}",
        kube_version=kube_version,
    )  # fmt: skip
    spec = rendered.deployment["spec"]["template"]["spec"]
    assert "lifecycle" not in spec["containers"][0]
    assert spec["terminationGracePeriodSeconds"] == 0 + 20 + 5


@pytest.mark.parametrize(("kube_version", "action"), [("1.29.0", "exec"), ("1.33.0", "sleep")])
def test_a_one_second_drain_still_renders_the_prestop_hook(kube_version: str, action: str) -> None:
    rendered = render("--set", "shutdown.drainSeconds=1", kube_version=kube_version)
    spec = rendered.deployment["spec"]["template"]["spec"]
    assert list(spec["containers"][0]["lifecycle"]["preStop"]) == [action]
    assert spec["terminationGracePeriodSeconds"] == 1 + 20 + 5


# ---------------------------------------------------------------- migrations


def test_migration_job_runs_migrate_from_the_same_image_as_the_deployment(
    scenario: Rendered,
) -> None:
    job = scenario.job
    spec = job["spec"]["template"]["spec"]
    migrate = spec["containers"][0]
    assert migrate["image"] == web_container(scenario)["image"]
    assert migrate["args"] == ["migrate"]
    assert "command" not in migrate
    assert spec["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 1
    assert job["spec"]["activeDeadlineSeconds"] > 0
    for init in spec["initContainers"]:
        assert init["image"] == migrate["image"]


def test_job_mode_is_a_plain_job_with_ttl_and_a_hashed_name(default: Rendered) -> None:
    job = default.job
    annotations = job["metadata"].get("annotations", {})
    assert not any(a.startswith("helm.sh/hook") for a in annotations)
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    name = job["metadata"]["name"]
    assert name.startswith("users-users-service-migrate-") and len(name) <= 63
    assert render().job["metadata"]["name"] == name  # same release, same Job: nothing re-runs
    assert render("--set", "image.tag=0.2.0").job["metadata"]["name"] != name
    assert (
        render(
            "--set",
            "externalDatabase.host=db",
            "--set",
            "mysql.enabled=false",
            "--set",
            "externalDatabase.existingSecret=s",
        ).job["metadata"]["name"]
        != name
    )
    assert (
        render("--set", "migrations.ttlSecondsAfterFinished=null")
        .job["spec"]
        .get("ttlSecondsAfterFinished")
        is None
    )


def test_web_pods_wait_for_the_schema_with_the_check_process(scenario: Rendered) -> None:
    spec = scenario.deployment["spec"]["template"]["spec"]
    [init] = [c for c in spec["initContainers"] if c["name"] == "wait-for-schema"]
    assert init["image"] == web_container(scenario)["image"]
    assert init["command"][:5] == ["python", "-m", "service", "check", "--wait"]
    assert init["envFrom"] == web_container(scenario)["envFrom"]


def test_hook_mode_is_a_pre_install_pre_upgrade_hook_with_its_own_config(
    renders: dict,
) -> None:
    rendered = renders["hook", LATEST]
    job = rendered.job
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation"
    spec = job["spec"]["template"]["spec"]
    hook_cm = spec["containers"][0]["envFrom"][0]["configMapRef"]["name"]
    for kind, name in (("ConfigMap", hook_cm), ("ServiceAccount", spec["serviceAccountName"])):
        obj = rendered.named(kind, name)
        hook = obj["metadata"]["annotations"]
        assert hook["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert int(hook["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])
    assert rendered.named("ConfigMap", hook_cm)["data"]["ca.crt"].startswith("-----BEGIN")


def test_hook_mode_with_the_in_chart_mysql_fails_clearly() -> None:
    error = render_error("--set", "migrations.mode=hook")
    assert "migrations.mode=hook needs an external database" in error


# ---------------------------------------------------------------- database


def test_in_chart_mysql_is_a_statefulset_with_pvc_headless_service_and_ping_probe(
    default: Rendered,
) -> None:
    sts = default.one("StatefulSet", "database")
    spec = sts["spec"]["template"]["spec"]
    mysql = spec["containers"][0]
    assert mysql["image"] == "mysql:8.4"
    assert "--max-connections=151" in mysql["args"]
    assert mysql["readinessProbe"]["exec"]["command"][:2] == ["mysqladmin", "ping"]
    [claim] = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "8Gi"
    service = default.named("Service", sts["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    assert labels_match({"matchLabels": service["spec"]["selector"]}, pod_labels(sts))
    assert config(default)["DATABASE_HOST"] == service["metadata"]["name"]
    sized = render(
        "--set",
        "mysql.persistence.size=2Gi",
        "--set",
        "mysql.persistence.storageClass=fast",
        "--set",
        "database.maxConnections=300",
    )
    sts = sized.one("StatefulSet", "database")
    claim = sts["spec"]["volumeClaimTemplates"][0]["spec"]
    assert (claim["storageClassName"], claim["resources"]["requests"]["storage"]) == ("fast", "2Gi")
    assert "--max-connections=300" in sts["spec"]["template"]["spec"]["containers"][0]["args"]


def test_in_chart_mysql_grants_least_privilege_from_an_init_script(default: Rendered) -> None:
    initdb = default.one("ConfigMap", "database")
    [script] = initdb["data"].values()
    assert "GRANT SELECT, INSERT, UPDATE, DELETE ON \\`users\\`.* TO 'users'@'%';" in script
    assert (
        "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP, REFERENCES "
        "ON \\`users\\`.* TO 'users_migrate'@'%';" in script
    )
    sts = default.one("StatefulSet", "database")
    mounts = {
        m["mountPath"] for m in sts["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    }
    assert "/docker-entrypoint-initdb.d" in mounts


def test_generated_secret_has_the_documented_keys_and_is_kept(default: Rendered) -> None:
    secret = default.one("Secret", "database")
    assert set(secret["data"]) == {"root-password", "web-password", "migrate-password"}
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    with_existing = render("--set", "mysql.auth.existingSecret=my-db")
    assert with_existing.all("Secret") == []
    volume = volumes_by_name(with_existing.deployment["spec"]["template"]["spec"])
    assert volume["db-credentials"]["secret"]["secretName"] == "my-db"


def test_external_database_uses_existing_secret_and_verified_tls(renders: dict) -> None:
    rendered = renders["external-db", LATEST]
    assert rendered.all("StatefulSet") == [] and rendered.all("Secret") == []
    data = config(rendered)
    assert data["DATABASE_HOST"] == "users-db.example.com"
    assert data["DATABASE_SSL_CA"] == "/etc/users-service/db-ca/ca.crt"
    spec = rendered.deployment["spec"]["template"]["spec"]
    volumes = volumes_by_name(spec)
    assert volumes["db-credentials"]["secret"]["secretName"] == "users-db-credentials"
    ca_cm = rendered.named("ConfigMap", volumes["db-ca"]["configMap"]["name"])
    assert ca_cm["data"]["ca.crt"].startswith("-----BEGIN CERTIFICATE-----")
    mounts = {m["name"]: m["mountPath"] for m in web_container(rendered)["volumeMounts"]}
    assert mounts["db-ca"] == "/etc/users-service/db-ca"
    prod = renders["prod", LATEST]
    volumes = volumes_by_name(prod.deployment["spec"]["template"]["spec"])
    assert volumes["db-ca"]["configMap"]["name"] == "users-db-ca"
    assert config(prod)["DATABASE_SSL_CA"] == "/etc/users-service/db-ca/ca.crt"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "mysql.enabled=false"], "no database configured"),
        (
            ["--set", "mysql.enabled=false", "--set", "externalDatabase.host=db.example.com"],
            "externalDatabase.existingSecret is required",
        ),
        (["--set", "externalDatabase.host=db.example.com"], "Choose one"),
        (
            ["--set", "database.readTimeoutSeconds=30"],
            "must be below web.timeoutSeconds",
        ),
    ],
)
def test_bad_database_settings_fail_with_a_clear_message(args: list[str], message: str) -> None:
    assert message in render_error(*args)


def test_every_bad_combination_is_reported_in_one_failed_render() -> None:
    """_validation.tpl collects its checks' messages and fails once with all of them, so a user
    fixes a values file in one round instead of one helm run per mistake."""
    error = render_error(
        "--set", "mysql.enabled=false",  # no host and no existingSecret: two messages
        "--set", "autoscaling.enabled=true",
        "--set", "autoscaling.minReplicas=5",
        "--set", "autoscaling.maxReplicas=2",
        "--set", "service.nodePort=30080",
        "--set", "database.writeTimeoutSeconds=30",
        "--set", "metrics.serviceMonitor.enabled=true",
    )  # fmt: skip
    expected = [
        "users-service: no database configured.",
        "users-service: externalDatabase.existingSecret is required when mysql.enabled=false",
        "users-service: autoscaling.minReplicas (5) is greater than autoscaling.maxReplicas (2).",
        "users-service: database.readTimeoutSeconds (10) and database.writeTimeoutSeconds (30) "
        "must be below web.timeoutSeconds (30)",
        "users-service: service.nodePort is set but service.type is ClusterIP",
        "users-service: metrics.serviceMonitor.enabled=true, but the cluster serves no",
    ]
    positions = [error.find(message) for message in expected]
    assert -1 not in positions, error
    assert positions == sorted(positions), "messages out of the order _validation.tpl checks them"
    assert error.count("users-service: ") == len(expected), error  # one failure, no repeats
    assert error.count("Error: ") == 1, error


# ---------------------------------------------------------------- scaling


def test_connection_budget_overflow_fails_the_render() -> None:
    # defaults: 2 workers x a pool of 4 + 1 readiness connection = 9 per pod, 1 + 10 reserved
    error = render_error("--set", "replicaCount=15")
    assert "database connection budget exceeded" in error
    assert "16 web pods at peak" in error and "= 155 > database.maxConnections 151" in error
    assert "web.concurrency 2 x database.poolSize 4 + 1 readiness probe" in error
    render("--set", "replicaCount=14")  # 15 x 9 + 11 = 146
    error = render_error(
        "--set",
        "autoscaling.enabled=true",
        "--set",
        "autoscaling.maxReplicas=30",
        "--set",
        "web.concurrency=5",
    )
    assert "autoscaling.maxReplicas 30" in error
    # the same replicas fit when the server allows more connections
    render("--set", "replicaCount=15", "--set", "database.maxConnections=155")


def test_the_pool_size_counts_in_the_connection_budget() -> None:
    # 3 pods at peak x (2 workers x 23 + 1) + 11 = 152 > 151; with 22: 146
    assert "= 152 > database.maxConnections 151" in render_error("--set", "database.poolSize=23")
    assert config(render("--set", "database.poolSize=22"))["DATABASE_POOL_SIZE"] == "22"


def test_pool_settings_are_rendered_into_the_configmap() -> None:
    data = config(render("--set", "database.poolTimeoutSeconds=3"))
    assert (data["DATABASE_POOL_SIZE"], data["DATABASE_POOL_TIMEOUT"]) == ("4", "3")


def test_hpa_enabled_omits_deployment_replicas(renders: dict) -> None:
    rendered = renders["hpa", LATEST]
    assert "replicas" not in rendered.deployment["spec"]
    hpa = rendered.one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": rendered.deployment["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)
    default = renders["default", LATEST]
    assert (
        default.deployment["spec"]["replicas"] == 2 and default.all("HorizontalPodAutoscaler") == []
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], True),
        (["--set", "replicaCount=1"], False),
        (["--set", "autoscaling.enabled=true", "--set", "autoscaling.minReplicas=1"], False),
        (
            [
                "--set",
                "autoscaling.enabled=true",
                "--set",
                "autoscaling.minReplicas=2",
                "--set",
                "replicaCount=1",
            ],
            True,
        ),
    ],
)
def test_pdb_exists_only_when_more_than_one_pod_runs(args: list[str], expected: bool) -> None:
    rendered = render(*args)
    pdbs = rendered.all("PodDisruptionBudget")
    assert bool(pdbs) is expected
    if pdbs:
        assert labels_match(pdbs[0]["spec"]["selector"], pod_labels(rendered.deployment))


# ---------------------------------------------------------------- traffic


def test_service_maps_port_80_to_container_port_http(scenario: Rendered) -> None:
    service = scenario.named("Service", scenario.deployment["metadata"]["name"])
    [port] = service["spec"]["ports"]
    assert (port["port"], port["targetPort"], port["name"]) == (80, "http", "http")
    assert labels_match(
        {"matchLabels": service["spec"]["selector"]}, pod_labels(scenario.deployment)
    )


def test_service_port_is_a_value() -> None:
    rendered = render("--set", "service.port=8080")
    service = rendered.named("Service", rendered.deployment["metadata"]["name"])
    assert service["spec"]["ports"][0]["port"] == 8080
    assert rendered.one("Pod", "test")["spec"]["containers"][0]["args"][1].endswith(":8080")


def test_node_port_is_set_only_with_a_node_port_service() -> None:
    rendered = render("--set", "service.type=NodePort", "--set", "service.nodePort=30080")
    service = rendered.named("Service", rendered.deployment["metadata"]["name"])
    assert (service["spec"]["type"], service["spec"]["ports"][0]["nodePort"]) == ("NodePort", 30080)
    assert "nodePort" not in render().all("Service")[0]["spec"]["ports"][0]
    assert "service.type is ClusterIP" in render_error("--set", "service.nodePort=30080")


def test_ingress_routes_to_the_service_with_tls(renders: dict) -> None:
    rendered = renders["ingress", LATEST]
    ingress = rendered.one("Ingress")
    assert ingress["spec"]["tls"] == [
        {"secretName": "users-example-com-tls", "hosts": ["users.example.com"]}
    ]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": rendered.deployment["metadata"]["name"], "port": {"name": "http"}}
    assert renders["default", LATEST].all("Ingress") == []


def test_network_policies_select_the_pods_they_protect(scenario: Rendered) -> None:
    workloads = {
        pod_labels(doc)["app.kubernetes.io/component"]: pod_labels(doc)
        for doc, _spec in scenario.pod_specs()
    }
    policies = scenario.all("NetworkPolicy")
    for component, labels in workloads.items():
        assert any(labels_match(p["spec"]["podSelector"], labels) for p in policies), component
    web_policy = next(
        p for p in policies if labels_match(p["spec"]["podSelector"], workloads["web"])
    )
    assert [port["port"] for rule in web_policy["spec"]["ingress"] for port in rule["ports"]] == [
        "http"
    ]
    if "database" in workloads:
        db_policy = next(
            p for p in policies if labels_match(p["spec"]["podSelector"], workloads["database"])
        )
        [rule] = db_policy["spec"]["ingress"]
        [peer] = rule["from"]
        allowed = {
            c for c, labels in workloads.items() if labels_match(peer["podSelector"], labels)
        }
        assert allowed == {"web", "migrate"}
        assert rule["ports"] == [{"port": "mysql", "protocol": "TCP"}]


def test_restricted_ingress_sources_still_admit_the_helm_test_pod(renders: dict) -> None:
    rendered = renders["ingress", LATEST]
    policy = rendered.named("NetworkPolicy", rendered.deployment["metadata"]["name"])
    peers = policy["spec"]["ingress"][0]["from"]
    test_pod = rendered.one("Pod", "test")
    assert any(
        "podSelector" in p and labels_match(p["podSelector"], pod_labels(test_pod)) for p in peers
    )
    assert any("namespaceSelector" in p for p in peers)


def test_servicemonitor_scrapes_metrics_only_when_enabled(renders: dict) -> None:
    assert renders["default", LATEST].all("ServiceMonitor") == []
    rendered = renders["ingress", LATEST]
    monitor = rendered.one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    [endpoint] = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
    service = rendered.named("Service", rendered.deployment["metadata"]["name"])
    assert labels_match(monitor["spec"]["selector"], service["metadata"]["labels"])


@pytest.mark.parametrize(
    "args",
    [
        ["--set", "metrics.serviceMonitor.enabled=true"],
        ["--values", str(CHART / "values-prod.yaml")],
    ],
)
def test_servicemonitor_without_its_crd_fails_the_render_naming_the_value_to_turn_off(
    args: list[str],
) -> None:
    # Without the guard `helm install` fails later, on the API server, with "no matches for kind".
    error = render_error(*args)
    assert "metrics.serviceMonitor.enabled=false" in error
    assert "monitoring.coreos.com/v1 ServiceMonitor" in error
    assert f"--api-versions {SERVICE_MONITOR_API}" in error


def test_servicemonitor_renders_where_the_cluster_serves_its_crd() -> None:
    on = render(
        "--set", "metrics.serviceMonitor.enabled=true", "--api-versions", SERVICE_MONITOR_API
    )
    assert on.one("ServiceMonitor")["apiVersion"] == "monitoring.coreos.com/v1"
    prod = render(
        "--values", str(CHART / "values-prod.yaml"), "--api-versions", SERVICE_MONITOR_API
    )  # fmt: skip
    assert prod.one("ServiceMonitor")["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    # still opt-in: the CRD being there does not turn it on
    assert render("--api-versions", SERVICE_MONITOR_API).all("ServiceMonitor") == []


def test_helm_test_pod_calls_readyz_and_users_through_the_service(default: Rendered) -> None:
    pod = default.one("Pod", "test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    [container] = pod["spec"]["containers"]
    assert container["image"] == web_container(default)["image"]
    assert "command" not in container  # the image's ENTRYPOINT `python -m service`
    assert container["args"] == ["smoke", "http://users-users-service:80"]
    assert render("--set", "helmTest.enabled=false").all("Pod") == []


# ---------------------------------------------------------------- labels, images, environments


def test_every_object_carries_the_recommended_labels(scenario: Rendered) -> None:
    for doc in scenario.docs:
        labels = doc["metadata"]["labels"]
        for key in ("name", "instance", "version", "managed-by", "part-of"):
            assert f"app.kubernetes.io/{key}" in labels, (doc["kind"], key)
        assert doc["metadata"]["namespace"] == "users-service"


def test_image_settings_and_pull_secrets_apply_to_every_app_container() -> None:
    rendered = render(
        "--set",
        "image.repository=registry.example.com/users",
        "--set",
        "image.tag=1.2.3",
        "--set",
        "image.pullPolicy=Always",
        "--set",
        "imagePullSecrets[0].name=regcred",
    )
    for doc, spec in rendered.pod_specs():
        if pod_labels(doc)["app.kubernetes.io/component"] == "database":
            continue
        assert spec["imagePullSecrets"] == [{"name": "regcred"}]
        for container in containers(spec):
            assert container["image"] == "registry.example.com/users:1.2.3"
            assert container["imagePullPolicy"] == "Always"
    digest = "sha256:" + "a" * 64
    pinned = render("--set", f"image.digest={digest}")
    assert web_container(pinned)["image"] == f"users-service@{digest}"


def test_environments_differ_only_in_configuration(renders: dict) -> None:
    """dev, staging and prod run the same processes from the same image; only values differ."""
    shapes = set()
    for name in ("dev", "staging", "prod"):
        rendered = renders[name, LATEST]
        shape = []
        for doc, spec in rendered.pod_specs():
            if pod_labels(doc)["app.kubernetes.io/component"] == "database":
                continue
            shape += [
                (c["name"], c["image"], str(c.get("args")), str(c.get("command")))
                for c in containers(spec)
            ]
        shapes.add(tuple(sorted(shape)))
    assert len(shapes) == 1
    prod = renders["prod", LATEST]
    assert prod.all("HorizontalPodAutoscaler") and prod.all("PodDisruptionBudget")
    assert prod.one("Ingress")["spec"]["tls"]
    assert renders["dev", LATEST].all("StatefulSet")
    values = yaml.safe_load((CHART / "values-prod.yaml").read_text())
    assert values["externalDatabase"]["existingSecret"]


def test_an_app_upgrade_leaves_the_database_pod_template_unchanged() -> None:
    # Found on the real cluster: the app version label in the StatefulSet's pod template
    # restarted MySQL on every image upgrade, and the API answered 503 meanwhile.
    def template(tag: str) -> dict:
        rendered = render("--values", str(CHART / "values-dev.yaml"), "--set", f"image.tag={tag}")
        return rendered.one("StatefulSet", "database")["spec"]["template"]

    before, after = template("1.0.0"), template("1.1.0")
    assert before == after
    assert before["metadata"]["labels"]["app.kubernetes.io/version"] == "8.4"
