"""The twelve factors and the tests that prove each one: a module of its own here, plus tests
elsewhere in the suite that already prove part of it (linked, not copied). `make factors` runs
exactly these; docs/twelve-factor.md explains each row, and test_catalog.py keeps the three in
step."""

from __future__ import annotations

from dataclasses import dataclass

HERE = "tests/twelve_factor"
RENDER = "tests/chart/test_chart_render.py"
WEB = "tests/service/test_web_process.py"
IMAGE = "tests/container/test_image.py"


@dataclass(frozen=True)
class Factor:
    number: int
    name: str
    module: str  # this package's module for the factor, proving it from outside
    links: tuple[str, ...] = ()  # node ids of existing tests that prove part of it
    # Proofs that need the built image: run by `make test-container`, listed in the table and
    # the docs, not run by `make factors`.
    image: tuple[str, ...] = ()

    @property
    def node_ids(self) -> tuple[str, ...]:
        return (f"{HERE}/{self.module}", *self.links)


FACTORS = (
    Factor(
        1,
        "Codebase",
        "test_f01_codebase.py",
        links=(
            f"{RENDER}::test_environments_differ_only_in_configuration",
            "tests/skaffold/test_skaffold_config.py"
            "::test_profiles_dev_staging_prod_each_deploy_one_release_with_their_own_values_file",
        ),
    ),
    Factor(
        2,
        "Dependencies",
        "test_f02_dependencies.py",
        links=(
            "tests/container/test_build_files.py"
            "::test_dockerfile_installs_requirements_with_hashes_and_no_secrets",
        ),
        image=(f"{IMAGE}::test_runtime_stage_has_no_compilers_pip_caches_tests_or_local_files",),
    ),
    Factor(
        3,
        "Config",
        "test_f03_config.py",
        links=(
            "tests/service/test_settings.py"
            "::test_every_process_exits_2_fast_with_one_line_naming_the_variable",
            f"{RENDER}::test_config_comes_from_the_configmap_and_the_password_from_a_file",
            f"{RENDER}::test_no_password_appears_in_any_configmap_or_env_value",
        ),
        image=(f"{IMAGE}::test_missing_config_exits_2_with_one_json_line_naming_the_variable",),
    ),
    Factor(
        4,
        "Backing services",
        "test_f04_backing_services.py",
        links=(
            f"{RENDER}::test_external_database_uses_existing_secret_and_verified_tls",
            f"{RENDER}::test_in_chart_mysql_is_a_statefulset_with_pvc_headless_service_and_ping_probe",
            f"{WEB}::test_database_restart_under_a_running_process_recovers",
        ),
    ),
    Factor(
        5,
        "Build, release, run",
        "test_f05_build_release_run.py",
        links=(
            f"{RENDER}::test_migration_job_runs_migrate_from_the_same_image_as_the_deployment",
            f"{RENDER}::test_a_config_change_changes_the_pod_checksum_and_rolls_the_pods",
        ),
        image=(
            f"{IMAGE}::test_image_env_and_oci_labels_carry_the_same_release_metadata",
            f"{IMAGE}::test_migrate_runs_as_one_off_container_idempotently_then_check_passes",
        ),
    ),
    Factor(
        6,
        "Processes",
        "test_f06_processes.py",
        links=(f"{RENDER}::test_writable_paths_are_emptydirs_tmp_for_metrics_and_memory_dev_shm",),
        image=(f"{IMAGE}::test_web_serves_readyz_users_version_and_metrics_from_read_only_root",),
    ),
    Factor(
        7,
        "Port binding",
        "test_f07_port_binding.py",
        links=(
            f"{RENDER}::test_web_container_runs_the_web_process_on_named_port_http",
            f"{RENDER}::test_service_maps_port_80_to_container_port_http",
        ),
    ),
    Factor(
        8,
        "Concurrency",
        "test_f08_concurrency.py",
        links=(
            f"{WEB}::test_metrics_are_summed_across_workers_and_labelled_by_route",
            f"{RENDER}::test_hpa_enabled_omits_deployment_replicas",
            f"{RENDER}::test_the_pool_size_counts_in_the_connection_budget",
        ),
    ),
    Factor(
        9,
        "Disposability",
        "test_f09_disposability.py",
        links=(
            f"{WEB}::test_sigterm_lets_the_request_in_flight_finish_and_exits_0",
            "tests/service/test_worker.py"
            "::test_sigterm_under_load_answers_every_request_that_reached_the_socket",
            f"{RENDER}::test_grace_period_covers_prestop_plus_graceful_timeout",
        ),
        image=(
            f"{IMAGE}::test_docker_stop_under_load_answers_every_request_that_reached_the_socket",
        ),
    ),
    Factor(
        10,
        "Dev/prod parity",
        "test_f10_dev_prod_parity.py",
        links=(
            "tests/skaffold/test_skaffold_config.py"
            "::test_profile_values_render_and_dev_turns_on_web_reload_in_the_container",
            "tests/container/test_build_files.py"
            "::test_compose_db_is_mysql_84_with_named_volume_healthcheck_and_init_script",
        ),
    ),
    Factor(
        11,
        "Logs",
        "test_f11_logs.py",
        links=(
            f"{WEB}::test_every_stdout_line_is_a_json_event_and_requests_carry_their_id",
            "tests/service/test_logs.py::test_exception_is_kept_inside_the_one_json_line",
        ),
        image=(f"{IMAGE}::test_web_logs_are_json_lines_without_errors",),
    ),
    Factor(
        12,
        "Admin processes",
        "test_f12_admin_processes.py",
        links=(
            "tests/service/test_cli.py::test_migrate_is_idempotent_and_logs_json",
            f"{RENDER}::test_web_pods_wait_for_the_schema_with_the_check_process",
        ),
        image=(f"{IMAGE}::test_migrate_runs_as_one_off_container_idempotently_then_check_passes",),
    ),
)
