//! `mantis admin reset-password` on an embedded data directory: a locked-out admin gets a new
//! password (printed, or read from standard input) straight in the database, optionally
//! enabled again; an unknown user or a short password fails with a clear message and a
//! non-zero exit code, changing nothing.

use mantis_domain::{Role, TenantId, User};
use mantis_store::Store;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn reset(data: &Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mantis"))
        .args(["admin", "reset-password"])
        .args(args)
        .env("MANTIS_INFRA__DATA_DIR", data)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mantis runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("written");
    let out = child.wait_with_output().expect("mantis ends");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn stored(data: &Path, username: &str) -> User {
    let store = mantis_store::sqlite::SqliteStore::open(data.join("mantis.db"))
        .await
        .expect("database");
    store.get_user(username).await.expect("read").expect("user")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_out_admin_gets_a_new_password_from_the_host() {
    let data = tempfile::tempdir().expect("tempdir");
    {
        let store = mantis_store::sqlite::SqliteStore::open(data.path().join("mantis.db"))
            .await
            .expect("database");
        let admin = User {
            username: "admin".into(),
            tenant_id: TenantId::DEFAULT,
            display_name: "Administrator".into(),
            role: Role::Admin,
            // Forgotten: nobody knows what this is the hash of.
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g".into(),
            disabled: true,
            created_at: chrono::Utc::now(),
            token_epoch: 0,
        };
        store.upsert_user(&admin).await.expect("admin");
    }

    // A generated one, printed; the account stays disabled unless asked.
    let (ok, stdout, stderr) = reset(data.path(), &["admin"], "");
    assert!(ok, "{stderr}");
    let printed = stdout
        .trim()
        .rsplit(' ')
        .next()
        .expect("the password printed")
        .to_owned();
    assert!(
        stdout.contains("password of `admin` set to: ") && printed.len() >= 10,
        "{stdout}"
    );
    assert!(stderr.contains("is disabled"), "{stderr}");
    let admin = stored(data.path(), "admin").await;
    assert!(mantis_gateway::password_matches(&admin, &printed));
    assert!(admin.disabled);

    // One of the admin's choosing, from standard input, enabled again.
    let (ok, stdout, stderr) = reset(
        data.path(),
        &["admin", "--password-stdin", "--enable"],
        "my own long password\n",
    );
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "password of `admin` set", "not echoed");
    let admin = stored(data.path(), "admin").await;
    assert!(mantis_gateway::password_matches(
        &admin,
        "my own long password"
    ));
    assert!(!mantis_gateway::password_matches(&admin, &printed));
    assert!(!admin.disabled);

    // Refused, nothing changed.
    let (ok, _, stderr) = reset(data.path(), &["nobody"], "");
    assert!(!ok);
    assert!(
        stderr.contains("no user `nobody` (users: admin)"),
        "{stderr}"
    );
    let (ok, _, stderr) = reset(data.path(), &["admin", "--password-stdin"], "short\n");
    assert!(!ok);
    assert!(stderr.contains("10 characters to 256 bytes"), "{stderr}");
    let (ok, _, stderr) = reset(data.path(), &["admin", "--password-stdin"], "");
    assert!(!ok);
    assert!(stderr.contains("no password on standard input"), "{stderr}");
    // Not a database made where there was none (the wrong directory).
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let (ok, _, stderr) = reset(elsewhere.path(), &["admin"], "");
    assert!(!ok);
    assert!(stderr.contains("no database at"), "{stderr}");
    assert!(!elsewhere.path().join("mantis.db").exists());
    assert!(mantis_gateway::password_matches(
        &stored(data.path(), "admin").await,
        "my own long password"
    ));
}
