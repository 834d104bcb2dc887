"""deploy/kubernetes/, checked without a cluster or a kubectl binary.

The base and the production overlay are rendered here (`render`: the few kustomize features
they use, refusing any other) and every object is validated against the Kubernetes 1.30
OpenAPI schemas with kubernetes-validate (strict: an unknown field fails). Then what the
manifests promise is read off them: probes on /livez and /readyz, a hardened read-only pod,
a grace period covering the server's drain, settings that exist, secrets only by reference,
and a migration Job that backs up before `vidgen migrate deploy`.
"""

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from app.core.config import PROJECT_ROOT, Settings

KUBERNETES_VERSION = "1.30"
DEPLOY = PROJECT_ROOT / "deploy" / "kubernetes"
BASE = DEPLOY / "base"
OVERLAY = DEPLOY / "overlays" / "production"
SECRET_EXAMPLE = DEPLOY / "secret.example.yaml"
SECRET_NAME = "vidgen-secrets"
CLUSTER_SCOPED = frozenset({"Namespace"})
KUSTOMIZATION_FIELDS = frozenset(
    {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
)

Object = dict[str, Any]

# ---- a kustomize subset -----------------------------------------------------------------


def load_all(path: Path) -> list[Object]:
    # Through JSON: YAML anchors become copies, so a patch to one container is not to all.
    return [json.loads(json.dumps(doc)) for doc in yaml.safe_load_all(path.read_text()) if doc]


def strategic_merge(target: Any, patch: Any) -> Any:
    """Kubernetes' strategic merge for what our patches do: maps merge, lists of named
    items (containers, env, volumes) merge by name, anything else is replaced."""
    if isinstance(target, dict) and isinstance(patch, dict):
        assert not [k for k in patch if k.startswith("$")], "patch directives are not supported"
        merged = dict(target)
        for key, value in patch.items():
            merged[key] = strategic_merge(target[key], value) if key in target else value
        return merged
    if isinstance(target, list) and isinstance(patch, list) and is_named_list(target + patch):
        merged_items = {item["name"]: item for item in target}
        for item in patch:
            old = merged_items.get(item["name"])
            merged_items[item["name"]] = strategic_merge(old, item) if old else item
        return list(merged_items.values())
    return patch


def is_named_list(items: list[Any]) -> bool:
    return all(isinstance(item, dict) and "name" in item for item in items)


def set_image(image: str, rule: dict[str, str]) -> str:
    name = re.split(r"[:@]", image, maxsplit=1)[0]
    if name != rule["name"]:
        return image
    return f"{rule.get('newName', name)}:{rule['newTag']}"


def render(directory: Path) -> list[Object]:
    """`kubectl kustomize DIRECTORY` for the features our kustomizations use."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert set(kustomization) <= KUSTOMIZATION_FIELDS, "render() does not know these fields"
    objects: list[Object] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        objects += render(path) if path.is_dir() else load_all(path)
    for entry in kustomization.get("patches", []):
        assert set(entry) == {"path"}, "only strategic-merge patches from files"
        (patch,) = load_all(directory / entry["path"])
        (index,) = [
            i
            for i, obj in enumerate(objects)
            if (obj["kind"], obj["metadata"]["name"]) == (patch["kind"], patch["metadata"]["name"])
        ]
        objects[index] = strategic_merge(objects[index], patch)
    for obj in objects:
        if "namespace" in kustomization and obj["kind"] not in CLUSTER_SCOPED:
            obj["metadata"]["namespace"] = kustomization["namespace"]
        for rule in kustomization.get("images", []):
            for container in containers(obj):
                container["image"] = set_image(container["image"], rule)
    return objects


# ---- reading the objects ----------------------------------------------------------------


def pod_spec(obj: Object) -> Object | None:
    if obj["kind"] == "Deployment":
        return obj["spec"]["template"]["spec"]  # type: ignore[no-any-return]
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]
    return None


def containers(obj: Object) -> Iterator[Object]:
    spec = pod_spec(obj) or {}
    yield from spec.get("initContainers", [])
    yield from spec.get("containers", [])


def one(objects: list[Object], kind: str, name: str | None = None) -> Object:
    (found,) = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    return found


def env_names(container: Object, objects: list[Object]) -> set[str]:
    names = {variable["name"] for variable in container.get("env", [])}
    for source in container.get("envFrom", []):
        names |= set(one(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    return names


def config_value(objects: list[Object], key: str) -> str:
    return one(objects, "ConfigMap", "vidgen-config")["data"][key]  # type: ignore[no-any-return]


@pytest.fixture(scope="module", params=["base", "production"])
def rendered(request: pytest.FixtureRequest) -> list[Object]:
    return render(BASE if request.param == "base" else OVERLAY)


# ---- the tests --------------------------------------------------------------------------


def test_every_manifest_validates_against_the_kubernetes_schemas(rendered: list[Object]) -> None:
    assert rendered
    for obj in rendered:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{where}: {error.message} at {list(error.path)}")


def test_the_validator_rejects_unknown_fields_and_wrong_types() -> None:
    deployment = one(render(BASE), "Deployment")
    typo = json.loads(json.dumps(deployment))
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    wrong = json.loads(json.dumps(deployment))
    wrong["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "30"
    for broken in (typo, wrong):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_overlay_sets_namespace_image_and_its_patches() -> None:
    base, production = render(BASE), render(OVERLAY)
    assert one(production, "Namespace")["metadata"]["name"] == "vidgen"
    assert {o["metadata"].get("namespace") for o in production if o["kind"] != "Namespace"} == {
        "vidgen"
    }
    images = {c["image"] for o in production for c in containers(o)}
    assert images == {"registry.example.com/vidgen:2026.11.30"}
    api = one(production, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    base_api = one(base, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert api["resources"]["limits"]["memory"] == "1Gi"
    assert api["resources"]["limits"]["cpu"] == base_api["resources"]["limits"]["cpu"]
    assert api["readinessProbe"] == base_api["readinessProbe"]  # merged, not replaced
    assert config_value(production, "APP_ENV") == "production"
    assert config_value(production, "PUBLIC_BASE_URL").startswith("https://")


def test_the_api_serves_the_probes_on_its_port(rendered: list[Object]) -> None:
    deployment = one(rendered, "Deployment", "vidgen-api")
    (api,) = deployment["spec"]["template"]["spec"]["containers"]
    (port,) = api["ports"]
    command = api["command"]
    assert command[:4] == ["vidgen", "serve", "--host", "0.0.0.0"]
    assert command[command.index("--port") + 1] == str(port["containerPort"])
    assert int(command[command.index("--workers") + 1]) >= 1
    probes = {
        kind: api[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes["startupProbe"]["path"] == probes["livenessProbe"]["path"] == "/livez"
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert {probe["port"] for probe in probes.values()} == {port["name"]}
    # The probe must see /readyz's own 503, not time out first.
    health_timeout = float(config_value(rendered, "HEALTH_TIMEOUT_S"))
    assert api["readinessProbe"]["timeoutSeconds"] > health_timeout


def test_the_grace_period_covers_the_prestop_sleep_and_the_drain(rendered: list[Object]) -> None:
    spec = one(rendered, "Deployment", "vidgen-api")["spec"]["template"]["spec"]
    (api,) = spec["containers"]
    sleep, seconds = api["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep == "sleep"
    # The kubelet counts the grace period from deletion: preStop, then SIGTERM and the drain.
    drain = int(config_value(rendered, "SHUTDOWN_TIMEOUT_S"))
    assert spec["terminationGracePeriodSeconds"] >= 30
    assert spec["terminationGracePeriodSeconds"] > int(seconds) + drain
    # `sleep` comes with the image: coreutils is Essential in Debian, the base it runs on.
    final_stage = re.findall(r"^FROM\s+(\S+)", (PROJECT_ROOT / "Dockerfile").read_text(), re.M)
    assert re.fullmatch(r"python:3\.\d+-slim-(bookworm|trixie)", final_stage[-1])


def test_every_pod_is_non_root_read_only_and_confined(rendered: list[Object]) -> None:
    pods = [(o, pod_spec(o)) for o in rendered if pod_spec(o) is not None]
    assert {o["kind"] for o, _ in pods} == {"Deployment", "CronJob"}
    for obj, spec in pods:
        assert spec is not None
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in containers(obj):
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert container["resources"]["requests"] and container["resources"]["limits"]
            mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
            assert "emptyDir" in mounts["/tmp"], container["name"]


def test_the_api_stages_media_on_an_empty_dir(rendered: list[Object]) -> None:
    spec = one(rendered, "Deployment", "vidgen-api")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in spec["containers"][0]["volumeMounts"]}
    assert config_value(rendered, "MEDIA_BACKEND") == "s3"
    assert "emptyDir" in mounts[config_value(rendered, "MEDIA_DIR")]


def test_every_variable_set_is_a_setting_and_production_settings_load(
    rendered: list[Object],
) -> None:
    fields = {name.upper() for name in Settings.model_fields}
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= fields
    for obj in rendered:
        for container in containers(obj):
            unknown = env_names(container, rendered) - fields
            assert not unknown, f"{container['name']}: not settings: {sorted(unknown)}"
            # What the container is sure to get (optional secrets left out) passes the
            # production validation: a command refused at start-up fails here instead.
            values = {
                variable["name"]: "x" * 32
                for variable in container.get("env", [])
                if not variable["valueFrom"]["secretKeyRef"].get("optional")
            }
            for source in container.get("envFrom", []):
                values |= one(rendered, "ConfigMap", source["configMapRef"]["name"])["data"]
            assert "DATABASE_URL" in values, container["name"]
            values["DATABASE_URL"] = "postgresql://vidgen:x@db.internal:5432/vidgen"
            settings = Settings(_env_file=None, **{k.lower(): v for k, v in values.items()})  # type: ignore[arg-type]
            assert settings.app_env == "production", container["name"]


def test_secrets_are_referenced_never_committed(rendered: list[Object]) -> None:
    referenced: set[str] = set()
    for obj in rendered:
        for container in containers(obj):
            for variable in container.get("env", []):
                ref = variable["valueFrom"]["secretKeyRef"]  # no secret value inline
                assert ref["name"] == SECRET_NAME and ref["key"] == variable["name"]
                referenced.add(ref["key"])
    api = one(rendered, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert {"DATABASE_URL", "ADMIN_TOKEN", "FAL_KEY", "METRICS_TOKEN"} <= env_names(api, rendered)
    assert not [o for o in rendered if o["kind"] == "Secret"]
    # The example lists exactly the keys the pods read, with no values.
    (example,) = load_all(SECRET_EXAMPLE)
    kubernetes_validate.validate(example, KUBERNETES_VERSION, strict=True)
    assert example["metadata"]["name"] == SECRET_NAME
    assert set(example["stringData"]) == referenced
    assert set(example["stringData"].values()) == {""} and "data" not in example


def test_no_yaml_under_deploy_carries_a_secret_value() -> None:
    for path in DEPLOY.rglob("*.yaml"):
        for obj in load_all(path):
            if obj.get("kind") == "Secret":
                assert path == SECRET_EXAMPLE
                assert not obj.get("data") and not any(obj.get("stringData", {}).values())


def test_the_migration_job_backs_up_then_runs_migrate_deploy(rendered: list[Object]) -> None:
    cronjob = one(rendered, "CronJob", "vidgen-migrate")
    assert cronjob["spec"]["suspend"] is True  # a template for `kubectl create job --from`
    job = cronjob["spec"]["jobTemplate"]["spec"]
    spec = job["template"]["spec"]
    assert job["backoffLimit"] == 0 and spec["restartPolicy"] == "Never"
    (migrate,) = spec["containers"]
    assert migrate["command"] == ["vidgen", "migrate", "deploy"]
    backup, prune = spec["initContainers"]
    assert backup["command"] == ["vidgen", "backup", "create"]
    assert prune["command"][:3] == ["vidgen", "backup", "prune"]
    # The gate reads the backup the init container wrote: the same volume at BACKUP_DIR.
    volumes = {v["name"]: v for v in spec["volumes"]}
    backup_dir = config_value(rendered, "BACKUP_DIR")
    for container in (backup, prune, migrate):
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == backup_dir]
        claim = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
        assert one(rendered, "PersistentVolumeClaim", claim)
        assert "BACKUP_SIGNING_KEY" in env_names(container, rendered)
    commands = [c["command"] for o in rendered for c in containers(o)]
    assert not [c for c in commands if "--skip-backup-check" in c]


def test_service_pdb_and_hpa_point_at_the_api(rendered: list[Object]) -> None:
    deployment = one(rendered, "Deployment", "vidgen-api")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert "replicas" not in deployment["spec"]  # the HPA owns the count
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    service = one(rendered, "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    (api,) = deployment["spec"]["template"]["spec"]["containers"]
    assert port["targetPort"] == api["ports"][0]["name"]
    pdb = one(rendered, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = one(rendered, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "vidgen-api")
    assert hpa["spec"]["minReplicas"] >= 2  # so the PDB's maxUnavailable 1 leaves one serving
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
