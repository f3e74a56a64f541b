//! `mantis config check`: the configuration read and checked as the platform (or one
//! cluster-mode service) reads it at start, without connecting to anything; a wrong key or
//! value is named and exits 1, and nothing is created on disk.

use std::path::Path;
use std::process::Command;

fn check(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mantis"));
    cmd.args(["config", "check"])
        .args(args)
        .current_dir(dir)
        .env("MANTIS_INFRA__DATA_DIR", dir.join("data"))
        .env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("mantis runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_platforms_configuration_is_checked_without_starting_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ok, out, err) = check(dir.path(), &[], &[]);
    assert!(ok, "{err}");
    assert!(
        out.contains("configuration of mantis run is valid"),
        "{out}"
    );
    assert!(out.contains("bus: embedded log in"), "{out}");
    assert!(out.contains("schemas: embedded (compiled-in ids)"), "{out}");
    assert!(out.contains("rules: built in"), "{out}");
    assert!(!dir.path().join("data").exists(), "a check creates nothing");
    let (ok, out, _) = check(dir.path(), &["--demo"], &[]);
    assert!(
        ok && out.contains("configuration of mantis demo is valid"),
        "{out}"
    );

    // A misspelt key in the file, a bad value in the environment: named, exit 1.
    let file = dir.path().join("mantis.toml");
    std::fs::write(&file, "[preprocessing]\nwindow_sec = 10\n").expect("written");
    let (ok, _, err) = check(
        dir.path(),
        &["--config", file.to_str().expect("utf-8")],
        &[],
    );
    assert!(!ok);
    assert!(err.contains("window_sec"), "{err}");
    let (ok, _, err) = check(
        dir.path(),
        &[],
        &[("MANTIS_PREPROCESSING__WINDOW_SECS", "0")],
    );
    assert!(!ok);
    assert!(err.contains("preprocessing.window_secs"), "{err}");
    let (ok, _, err) = check(
        dir.path(),
        &[],
        &[("MANTIS_INFRA__DATABASE_URL", "mysql://db/mantis")],
    );
    assert!(!ok);
    assert!(err.contains("infra.database_url"), "{err}");

    // Rules that do not parse stop every service that reads them.
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).expect("dir");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules");
    for name in ["criticality.toml", "routing.toml", "planning.toml"] {
        std::fs::copy(shipped.join(name), rules.join(name)).expect("copied");
    }
    let (ok, out, err) = check(
        dir.path(),
        &["--service", "orchestrator"],
        &[("MANTIS_INFRA__RULES_DIR", rules.to_str().expect("utf-8"))],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("rules: {}", rules.display())),
        "{out}"
    );
    std::fs::write(
        rules.join("criticality.toml"),
        "[criticality.CRITICAL]\nanomaly_threshold = \"high\"\n",
    )
    .expect("written");
    let (ok, _, err) = check(
        dir.path(),
        &["--service", "orchestrator"],
        &[("MANTIS_INFRA__RULES_DIR", rules.to_str().expect("utf-8"))],
    );
    assert!(!ok);
    assert!(err.contains("criticality"), "{err}");
}

#[test]
fn a_cluster_service_is_checked_as_its_own_binary_reads_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kafka = [
        ("MANTIS_INFRA__BUS__KIND", "kafka"),
        ("MANTIS_INFRA__BUS__BROKERS", "kafka:9092"),
        (
            "MANTIS_INFRA__DATABASE_URL",
            "postgres://mantis:secret-pw@db:5432/mantis",
        ),
    ];
    let (ok, out, err) = check(dir.path(), &["--service", "anomaly"], &kafka);
    assert!(ok, "{err}");
    assert!(
        out.contains("configuration of mantis-anomaly is valid"),
        "{out}"
    );
    assert!(out.contains("bus: Kafka at kafka:9092"), "{out}");
    assert!(out.contains("database: PostgreSQL"), "{out}");
    assert!(
        !out.contains("secret-pw"),
        "the password is never shown: {out}"
    );

    // The cluster gateway refuses generated secrets: without a signing secret it would not start.
    let (ok, _, err) = check(dir.path(), &["--service", "gateway"], &kafka);
    assert!(!ok);
    assert!(err.contains("jwt_secret"), "{err}");
    let mut with_secret = kafka.to_vec();
    with_secret.push((
        "MANTIS_GATEWAY__AUTH__JWT_SECRET",
        "0123456789abcdef0123456789abcdef",
    ));
    let (ok, out, err) = check(dir.path(), &["--service", "gateway"], &with_secret);
    assert!(ok && out.contains("mantis-gateway is valid"), "{err}");
    // The first admin's password matters only on a database without users: noted.
    assert!(
        out.contains("note: on a database without users the gateway refuses to start")
            && out.contains("admin_password"),
        "{out}"
    );
    with_secret.push(("MANTIS_GATEWAY__AUTH__ADMIN_PASSWORD", "admin"));
    let (ok, out, err) = check(dir.path(), &["--service", "gateway"], &with_secret);
    assert!(ok, "{err}");
    assert!(out.contains("at least 8 characters"), "{out}");
    with_secret.pop();
    with_secret.push((
        "MANTIS_GATEWAY__AUTH__ADMIN_PASSWORD",
        "first-admin-password",
    ));
    let (ok, out, err) = check(dir.path(), &["--service", "gateway"], &with_secret);
    assert!(ok, "{err}");
    assert!(!out.contains("note:"), "{out}");

    // A section of another service is not this one's business, but an unknown key in its own is.
    let (ok, _, err) = check(
        dir.path(),
        &["--service", "ingestion"],
        &[("MANTIS_INGESTION__MAX_BATCHES", "10")],
    );
    assert!(!ok);
    assert!(err.contains("max_batches"), "{err}");
    let (ok, _, err) = check(
        dir.path(),
        &["--service", "ingestion"],
        &[
            ("MANTIS_INFRA__BUS__KIND", "kafka"),
            ("MANTIS_INFRA__BUS__BROKERS", " "),
        ],
    );
    assert!(!ok);
    assert!(err.contains("infra.bus"), "{err}");
    // Kafka client properties as librdkafka takes them, the Redis URL: checked, nothing
    // connected.
    let file = dir.path().join("kafka.toml");
    let with_properties = |toml: &str| {
        std::fs::write(&file, format!("[infra.bus.properties]\n{toml}\n")).expect("written");
        let args = [
            "--config",
            file.to_str().expect("utf-8"),
            "--service",
            "rul",
        ];
        check(dir.path(), &args, &kafka)
    };
    let (ok, _, err) = with_properties("\"security.protocl\" = \"SASL_SSL\"");
    assert!(!ok);
    assert!(err.contains("security.protocl"), "{err}");
    // TLS and SASL/SCRAM are built in (librdkafka with OpenSSL).
    let (ok, _, err) = with_properties(
        "\"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanisms\" = \"SCRAM-SHA-512\"",
    );
    assert!(ok, "{err}");
    let mut redis = kafka.to_vec();
    redis.push(("MANTIS_INFRA__REDIS_URL", "redis//redis:6379"));
    let (ok, _, err) = check(dir.path(), &["--service", "features"], &redis);
    assert!(!ok);
    assert!(err.contains("infra.redis_url"), "{err}");
}
