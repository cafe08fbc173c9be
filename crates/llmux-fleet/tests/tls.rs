//! `rediss://` against a throwaway TLS Redis this test starts itself (skipped when
//! `redis-server` or `openssl` is not installed).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use llmux_fleet::{Fleet, FleetError, FleetEvent, FleetOptions};

fn have(tool: &str) -> bool {
    Command::new(tool).arg("version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

fn run(dir: &Path, args: &[&str]) {
    let status = Command::new(args[0])
        .args(&args[1..])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{args:?}");
}

/// A CA and a certificate for localhost/127.0.0.1 signed by it.
fn make_certificates(dir: &Path) {
    run(
        dir,
        &[
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "1",
            "-subj",
            "/CN=llmux-test-ca",
        ],
    );
    run(
        dir,
        &[
            "openssl",
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(dir.join("ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    run(
        dir,
        &[
            "openssl",
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "1",
            "-extfile",
            "ext",
        ],
    );
}

struct Server {
    child: Child,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_and_events_over_tls() {
    if !have("openssl") || Command::new("redis-server").arg("--version").output().is_err() {
        eprintln!("skipping: needs redis-server and openssl");
        return;
    }
    let mut id = [0u8; 8];
    getrandom::fill(&mut id).unwrap();
    let dir = std::env::temp_dir().join(format!("llmux-fleet-tls-{:016x}", u64::from_le_bytes(id)));
    std::fs::create_dir_all(&dir).unwrap();
    make_certificates(&dir);
    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--port", "0", "--bind", "127.0.0.1", "--tls-port", &port.to_string()])
        .args(["--tls-cert-file", "server.crt", "--tls-key-file", "server.key", "--tls-ca-cert-file", "ca.crt"])
        .args(["--tls-auth-clients", "no", "--save", "", "--appendonly", "no"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server { child, dir: dir.clone() };
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(5), "TLS redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    let ca = std::fs::read(dir.join("ca.crt")).unwrap();
    let url = format!("rediss://localhost:{port}");
    let options = FleetOptions {
        tls_root_ca_pem: Some(ca),
        health_interval: Duration::from_millis(100),
        ..FleetOptions::default()
    };
    let a = Fleet::new(&url, options.clone()).unwrap();
    let b = Fleet::new(&url, options).unwrap();
    let start = Instant::now();
    while !(a.is_up() && a.is_subscribed() && b.is_subscribed()) {
        assert!(start.elapsed() < Duration::from_secs(5), "no TLS connection");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(a.claim("rpm:x", 10, 8, 60_000).await.unwrap(), 8);
    assert_eq!(b.claim("rpm:x", 10, 8, 60_000).await.unwrap(), 2);
    let mut rb = b.subscribe();
    let event = FleetEvent::KeyChanged { key_id: "tls".into() };
    a.publish(&event).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(3), rb.recv()).await.unwrap().unwrap();
    assert_eq!(got.event, event);
    assert_eq!(got.from, a.instance_id());

    // Without the CA the server's certificate is not trusted: no connection.
    let untrusted = Fleet::new(&url, FleetOptions::default()).unwrap();
    let err = untrusted.claim("rpm:x", 10, 1, 60_000).await.unwrap_err();
    assert!(matches!(err, FleetError::Unavailable(_)), "{err:?}");
    assert!(!untrusted.is_up());
    drop(server);
}
