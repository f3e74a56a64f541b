//! A throw-away PKI made with `openssl`, for tests of TLS peers (Mosquitto here; Redis in
//! `mantis-cache`'s tests, which include this file).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A throw-away PKI: a CA, a server certificate for 127.0.0.1/localhost, a client
/// certificate signed by the CA, and a rogue CA with a client certificate of its own.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
    pub fn client_cert(&self) -> PathBuf {
        self.dir.join("client.pem")
    }
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client.key")
    }
    pub fn rogue_ca(&self) -> PathBuf {
        self.dir.join("rogue-ca.pem")
    }
    pub fn rogue_client_cert(&self) -> PathBuf {
        self.dir.join("rogue-client.pem")
    }
    pub fn rogue_client_key(&self) -> PathBuf {
        self.dir.join("rogue-client.key")
    }

    /// Generates every file in `dir` with `openssl` (EC P-256 keys, one day of validity).
    pub fn generate(dir: &Path) -> Pki {
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .unwrap_or_else(|e| {
                    panic!("cannot run openssl ({e}); install it (Debian package `openssl`)")
                });
            assert!(
                out.status.success(),
                "openssl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let key = |name: &str| {
            run(&[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                name,
            ])
        };
        let write = |name: &str, text: &str| {
            std::fs::File::create(dir.join(name))
                .and_then(|mut f| f.write_all(text.as_bytes()))
                .expect("write extension file");
        };
        write(
            "ca.ext",
            "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n",
        );
        write(
            "server.ext",
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
        );
        write(
            "client.ext",
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
        );
        for ca in ["ca", "rogue-ca"] {
            key(&format!("{ca}.key"));
            run(&[
                "req",
                "-x509",
                "-new",
                "-key",
                &format!("{ca}.key"),
                "-subj",
                &format!("/CN=mantis test {ca}"),
                "-days",
                "1",
                "-extensions",
                "v3_ca",
                "-out",
                &format!("{ca}.pem"),
            ]);
        }
        let sign = |name: &str, cn: &str, ca: &str, ext: &str| {
            key(&format!("{name}.key"));
            run(&[
                "req",
                "-new",
                "-key",
                &format!("{name}.key"),
                "-subj",
                &format!("/CN={cn}"),
                "-out",
                &format!("{name}.csr"),
            ]);
            run(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                &format!("{ca}.pem"),
                "-CAkey",
                &format!("{ca}.key"),
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                ext,
                "-out",
                &format!("{name}.pem"),
            ]);
        };
        sign("server", "localhost", "ca", "server.ext");
        sign("client", "device-1", "ca", "client.ext");
        sign("rogue-client", "device-1", "rogue-ca", "client.ext");
        // Mosquitto started as root drops to its own user: let it read the throw-away files.
        readable_by_all(dir);
        Pki {
            dir: dir.to_owned(),
        }
    }
}

/// Opens `dir` and its files to every user (test material only).
pub fn readable_by_all(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let _ = std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o644));
    }
}
