//! Container images of the OMS CE emulator, built without a registry.
//!
//! No image can be pulled on the machines this project runs on, so the emulator's images are
//! made from scratch: a root filesystem holding the emulator binary (built by cargo as the
//! `oms_emulator` example), the shared libraries it links (found with `ldd`, the dynamic
//! loader included), a static busybox for the shell scripts, `/root/docker_init.sh`, a
//! `supervisorctl` shim and the folders OMS mounts. The tarball is imported through the
//! Docker API (`docker import`), once per OMS version, with `OMS_EMU_VERSION` set in the
//! image's environment and `serve` as its command.
//!
//! Imports are cached by content: a BLAKE3 over every input (binary, libraries, busybox,
//! scripts, version, layout revision) names a second tag, `oms-emu/oms:content-<hash>-<ver>`.
//! When that tag already exists nothing is rebuilt; the version tag is only re-pointed if it
//! drifted. Used by the test harness and by the product's `demo` command.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bollard::Docker;
use futures_util::StreamExt;

/// Repository of every emulator image.
pub const IMAGE_REPO: &str = "oms-emu/oms";
/// Where the emulator binary lives inside the image.
pub const EMULATOR_IN_IMAGE: &str = "/usr/local/bin/oms_emulator";
/// Host path of the static busybox (Debian package `busybox-static`).
pub const HOST_BUSYBOX: &str = "/bin/busybox";

/// Bumped whenever the image layout changes, so cached images are rebuilt.
const LAYOUT_REVISION: &str = "oms-emu-layout-1";

/// `/root/docker_init.sh`: OMS's init script, running the emulator's init mode.
///
/// Whether OMS's own script ends by `exec`ing into another program is not documented, so
/// both are modelled: by default the emulator runs as the script's child (a process named
/// `docker_init.sh` remains while it works); with `OMS_EMU_INIT_EXEC=1`, or a file
/// `.emu-init-exec` in the logs folder, the script `exec`s into it and no such name remains.
pub const DOCKER_INIT_SH: &str = "#!/bin/sh\n\
# OMS CE emulator: stands in for OMS's metadata initialisation script.\n\
# Progress goes to /home/admin/logs/docker_init.log; success ends with the OMS marker line.\n\
logs=\"${OMS_EMU_LOGS_DIR:-/home/admin/logs}\"\n\
if [ \"$OMS_EMU_INIT_EXEC\" = 1 ] || [ \"$OMS_EMU_INIT_EXEC\" = true ] || [ -e \"$logs/.emu-init-exec\" ]; then\n\
  exec /usr/local/bin/oms_emulator init \"$@\"\n\
fi\n\
/usr/local/bin/oms_emulator init \"$@\"\n";

/// `/bin/bash`: the runbook says `bash /root/docker_init.sh`; busybox's sh runs it.
const BASH_SHIM: &str = "#!/bin/sh\nexec /bin/sh \"$@\"\n";

/// `/usr/bin/supervisorctl`, which the 4.2.x runbook checks before init.
const SUPERVISORCTL_SHIM: &str =
    "#!/bin/sh\nexec /usr/local/bin/oms_emulator supervisorctl \"$@\"\n";

/// Busybox applets linked into `/bin`, enough for scripts and for poking around with
/// `docker exec`.
const APPLETS: &[&str] = &[
    "sh", "ash", "cat", "ls", "kill", "killall", "pidof", "ps", "sleep", "echo", "grep", "tail",
    "head", "mkdir", "rm", "mv", "cp", "env", "sed", "date", "test", "[", "true", "false", "touch",
    "wc", "stat", "id", "uname",
];

