//! Cache paths, private atomic writes and the lock guard.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_types::os_shim_internal::Env;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::entries::{CredentialsEntry, FORMAT_VERSION, TokenEntry};

/// Maximum wait for another process's lock. A healthy holder finishes within seconds, and
/// failing after this beats hanging the AWS tool that runs us.
/// NOTE: a holder whose AWS calls all time out and are retried can hold the lock longer, so
/// its waiters exit with code 5 while it may still succeed.
const LOCK_TIMEOUT: Duration = Duration::from_secs(120);
/// Maximum pause between two attempts to take a contended lock.
const MAX_LOCK_POLL: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("no cache directory: set `AWS_TIP_CACHE_DIR` or `HOME`")]
    NoCacheDirectory,

    #[error("`AWS_TIP_CACHE_DIR` must be an absolute path, not `{}`", .0.display())]
    RelativeCacheDirectory(PathBuf),

    #[error("the cache directory `{}` {problem}; {fix}", path.display())]
    UnsafeDirectory {
        path: PathBuf,
        problem: &'static str,
        fix: &'static str,
    },

    #[error("failed to {what} `{}`", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("timed out after {} s waiting for the lock on `{}`; another aws-tip process holds it, so try again, and if this repeats look for a stuck `aws-tip` process", timeout.as_secs(), path.display())]
    LockTimeout { path: PathBuf, timeout: Duration },

    #[error("failed to encode the cache entry for `{}`", path.display())]
    Encode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CacheError {
    let path = path.to_owned();
    move |source| CacheError::Io { what, path, source }
}

/// The cache directory.
#[derive(Debug, Clone)]
pub struct CacheDir {
    path: PathBuf,
}

impl CacheDir {
    /// Uses `AWS_TIP_CACHE_DIR` when set, else `aws-tip` in the user's cache directory.
    pub fn from_env(env: &Env) -> Result<Self, CacheError> {
        let path = match env.get("AWS_TIP_CACHE_DIR") {
            Ok(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => dirs::cache_dir().ok_or(CacheError::NoCacheDirectory)?.join("aws-tip"),
        };
        // A relative directory would give each working directory its own sign-in.
        if path.is_relative() {
            return Err(CacheError::RelativeCacheDirectory(path));
        }
        Ok(Self { path })
    }

    /// Creates the directory, or checks that an existing one is private, before any work
    /// whose result would be lost if it could not be stored.
    pub fn prepare(&self) -> Result<(), CacheError> {
        ensure_private_dir(&self.path)
    }

    #[cfg(test)]
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Returns the cache of the application identified by `issuer` and `client_id`.
    pub fn app(&self, issuer: &str, client_id: &str) -> AppCache {
        AppCache {
            dir: self.path.clone(),
            key: short_hash(&[issuer, client_id]),
        }
    }
}

/// Hex SHA-256 of the parts, joined by newlines, cut to 24 characters (96 bits).
pub fn short_hash(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update(b"\n");
    }
    let digest = hasher.finalize();
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// The cache files of one OpenID Connect application.
#[derive(Debug, Clone)]
pub struct AppCache {
    dir: PathBuf,
    key: String,
}

impl AppCache {
    pub fn tokens_path(&self) -> PathBuf {
        self.dir.join(format!("{}.tokens.json", self.key))
    }

    fn lock_path(&self) -> PathBuf {
        self.dir.join(format!("{}.lock", self.key))
    }

    fn credentials_prefix(&self) -> String {
        format!("{}.aws-", self.key)
    }

    pub fn credentials_path(&self, settings_key: &str) -> PathBuf {
        self.dir
            .join(format!("{}{settings_key}.json", self.credentials_prefix()))
    }

