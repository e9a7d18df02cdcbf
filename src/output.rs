//! The `credential_process` output: the one thing aws-tip writes to stdout.
//!
//! The AWS SDKs read exactly one JSON object:
//!
//! ```json
//! {"Version":1,"AccessKeyId":"ASIA...","SecretAccessKey":"...","SessionToken":"...","Expiration":"2026-12-04T21:00:00Z"}
//! ```
//!
//! `Expiration` is UTC with a `Z` suffix and no fraction, because some SDKs (Go, older Java)
//! parse it strictly and botocore turns a naive timestamp into a later failure.

use std::io::{self, Write};

use serde::Serialize;
use time::OffsetDateTime;
use time::macros::format_description;
use zeroize::Zeroizing;

use crate::cache::CredentialsEntry;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessCredentials<'a> {
    version: u8,
    access_key_id: &'a str,
    secret_access_key: &'a str,
    session_token: &'a str,
    expiration: String,
}

/// Formats an instant as `YYYY-MM-DDTHH:MM:SSZ` in UTC.
pub fn format_utc(instant: OffsetDateTime) -> String {
    instant
        .to_offset(time::UtcOffset::UTC)
        .format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z"))
        .expect("the format has only numeric components, which every valid date has")
}

/// Renders the credential JSON followed by a newline.
pub fn credential_json(entry: &CredentialsEntry) -> Zeroizing<String> {
    let body = ProcessCredentials {
        version: 1,
        access_key_id: &entry.access_key_id,
        secret_access_key: entry.secret_access_key.expose(),
        session_token: entry.session_token.expose(),
        expiration: format_utc(entry.expiration),
    };
    let mut json = Zeroizing::new(serde_json::to_string(&body).expect("string fields always serialize"));
    json.push('\n');
    json
}

/// Writes the credential JSON to stdout in one write.
///
/// NOTE: a program started with stdout closed gets `/dev/null` there from the Rust runtime,
/// so it succeeds as if run with `>/dev/null`.
pub fn print_credentials(entry: &CredentialsEntry) -> io::Result<()> {
    let json = credential_json(entry);
    let mut stdout = io::stdout().lock();
    stdout.write_all(json.as_bytes())?;
    stdout.flush()
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::cache::entries_for_tests::credentials_entry;

    #[test]
    fn json_shape_exact() {
        let json = credential_json(&credentials_entry());
        assert_eq!(
            json.as_str(),
            "{\"Version\":1,\"AccessKeyId\":\"ASIAEXAMPLE\",\"SecretAccessKey\":\"sentinel-secret-key\",\
             \"SessionToken\":\"sentinel-session-token\",\"Expiration\":\"2026-12-04T21:00:00Z\"}\n"
        );
    }

    #[test]
    fn expiration_converted_to_utc() {
        let instant = datetime!(2026-12-04 22:30:15.75 +01:00);
        assert_eq!(format_utc(instant), "2026-12-04T21:30:15Z");
    }
}