/// Why an emulator image could not be built or imported.
#[derive(Debug, thiserror::Error)]
pub enum EmuImageError {
    /// The emulator binary was not found or not readable.
    #[error(
        "cannot read the emulator binary {path}: {source}. Build it with `cargo build --example oms_emulator`"
    )]
    Binary {
        /// The path tried.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// busybox is missing on the host.
    #[error(
        "cannot read {path}: {source}. Install the static busybox: `apt-get install busybox-static`"
    )]
    Busybox {
        /// The path tried.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `ldd` failed or reported a library it cannot find.
    #[error("cannot list the shared libraries of {path} with ldd: {detail}")]
    Ldd {
        /// The binary.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// A shared library could not be read.
    #[error("cannot read shared library {path}: {source}")]
    Library {
        /// The library.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The version is not one the emulator knows how to play.
    #[error("OMS version {0:?} is not a plain version like 3.3.1")]
    BadVersion(String),
    /// Writing the root filesystem tarball or taking the build lock failed.
    #[error("cannot build the emulator root filesystem: {0}")]
    Build(#[source] std::io::Error),
    /// The Docker engine refused or failed a request.
    #[error("Docker engine: {what}: {source}. Is dockerd running (`scripts/test` starts it)?")]
    Docker {
        /// The request.
        what: String,
        /// bollard's error.
        #[source]
        source: bollard::errors::Error,
    },
}

fn docker_err(what: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> EmuImageError {
    let what = what.into();
    move |source| EmuImageError::Docker { what, source }
}

/// An emulator image in the engine.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageRef {
    /// The OMS version it plays.
    pub version: String,
    /// The version tag: `oms-emu/oms:feature_<version>_ce`.
    pub reference: String,
    /// The content tag: `oms-emu/oms:content-<hash>-<version>`.
    pub content_reference: String,
    /// The engine's image id (`sha256:...`).
    pub id: String,
    /// True when this call imported it; false when the cached image was reused.
    pub imported: bool,
}

/// The OMS CE versions the emulator plays (`examples/oms_emulator` reads this list), oldest
/// first.
pub const EMULATED_VERSIONS: &[&str] = &[
    "3.2.2", "3.3.0", "3.3.1", "4.0.0", "4.1.0", "4.1.1", "4.2.0", "4.2.1", "4.2.2",
];

/// The version tag of the emulator image for an OMS version.
pub fn image_reference(version: &str) -> String {
    format!("{IMAGE_REPO}:feature_{version}_ce")
}

/// Finds the emulator binary next to the running executable
/// ([`find_emulator_binary_near`] of [`std::env::current_exe`]).
pub fn find_emulator_binary() -> Option<PathBuf> {
    find_emulator_binary_near(&std::env::current_exe().ok()?)
}

/// Finds the emulator binary that belongs with the executable `exe`: where cargo builds it
/// (the executable's folder, `target/<profile>/examples`; its `examples` subfolder,
/// `target/<profile>`; or `../examples`, a test binary in `target/<profile>/deps`), or where
/// the packages install it (`../lib/oms-upgrade/oms_emulator`: `/usr/bin/oms-upgrade` finds
/// `/usr/lib/oms-upgrade/oms_emulator`; the tarball has the same layout).
pub fn find_emulator_binary_near(exe: &Path) -> Option<PathBuf> {
    let dir = exe.parent()?;
    let up = dir.parent()?;
    let candidates = [
        dir.join("oms_emulator"),
        dir.join("examples").join("oms_emulator"),
        up.join("examples").join("oms_emulator"),
        up.join("lib").join("oms-upgrade").join("oms_emulator"),
    ];
    candidates.into_iter().find(|p| p.is_file())
}

/// The inputs of an image, read from disk, and their content hash.
struct Inputs {
    emulator: Vec<u8>,
    busybox: Vec<u8>,
    /// Library path as the loader asks for it -> file content.
    libs: BTreeMap<String, Vec<u8>>,
    hash: blake3::Hash,
}

fn read_inputs(emulator_bin: &Path) -> Result<Inputs, EmuImageError> {
    let emulator = std::fs::read(emulator_bin).map_err(|source| EmuImageError::Binary {
        path: emulator_bin.to_path_buf(),
        source,
    })?;
    let busybox = std::fs::read(HOST_BUSYBOX).map_err(|source| EmuImageError::Busybox {
        path: HOST_BUSYBOX.into(),
        source,
    })?;
    let mut libs = BTreeMap::new();
    for bin in [emulator_bin, Path::new(HOST_BUSYBOX)] {
        for lib in shared_libraries(bin)? {
            if libs.contains_key(&lib) {
                continue;
            }
            let bytes = std::fs::read(&lib).map_err(|source| EmuImageError::Library {
                path: lib.clone().into(),
                source,
            })?;
            libs.insert(lib, bytes);
        }
    }
    let mut h = blake3::Hasher::new();
    let mut part = |name: &str, bytes: &[u8]| {
        h.update(&(name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    part("layout", LAYOUT_REVISION.as_bytes());
    part(EMULATOR_IN_IMAGE, &emulator);
    part(HOST_BUSYBOX, &busybox);
    part("docker_init.sh", DOCKER_INIT_SH.as_bytes());
    part("bash", BASH_SHIM.as_bytes());
    part("supervisorctl", SUPERVISORCTL_SHIM.as_bytes());
    for (path, bytes) in &libs {
        part(path, bytes);
    }
    let hash = h.finalize();
    Ok(Inputs {
        emulator,
        busybox,
        libs,
        hash,
    })
}

/// The absolute paths of the shared libraries (and loader) `ldd` lists for a binary; empty
/// for a static one.
fn shared_libraries(bin: &Path) -> Result<Vec<String>, EmuImageError> {
    let ldd_err = |detail: String| EmuImageError::Ldd {
        path: bin.to_path_buf(),
        detail,
    };
    let out = std::process::Command::new("ldd")
        .arg(bin)
        .output()
        .map_err(|e| ldd_err(format!("cannot run ldd: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if stdout.contains("not a dynamic executable")
            || stderr.contains("not a dynamic executable")
        {
            return Ok(Vec::new());
        }
        return Err(ldd_err(format!("{} {}", stdout.trim(), stderr.trim())));
    }
    let mut libs = Vec::new();
    for line in stdout.lines() {
        let line = line.trim();
        if line.contains("statically linked") {
            continue;
        }
        let target = match line.split_once("=>") {
            Some((_, rhs)) => rhs.trim(),
            None => line,
        };
        if target.starts_with("not found") {
            return Err(ldd_err(format!("library not found: {line}")));
        }
        let path = target.split(" (").next().unwrap_or("").trim();
        if path.starts_with('/') {
            libs.push(path.to_string());
        }
    }
    Ok(libs)
}

/// The emulator binary without debug sections (`strip --strip-debug`), or unchanged when
/// `strip` is unavailable: only the image size depends on it.
fn stripped(emulator: &[u8]) -> Vec<u8> {
    let dir = std::env::temp_dir();
    let tag = format!(
        "oms-emu-strip-{}-{}",
        std::process::id(),
        blake3::hash(emulator).to_hex()
    );
    let (src, dst) = (
        dir.join(format!("{tag}.in")),
        dir.join(format!("{tag}.out")),
    );
    let result = std::fs::write(&src, emulator)
        .ok()
        .and_then(|_| {
            std::process::Command::new("strip")
                .arg("--strip-debug")
                .arg("-o")
                .arg(&dst)
                .arg(&src)
                .output()
                .ok()
        })
        .filter(|o| o.status.success())
        .and_then(|_| std::fs::read(&dst).ok());
    let _ = std::fs::remove_file(&src);
    let _ = std::fs::remove_file(&dst);
    result.unwrap_or_else(|| emulator.to_vec())
}

/// Builds the root filesystem tarball: deterministic (fixed times and owners), so the same
/// inputs give the same bytes.
fn build_rootfs(inputs: &Inputs) -> Result<Vec<u8>, EmuImageError> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dirs: std::collections::BTreeSet<String> = [
        "bin",
        "usr",
        "usr/bin",
        "usr/local",
        "usr/local/bin",
        "etc",
        "root",
        "home",
        "home/admin",
        "home/admin/conf",
        "home/admin/logs",
        "home/ds",
        "home/ds/store",
        "home/ds/run",
        "tmp",
        "proc",
        "sys",
        "dev",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    for lib in inputs.libs.keys() {
        let mut p = Path::new(lib.trim_start_matches('/')).parent();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(d.to_string_lossy().into_owned());
            p = d.parent();
        }
    }
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h
    };
    for d in &dirs {
        let mode = if d == "tmp" { 0o1777 } else { 0o755 };
        let mut h = header(tar::EntryType::Directory, mode, 0);
        b.append_data(&mut h, format!("{d}/"), std::io::empty())
            .map_err(EmuImageError::Build)?;
    }
    let file = |b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]| {
        let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
        b.append_data(&mut h, path.trim_start_matches('/'), data)
            .map_err(EmuImageError::Build)
    };
    file(
        &mut b,
        EMULATOR_IN_IMAGE,
        0o755,
        &stripped(&inputs.emulator),
    )?;
    file(&mut b, "/bin/busybox", 0o755, &inputs.busybox)?;
    for (path, bytes) in &inputs.libs {
        file(&mut b, path, 0o755, bytes)?;
    }
    file(
        &mut b,
        "/root/docker_init.sh",
        0o755,
        DOCKER_INIT_SH.as_bytes(),
    )?;
    file(&mut b, "/bin/bash", 0o755, BASH_SHIM.as_bytes())?;
    file(
        &mut b,
        "/usr/bin/supervisorctl",
        0o755,
        SUPERVISORCTL_SHIM.as_bytes(),
    )?;
    file(
        &mut b,
        "/etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\n",
    )?;
    file(&mut b, "/etc/group", 0o644, b"root:x:0:\n")?;
    file(&mut b, "/etc/nsswitch.conf", 0o644, b"hosts: files dns\n")?;
    for applet in APPLETS {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox")
            .map_err(EmuImageError::Build)?;
    }
    b.into_inner().map_err(EmuImageError::Build)
}

/// The Dockerfile-style changes applied at import for one version.
fn changes(version: &str, hash: &str) -> Vec<String> {
    vec![
        format!("ENV OMS_EMU_VERSION={version}"),
        "ENV PATH=/usr/local/bin:/usr/bin:/bin".to_string(),
        "WORKDIR /home/admin".to_string(),
        format!("LABEL oms-emu.version={version} oms-emu.content={hash}"),
        format!("CMD [\"{EMULATOR_IN_IMAGE}\", \"serve\"]"),
    ]
}

fn check_version(v: &str) -> Result<(), EmuImageError> {
    let ok = !v.is_empty()
        && v.split('.').count() >= 2
        && v.split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(EmuImageError::BadVersion(v.to_string()))
    }
}

/// A lock across processes, so concurrent test binaries do not import the same image twice.
fn lock_file() -> Result<std::fs::File, EmuImageError> {
    use fs2::FileExt;
    let path = std::env::temp_dir().join("oms-emu-image.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(EmuImageError::Build)?;
    f.lock_exclusive().map_err(EmuImageError::Build)?;
    Ok(f)
}

/// Makes sure `oms-emu/oms:feature_<v>_ce` exists for each version, built from
/// `emulator_bin`; imports only what the cache does not already hold.
pub async fn ensure_images(
    docker: &Docker,
    emulator_bin: &Path,
    versions: &[&str],
) -> Result<Vec<ImageRef>, EmuImageError> {
    for v in versions {
        check_version(v)?;
    }
    let bin = emulator_bin.to_path_buf();
    let (lock, inputs) = tokio::task::spawn_blocking(move || -> Result<_, EmuImageError> {
        let lock = lock_file()?;
        Ok((lock, read_inputs(&bin)?))
    })
    .await
    .map_err(|e| EmuImageError::Build(std::io::Error::other(e)))??;
    let mut rootfs: Option<bytes::Bytes> = None;
    let mut out = Vec::new();
    for version in versions {
        let mut h = blake3::Hasher::new();
        h.update(inputs.hash.as_bytes());
        h.update(version.as_bytes());
        let hash = h.finalize().to_hex()[..16].to_string();
        let content_tag = format!("content-{hash}-{version}");
        let content_reference = format!("{IMAGE_REPO}:{content_tag}");
        let reference = image_reference(version);
        let (id, imported) = match docker.inspect_image(&content_reference).await {
            Ok(img) => (img.id.unwrap_or_default(), false),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                let tar = match &rootfs {
                    Some(t) => t.clone(),
                    None => {
                        let t = bytes::Bytes::from(build_rootfs(&inputs)?);
                        rootfs = Some(t.clone());
                        t
                    }
                };
                import(docker, tar, &content_tag, version, &hash).await?;
                let img = docker
                    .inspect_image(&content_reference)
                    .await
                    .map_err(docker_err(format!("inspect {content_reference}")))?;
                (img.id.unwrap_or_default(), true)
            }
            Err(e) => return Err(docker_err(format!("inspect {content_reference}"))(e)),
        };
        let current = docker
            .inspect_image(&reference)
            .await
            .ok()
            .and_then(|i| i.id);
        if current.as_deref() != Some(id.as_str()) {
            let opts = bollard::query_parameters::TagImageOptionsBuilder::default()
                .repo(IMAGE_REPO)
                .tag(&format!("feature_{version}_ce"))
                .build();
            docker
                .tag_image(&content_reference, Some(opts))
                .await
                .map_err(docker_err(format!(
                    "tag {content_reference} as {reference}"
                )))?;
        }
        if imported {
            prune_stale(docker, version, &content_tag).await;
        }
        out.push(ImageRef {
            version: version.to_string(),
            reference,
            content_reference,
            id,
            imported,
        });
    }
    drop(lock);
    Ok(out)
}

/// Removes content tags of older builds of this version, so images do not pile up while
/// the emulator changes. An image still used by a container is left alone (the engine
/// refuses, and that is fine).
async fn prune_stale(docker: &Docker, version: &str, keep_tag: &str) {
    let filters =
        std::collections::HashMap::from([("reference".to_string(), vec![IMAGE_REPO.to_string()])]);
    let opts = bollard::query_parameters::ListImagesOptionsBuilder::default()
        .filters(&filters)
        .build();
    let Ok(list) = docker.list_images(Some(opts)).await else {
        return;
    };
    let suffix = format!("-{version}");
    for tag in list.into_iter().flat_map(|i| i.repo_tags) {
        let Some(t) = tag.strip_prefix(&format!("{IMAGE_REPO}:")) else {
            continue;
        };
        if t.starts_with("content-") && t.ends_with(&suffix) && t != keep_tag {
            let _ = docker
                .remove_image(
                    &tag,
                    None::<bollard::query_parameters::RemoveImageOptions>,
                    None,
                )
                .await;
        }
    }
}

/// `docker import` of the tarball with the version's changes.
async fn import(
    docker: &Docker,
    tar: bytes::Bytes,
    content_tag: &str,
    version: &str,
    hash: &str,
) -> Result<(), EmuImageError> {
    let opts = bollard::query_parameters::CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo(IMAGE_REPO)
        .tag(content_tag)
        .message(&format!("OMS CE emulator {version}"))
        .changes(changes(version, hash))
        .build();
    let mut stream = docker.create_image(Some(opts), Some(bollard::body_full(tar)), None);
    while let Some(item) = stream.next().await {
        item.map_err(docker_err(format!("import {IMAGE_REPO}:{content_tag}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_emulator_is_found_in_the_installed_layout() {
        // What the .deb, the .rpm and the tarball install: <prefix>/bin/oms-upgrade and
        // <prefix>/lib/oms-upgrade/oms_emulator.
        let root = std::env::temp_dir().join(format!("oms-emu-find-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("lib").join("oms-upgrade")).unwrap();
        let exe = root.join("bin").join("oms-upgrade");
        std::fs::write(&exe, b"").unwrap();
        assert_eq!(
            find_emulator_binary_near(&exe),
            None,
            "nothing installed yet"
        );
        let emu = root.join("lib").join("oms-upgrade").join("oms_emulator");
        std::fs::write(&emu, b"").unwrap();
        assert_eq!(find_emulator_binary_near(&exe), Some(emu.clone()));
        // cargo's layouts still win: an emulator next to the executable is taken first.
        let beside = root.join("bin").join("oms_emulator");
        std::fs::write(&beside, b"").unwrap();
        assert_eq!(find_emulator_binary_near(&exe), Some(beside));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn ldd_lists_libc_and_loader_of_a_dynamic_binary() {
        let libs = shared_libraries(Path::new("/bin/ls")).unwrap();
        assert!(libs.iter().any(|l| l.contains("libc.so")), "{libs:?}");
        assert!(libs.iter().any(|l| l.contains("ld-linux")), "{libs:?}");
        assert!(
            shared_libraries(Path::new(HOST_BUSYBOX))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn rootfs_is_deterministic_and_complete() {
        // Any dynamic executable stands in for the emulator here.
        let exe = Path::new("/bin/ls");
        let inputs = read_inputs(exe).unwrap();
        let again = read_inputs(exe).unwrap();
        assert_eq!(inputs.hash, again.hash);
        let tar = build_rootfs(&inputs).unwrap();
        assert_eq!(tar, build_rootfs(&again).unwrap());
        let mut names = Vec::new();
        let mut ar = tar::Archive::new(&tar[..]);
        for e in ar.entries().unwrap() {
            names.push(e.unwrap().path().unwrap().to_string_lossy().into_owned());
        }
        for want in [
            "usr/local/bin/oms_emulator",
            "bin/busybox",
            "bin/sh",
            "bin/bash",
            "root/docker_init.sh",
            "home/admin/conf/",
            "home/admin/logs/",
            "home/ds/store/",
            "home/ds/run/",
            "tmp/",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
        assert!(names.iter().any(|n| n.contains("ld-linux")), "{names:?}");
    }

    #[test]
    fn versions_are_checked() {
        assert!(check_version("3.3.1").is_ok());
        assert!(check_version("4.2.2").is_ok());
        assert!(check_version("3.3.1; rm -rf").is_err());
        assert!(check_version("").is_err());
        assert_eq!(image_reference("3.3.0"), "oms-emu/oms:feature_3.3.0_ce");
    }
}