    /// Reads stored AWS credentials without taking the lock.
    ///
    /// Safe because every write replaces the file with a rename. An unreadable or
    /// foreign-version file counts as absent: it is logged and replaced by the next write.
    pub fn read_credentials(&self, settings_key: &str) -> Option<CredentialsEntry> {
        let path = self.credentials_path(settings_key);
        read_entry::<CredentialsEntry>(&path)
            .inspect_err(|error| tracing::warn!(path = %path.display(), error = %crate::error::chain(error), "ignoring unreadable credentials cache"))
            .ok()
            .flatten()
    }

    /// Returns true when a sign-in has been stored, without creating anything.
    pub fn has_tokens(&self) -> bool {
        self.tokens_path().exists()
    }

    /// Takes the exclusive lock, waiting up to two minutes for another process to release it.
    pub fn lock(&self) -> Result<CacheLock<'_>, CacheError> {
        self.lock_within(LOCK_TIMEOUT)
    }

    fn lock_within(&self, timeout: Duration) -> Result<CacheLock<'_>, CacheError> {
        ensure_private_dir(&self.dir)?;
        let path = self.lock_path();
        let mut options = OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&path).map_err(io_error("open", &path))?;
        match file.try_lock() {
            Ok(()) => tracing::debug!(path = %path.display(), contended = false, "cache lock taken"),
            Err(fs::TryLockError::WouldBlock) => {
                tracing::debug!(path = %path.display(), contended = true, "waiting for the cache lock");
                wait_for_lock(&file, &path, timeout)?;
                tracing::debug!(path = %path.display(), "cache lock taken after waiting");
            }
            Err(fs::TryLockError::Error(source)) => {
                return Err(CacheError::Io {
                    what: "lock",
                    path,
                    source,
                });
            }
        }
        Ok(CacheLock {
            cache: self,
            _file: file,
        })
    }
}

/// Proof that the exclusive cache lock is held; the only way to write the cache.
///
/// The lock is released when the guard is dropped (closing the file releases a `flock`).
#[derive(Debug)]
pub struct CacheLock<'a> {
    cache: &'a AppCache,
    _file: File,
}

impl CacheLock<'_> {
    /// Reads the stored tokens. `Err` means the file exists but cannot be used.
    pub fn read_tokens(&self) -> Result<Option<TokenEntry>, CacheError> {
        read_entry::<TokenEntry>(&self.cache.tokens_path())
    }

    pub fn write_tokens(&self, entry: &TokenEntry) -> Result<(), CacheError> {
        write_atomic(&self.cache.tokens_path(), entry)
    }

    /// Reads stored AWS credentials again under the lock; a problem with the file was already
    /// logged by the read before the lock.
    pub fn read_credentials(&self, settings_key: &str) -> Option<CredentialsEntry> {
        read_entry::<CredentialsEntry>(&self.cache.credentials_path(settings_key))
            .ok()
            .flatten()
    }

    pub fn write_credentials(&self, settings_key: &str, entry: &CredentialsEntry) -> Result<(), CacheError> {
        write_atomic(&self.cache.credentials_path(settings_key), entry)
    }

    /// Removes every credentials file of this application, after a sign-in as a possibly
    /// different user.
    pub fn remove_all_credentials(&self) -> Result<usize, CacheError> {
        let prefix = self.cache.credentials_prefix();
        let dir = &self.cache.dir;
        let mut removed = 0;
        for entry in fs::read_dir(dir).map_err(io_error("list", dir))? {
            let entry = entry.map_err(io_error("list", dir))?;
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let path = entry.path();
                fs::remove_file(&path).map_err(io_error("remove", &path))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Polls `file`'s lock until it is free or `timeout` passes. `File::lock` would block with no
/// limit, so a stuck holder would hang every caller.
fn wait_for_lock(file: &File, path: &Path, timeout: Duration) -> Result<(), CacheError> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        std::thread::sleep(pause);
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => pause = (pause * 2).min(MAX_LOCK_POLL),
            Err(fs::TryLockError::WouldBlock) => {
                return Err(CacheError::LockTimeout {
                    path: path.to_owned(),
                    timeout,
                });
            }
            Err(fs::TryLockError::Error(source)) => return Err(io_error("lock", path)(source)),
        }
    }
}

