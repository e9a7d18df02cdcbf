//! A wrapper that keeps tokens and keys out of `Debug` output and wipes them on drop.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

/// Marker printed in place of a secret value.
pub const REDACTED: &str = "** redacted **";

/// A secret value: ID token, refresh token, client secret, AWS secret key or session token.
///
/// It has no `Display`, its `Debug` prints [`REDACTED`], it serializes transparently so the
/// cache format does not change, and its memory is zeroed when it is dropped. Call
/// [`Secret::expose`] only where the value leaves the program on purpose (an HTTP request, the
/// cache file, the credential JSON).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret<T: Zeroize>(T);

impl<T: Zeroize> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// Returns the secret value. Each call site is a place where the value may leave the program.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: Zeroize> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T: Zeroize> Drop for Secret<T> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_is_redacted() {
        let secret = Secret::new(String::from("sentinel-value-1234"));
        let rendered = format!("{secret:?} {:#?}", Some(&secret));
        assert!(!rendered.contains("sentinel-value-1234"), "{rendered}");
        assert!(rendered.contains(REDACTED));
    }

    #[test]
    fn serde_is_transparent() {
        let secret = Secret::new(String::from("abc"));
        let json = serde_json::to_string(&secret).unwrap();
        assert_eq!(json, "\"abc\"");
        let back: Secret<String> = serde_json::from_str(&json).unwrap();
        assert_eq!(back.expose(), "abc");
    }
}
