//! Reaching a node's Docker engine over SSH, for real: each test starts its own `sshd` on
//! 127.0.0.1 on a free port, with a config, host key and authorized key in a temporary
//! folder (never /etc/ssh, never port 22), and connects as `ssh://root@127.0.0.1:PORT`.
//!
//! - with the host key pinned in a test known_hosts, the engine behind the tunnel lists and
//!   inspects a container this test created through the local socket;
//! - an empty known_hosts, or one pinning a different key, is refused with an error naming
//!   the host and the known_hosts file, before anything reaches the engine;
//! - a key the server does not accept fails fast (BatchMode: no prompt, no hang).
//!
//! `scripts/test` installs openssh-server (`ensure_sshd` in scripts/services.sh). If sshd
//! is missing or does not start, the test fails with the reason: nothing is skipped.

mod support;

use oms_upgrade::adapters::endpoint::TransportError;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oms_upgrade::adapters::docker::{BollardDocker, Docker, DockerError};
use oms_upgrade::adapters::endpoint::{DockerEndpoint, SshSettings};

const SSHD: &str = "/usr/sbin/sshd";
const PROBE_IMAGE: &str = "oms-upgrade-test/ssh-probe:1";
const LABEL: &str = "oms-upgrade-test.ssh";

/// A test-only sshd; killed (and its folder removed) on drop.
struct TestSshd {
    child: std::process::Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Drop for TestSshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "oms-upgrade-test",
            "-f",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run ssh-keygen (openssh-client)");
    assert!(
        out.status.success(),
        "ssh-keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TestSshd {
    fn start() -> TestSshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: run `scripts/test` (ensure_sshd installs Debian's openssh-server)"
        );
        // sshd refuses to start without its privilege-separation folder; it is not config.
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd for sshd");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("id"));
        std::fs::copy(d.join("id.pub"), d.join("authorized_keys")).unwrap();
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\n\
             PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             UsePAM no\nStrictModes no\nAllowTcpForwarding local\nAllowStreamLocalForwarding local\n\
             X11Forwarding no\nPermitTTY no\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .arg("-E")
            .arg(d.join("sshd.log"))
            .stdin(Stdio::null())
            .spawn()
            .expect("run sshd");
        let mut sshd = TestSshd { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return sshd;
            }
            if let Some(status) = sshd.child.try_wait().unwrap() {
                let log =
                    std::fs::read_to_string(sshd.dir.path().join("sshd.log")).unwrap_or_default();
                panic!("the test sshd exited with {status} before listening: {log}");
            }
            assert!(
                Instant::now() < deadline,
                "the test sshd did not listen on 127.0.0.1:{port} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn endpoint(&self) -> DockerEndpoint {
        DockerEndpoint::parse(&format!("ssh://root@127.0.0.1:{}", self.port), None).unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A known_hosts file pinning `pub_key_file` for this server's address.
    fn known_hosts(&self, name: &str, pub_key_file: Option<&Path>) -> PathBuf {
        let line = match pub_key_file {
            Some(p) => {
                let key = std::fs::read_to_string(p).unwrap();
                let mut parts = key.split_whitespace();
                let (kind, b64) = (parts.next().unwrap(), parts.next().unwrap());
                format!("[127.0.0.1]:{} {kind} {b64}\n", self.port)
            }
            None => String::new(),
        };
        let path = self.path(name);
        std::fs::write(&path, line).unwrap();
        path
    }

    fn settings(&self, known_hosts: PathBuf) -> SshSettings {
        SshSettings {
            known_hosts: Some(known_hosts),
            identity: Some(self.path("id")),
            program: None,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("sshd.log")).unwrap_or_default()
    }
}

/// Imports a one-file image (never run: the container is only created) if it is missing.
async fn probe_image(client: &bollard::Docker) {
    if client.inspect_image(PROBE_IMAGE).await.is_ok() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("probe"), b"not a program\n").unwrap();
    support::import_folder_as_image(client, root.path(), PROBE_IMAGE).await;
}

/// Creates (never starts) a labelled container through the local socket; removed on drop.
struct Probe {
    name: String,
}

impl Probe {
    async fn create() -> Probe {
        use bollard::models::ContainerCreateBody;
        use bollard::query_parameters::CreateContainerOptionsBuilder;
        let client = support::docker().await;
        probe_image(&client).await;
        let name = format!("oms_ssh_probe_{}", std::process::id());
        let _ = client
            .remove_container(
                &name,
                Some(bollard::query_parameters::RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await;
        let body = ContainerCreateBody {
            image: Some(PROBE_IMAGE.into()),
            cmd: Some(vec!["/probe".into()]),
            labels: Some([(LABEL.to_string(), name.clone())].into()),
            ..Default::default()
        };
        client
            .create_container(
                Some(CreateContainerOptionsBuilder::default().name(&name).build()),
                body,
            )
            .await
            .expect("create the probe container through the local socket");
        Probe { name }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[tokio::test]
async fn pinned_host_key_reaches_the_engine_and_sees_its_containers() {
    let sshd = TestSshd::start();
    let probe = Probe::create().await;
    let kh = sshd.known_hosts("known_hosts", Some(&sshd.path("host_key.pub")));
    let started = Instant::now();
    let docker = BollardDocker::connect_to_with(&sshd.endpoint(), &sshd.settings(kh))
        .await
        .unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", sshd.log()));
    assert!(
        docker.tunnel_socket().is_some(),
        "an ssh endpoint goes through a tunnel"
    );
    let info = docker
        .inspect(&probe.name)
        .await
        .unwrap()
        .expect("the probe container, seen through the tunnel");
    assert_eq!(info.image, PROBE_IMAGE);
    let listed = docker
        .find_by_label(LABEL, Some(&probe.name))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    // What `init --inventory` reads on a node it cannot reach by its file system (issue
    // 15): a file and a path inside the container, and the engine's id, through the tunnel.
    let probe_file = docker
        .read_container_file(&probe.name, "/probe", 64)
        .await
        .unwrap();
    assert_eq!(probe_file.as_deref(), Some(&b"not a program\n"[..]));
    assert!(
        docker
            .path_in_container(&probe.name, "/probe")
            .await
            .unwrap()
    );
    assert!(
        !docker
            .path_in_container(&probe.name, "/nothing")
            .await
            .unwrap()
    );
    let local = BollardDocker::connect().await.unwrap();
    assert_eq!(
        docker.engine_id().await.unwrap(),
        local.engine_id().await.unwrap(),
        "one engine, reached two ways"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );

    // The tunnel's socket lives as long as the client: gone once the last clone is dropped.
    let socket = docker.tunnel_socket().unwrap().to_path_buf();
    let clone = docker.clone();
    drop(docker);
    assert!(socket.exists(), "a clone keeps the tunnel");
    drop(clone);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !socket.exists(),
        "the tunnel's folder is removed with the last client"
    );
}

#[tokio::test]
async fn unknown_host_key_is_refused_naming_host_and_file() {
    let sshd = TestSshd::start();
    let empty = sshd.known_hosts("empty_known_hosts", None);
    let e = BollardDocker::connect_to_with(&sshd.endpoint(), &sshd.settings(empty.clone()))
        .await
        .expect_err("an unknown host key must be refused");
    let msg = e.to_string();
    assert!(
        matches!(
            e,
            DockerError::Transport(TransportError::HostKeyRefused { .. })
        ),
        "{msg}"
    );
    assert!(msg.contains(&format!("[127.0.0.1]:{}", sshd.port)), "{msg}");
    assert!(msg.contains(&empty.display().to_string()), "{msg}");
    // Refused, and not learned: the pinned file was not rewritten.
    assert_eq!(std::fs::read_to_string(&empty).unwrap(), "");
}

#[tokio::test]
async fn a_different_pinned_key_is_refused() {
    let sshd = TestSshd::start();
    keygen(&sshd.path("other_host_key"));
    let other = sshd.known_hosts("other_known_hosts", Some(&sshd.path("other_host_key.pub")));
    let before = std::fs::read_to_string(&other).unwrap();
    let e = BollardDocker::connect_to_with(&sshd.endpoint(), &sshd.settings(other.clone()))
        .await
        .expect_err("a changed host key must be refused");
    let msg = e.to_string();
    assert!(
        matches!(
            e,
            DockerError::Transport(TransportError::HostKeyRefused { .. })
        ),
        "{msg}"
    );
    assert!(msg.contains(&other.display().to_string()), "{msg}");
    assert_eq!(std::fs::read_to_string(&other).unwrap(), before);
}

#[tokio::test]
async fn a_refused_login_fails_fast_without_a_prompt() {
    let sshd = TestSshd::start();
    let kh = sshd.known_hosts("known_hosts", Some(&sshd.path("host_key.pub")));
    keygen(&sshd.path("stranger"));
    let settings = SshSettings {
        identity: Some(sshd.path("stranger")),
        ..sshd.settings(kh)
    };
    let started = Instant::now();
    let e = BollardDocker::connect_to_with(&sshd.endpoint(), &settings)
        .await
        .expect_err("a key the server does not know must not log in");
    let msg = e.to_string();
    assert!(
        matches!(e, DockerError::Transport(TransportError::SshFailed { .. })),
        "{msg}"
    );
    assert!(msg.contains("Permission denied"), "{msg}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}