/// Reads and decodes a cache file; `Ok(None)` when it does not exist or has another version.
///
/// The version is read first, so a file of another version with other fields counts as
/// absent instead of as damaged.
fn read_entry<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, CacheError> {
    #[derive(Deserialize)]
    struct Version {
        version: u32,
    }

    let bytes = match fs::read(path) {
        Ok(bytes) => Zeroizing::new(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("read", path)(e)),
    };
    let decode_error = |error: serde_json::Error| CacheError::Io {
        what: "decode",
        path: path.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidData, describe_json_error(&error)),
    };
    let version = serde_json::from_slice::<Version>(&bytes).map_err(decode_error)?.version;
    if version != FORMAT_VERSION {
        tracing::warn!(path = %path.display(), version, "ignoring cache file of another format version");
        return Ok(None);
    }
    serde_json::from_slice(&bytes).map(Some).map_err(decode_error)
}

/// Describes a JSON error by its category and position only: serde_json's own message may
/// quote part of the input, which can be a token.
fn describe_json_error(error: &serde_json::Error) -> String {
    let problem = match error.classify() {
        serde_json::error::Category::Eof => "the file is empty or truncated",
        serde_json::error::Category::Syntax => "the file is not valid JSON",
        serde_json::error::Category::Data => "a field is missing or has the wrong type",
        serde_json::error::Category::Io => "the file could not be read",
    };
    format!("{problem} (line {}, column {})", error.line(), error.column())
}

/// Creates `dir` with mode 0700, or checks that an existing `dir` is a directory that only
/// this user can use. An existing directory is never changed, because it may be shared (a
/// cache directory set to `/tmp`, say).
fn ensure_private_dir(dir: &Path) -> Result<(), CacheError> {
    let unsafe_directory = |problem, fix| CacheError::UnsafeDirectory {
        path: dir.to_owned(),
        problem,
        fix,
    };
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    match builder.create(dir) {
        Ok(()) => {}
        Err(_) if dir.exists() && !dir.is_dir() => {
            return Err(unsafe_directory(
                "is not a directory",
                "set `AWS_TIP_CACHE_DIR` to a directory",
            ));
        }
        Err(e) => return Err(io_error("create", dir)(e)),
    }

    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};

        let metadata = fs::metadata(dir).map_err(io_error("inspect", dir))?;
        if metadata.uid() != rustix::process::geteuid().as_raw() {
            return Err(unsafe_directory(
                "belongs to another user",
                "set `AWS_TIP_CACHE_DIR` to a directory of your own",
            ));
        }
        if metadata.permissions().mode() & 0o077 != 0 {
            return Err(unsafe_directory(
                "is accessible to other users",
                "run `chmod 700` on it, or set `AWS_TIP_CACHE_DIR` to a private directory",
            ));
        }
    }
    Ok(())
}

