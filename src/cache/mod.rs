//! The on-disk cache: stored sign-in tokens and AWS credentials.
//!
//! Layout, in `AWS_TIP_CACHE_DIR` or the user's cache directory (`~/.cache/aws-tip` on Linux):
//!
//! - `APP.tokens.json`: the OpenID Connect tokens of one application, where `APP` is a hash of
//!   the issuer and client ID. Every profile that names that application shares it, so one
//!   `login` serves them all.
//! - `APP.aws-SETTINGS.json`: the AWS credentials of one set of profile settings.
//! - `APP.lock`: the lock file. An exclusive lock on it spans every read-modify-write of the
//!   two files above, so parallel callers make one refresh and one exchange between them.
//!
//! The directory is created with mode 0700. Files are written to a temporary file (mode 0600
//! from creation) in the same directory, synced, and renamed over the target, so a reader sees
//! either the old or the new content and a crash leaves no partial file. Readers of the
//! credentials file therefore need no lock.
//!
//! NOTE: `flock` locks are advisory and may not work on network file systems (NFS). There,
//! parallel callers could each refresh, so keep the cache on a local disk.

mod entries;
mod store;

pub use entries::{CredentialsEntry, FORMAT_VERSION, TokenEntry};
pub use store::{CacheDir, CacheError, CacheLock, short_hash};

#[cfg(test)]
pub use store::AppCache;

#[cfg(test)]
pub use entries::tests as entries_for_tests;