/// Writes `value` as JSON to a private temporary file beside `path`, syncs it and renames it
/// over `path`, then syncs the directory so the rename survives a crash.
fn write_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), CacheError> {
    let dir = path
        .parent()
        .expect("cache file paths are always inside the cache directory");
    ensure_private_dir(dir)?;

    let json = Zeroizing::new(serde_json::to_vec(value).map_err(|source| CacheError::Encode {
        path: path.to_owned(),
        source,
    })?);
    // tempfile creates the file with mode 0600 and O_EXCL, so no other user can open it.
    let mut temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(io_error("create a temporary file in", dir))?;
    temp.write_all(&json).map_err(io_error("write", temp.path()))?;
    temp.as_file().sync_all().map_err(io_error("sync", path))?;
    temp.persist(path).map_err(|e| CacheError::Io {
        what: "replace",
        path: path.to_owned(),
        source: e.error,
    })?;
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("sync", dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use super::*;
    use crate::cache::entries_for_tests::{credentials_entry, token_entry};

    fn app(dir: &Path) -> AppCache {
        CacheDir::at(dir.join("cache")).app("https://issuer.example/", "client")
    }

    #[test]
    fn token_round_trip() {
        let temp = tempfile::tempdir().unwrap();
        let cache = app(temp.path());
        let lock = cache.lock().unwrap();
        assert!(lock.read_tokens().unwrap().is_none());
        lock.write_tokens(&token_entry()).unwrap();
        let back = lock.read_tokens().unwrap().unwrap();
        assert_eq!(back.subject, "user-1");
        assert_eq!(back.refresh_token.unwrap().expose(), "sentinel-refresh-token");
    }

    #[test]
    fn credentials_round_trip_without_lock() {
        let temp = tempfile::tempdir().unwrap();
        let cache = app(temp.path());
        assert!(cache.read_credentials("k").is_none());
        cache
            .lock()
            .unwrap()
            .write_credentials("k", &credentials_entry())
            .unwrap();
        let back = cache.read_credentials("k").unwrap();
        assert_eq!(back.secret_access_key.expose(), "sentinel-secret-key");
    }

    #[cfg(unix)]
    #[test]
    fn files_private() {
        use std::os::unix::fs::PermissionsExt;

        let temp = tempfile::tempdir().unwrap();
        let cache = app(temp.path());
        cache.lock().unwrap().write_tokens(&token_entry()).unwrap();
        let dir_mode = fs::metadata(temp.path().join("cache")).unwrap().permissions().mode();
        let file_mode = fs::metadata(cache.tokens_path()).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert_eq!(file_mode & 0o777, 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn shared_directory_rejected_unchanged() {
        use std::os::unix::fs::PermissionsExt;

        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("cache");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).unwrap();
        let err = app(temp.path()).lock().unwrap_err();
        assert!(err.to_string().contains("is accessible to other users"), "{err}");
        assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o7777, 0o1777);
    }

    #[test]
    fn file_as_directory_rejected() {
        let temp = tempfile::tempdir().unwrap();
        fs::write(temp.path().join("cache"), b"").unwrap();
        let err = CacheDir::at(temp.path().join("cache")).prepare().unwrap_err();
        assert!(err.to_string().contains("is not a directory"), "{err}");
    }

    #[test]
    fn relative_directory_rejected() {
        let env = Env::from_slice(&[("AWS_TIP_CACHE_DIR", "relative/cache")]);
        assert!(matches!(
            CacheDir::from_env(&env),
            Err(CacheError::RelativeCacheDirectory(_))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn lock_file_private() {
        use std::os::unix::fs::PermissionsExt;

        let temp = tempfile::tempdir().unwrap();
        let cache = app(temp.path());
        cache.lock().unwrap();
        assert_eq!(
            fs::metadata(cache.lock_path()).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn other_version_fields_ignored() {
        let temp = tempfile::tempdir().unwrap();
        let cache = app(temp.path());
        let lock = cache.lock().unwrap();
        fs::write(cache.tokens_path(), br#"{"version":2,"something":"else"}"#).unwrap();
        assert!(lock.read_tokens().unwrap().is_none());
    }

    #[test]
    fn no_temporary_files_left() {
        let temp = tempfile::tempdir().unwrap();
        let cache = app(temp.path());
        let lock = cache.lock().unwrap();
        lock.write_tokens(&token_entry()).unwrap();
        lock.write_tokens(&token_entry()).unwrap();
        let names: Vec<String> = fs::read_dir(temp.path().join("cache"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with(".tmp-")), "{names:?}");
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn corrupt_token_file_reported() {
        let temp = tempfile::tempdir().unwrap();
        let cache = app(temp.path());
        let lock = cache.lock().unwrap();
        fs::write(cache.tokens_path(), b"{\"version\":1,\"id_token\":\"sentinel-partial").unwrap();
        let err = lock.read_tokens().unwrap_err();
        let message = crate::error::chain(&err);
        assert!(message.contains("failed to decode"), "{message}");
        assert!(message.contains("the file is empty or truncated"), "{message}");
        assert!(!message.contains("sentinel-partial"), "{message}");
    }

    #[test]
    fn corrupt_credentials_count_as_absent() {
        let temp = tempfile::tempdir().unwrap();
        let cache = app(temp.path());
        cache.lock().unwrap();
        fs::write(cache.credentials_path("k"), b"not json").unwrap();
        assert!(cache.read_credentials("k").is_none());
    }

    #[test]
    fn other_version_counts_as_absent() {
        let temp = tempfile::tempdir().unwrap();
        let cache = app(temp.path());
        let lock = cache.lock().unwrap();
        let mut entry = token_entry();
        entry.version = 2;
        lock.write_tokens(&entry).unwrap();
        assert!(lock.read_tokens().unwrap().is_none());
    }

    #[test]
    fn remove_all_credentials_keeps_tokens() {
        let temp = tempfile::tempdir().unwrap();
        let cache = app(temp.path());
        let other = CacheDir::at(temp.path().join("cache")).app("https://issuer.example/", "other-client");
        let lock = cache.lock().unwrap();
        lock.write_tokens(&token_entry()).unwrap();
        lock.write_credentials("a", &credentials_entry()).unwrap();
        lock.write_credentials("b", &credentials_entry()).unwrap();
        other
            .lock()
            .unwrap()
            .write_credentials("a", &credentials_entry())
            .unwrap();
        assert_eq!(lock.remove_all_credentials().unwrap(), 2);
        assert!(lock.read_tokens().unwrap().is_some());
        assert!(other.read_credentials("a").is_some());
    }

    #[test]
    fn apps_do_not_share_files() {
        let dir = CacheDir::at("/c");
        let a = dir.app("https://issuer.example/", "client-a");
        let b = dir.app("https://issuer.example/", "client-b");
        assert_ne!(a.tokens_path(), b.tokens_path());
        assert_eq!(
            a.tokens_path(),
            dir.app("https://issuer.example/", "client-a").tokens_path()
        );
    }

    #[test]
    fn lock_excludes_other_holders() {
        let temp = tempfile::tempdir().unwrap();
        let cache = app(temp.path());
        let holder = cache.lock().unwrap();
        let second = File::options().write(true).open(cache.lock_path()).unwrap();
        assert!(matches!(second.try_lock(), Err(fs::TryLockError::WouldBlock)));
        drop(holder);
        assert!(second.try_lock().is_ok());
    }

    #[test]
    fn lock_wait_times_out() {
        let temp = tempfile::tempdir().unwrap();
        let cache = app(temp.path());
        let _holder = cache.lock().unwrap();
        let other = app(temp.path());
        let err = other.lock_within(Duration::from_millis(100)).unwrap_err();
        assert!(matches!(err, CacheError::LockTimeout { .. }), "{err:?}");
    }

    #[test]
    fn lock_serializes_writers() {
        // Each thread reads a counter, sleeps, and writes it back plus one; without mutual
        // exclusion some increments would be lost.
        let temp = tempfile::tempdir().unwrap();
        let cache = Arc::new(app(temp.path()));
        cache
            .lock()
            .unwrap()
            .write_credentials("n", &credentials_entry())
            .unwrap();
        let threads = 8;
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let cache = Arc::clone(&cache);
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    let lock = cache.lock().unwrap();
                    let mut entry = lock.read_credentials("n").unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    entry.access_key_id.push('x');
                    lock.write_credentials("n", &entry).unwrap();
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        let entry = cache.read_credentials("n").unwrap();
        assert_eq!(entry.access_key_id, format!("ASIAEXAMPLE{}", "x".repeat(threads)));
    }
}
