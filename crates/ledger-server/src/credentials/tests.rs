//! Master key and credentials files: parsing, generation, permissions.

use super::*;
use ledger_core::crypto::MasterKey;
use ledger_store::master_key::{parse_master_key, MASTER_KEY_FILE};

/// The master key as `serve` reads it, noting a file it created.
fn master_key(explicit: Option<&Path>, dir: &Path, created: &mut Vec<Created>) -> Result<MasterKey, SecretFileError> {
    let (key, new) = ledger_store::master_key::master_key(explicit, dir)?;
    created.extend(new.map(Created::MasterKey));
    Ok(key)
}

#[test]
fn credentials_split_at_the_first_colon_and_skip_comments() {
    let text = "# a comment\n\n  AKID1:secret:with:colons  \nAKID2:s2\n";
    let store = parse_credentials(text, Path::new("c")).unwrap();
    assert_eq!(store.len(), 2);
    assert!(format!("{store:?}").contains("AKID1"));
    assert!(!format!("{store:?}").contains("secret:with"));
}

#[test]
fn bad_credentials() {
    for text in ["AKID", ":secret", "AKID:", "# only a comment\n"] {
        assert!(parse_credentials(text, Path::new("c")).is_err(), "{text}");
    }
}

#[test]
fn generated_files_are_private_and_stable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mut created = Vec::new();
    master_key(None, dir.path(), &mut created).unwrap();
    let creds = credentials(None, dir.path(), &mut created).unwrap();
    assert_eq!(creds.len(), 1);
    assert_eq!(created.len(), 2);
    for name in [MASTER_KEY_FILE, CREDENTIALS_FILE] {
        let meta = std::fs::metadata(dir.path().join(name)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
    }
    let key_text = std::fs::read_to_string(dir.path().join(MASTER_KEY_FILE)).unwrap();
    assert_eq!(key_text.len(), 65);
    assert!(key_text.ends_with('\n'));
    // A second start reads what the first wrote.
    let mut again = Vec::new();
    master_key(None, dir.path(), &mut again).unwrap();
    credentials(None, dir.path(), &mut again).unwrap();
    assert!(again.is_empty());
    assert_eq!(std::fs::read_to_string(dir.path().join(MASTER_KEY_FILE)).unwrap(), key_text);
}

#[test]
fn bad_master_key() {
    assert!(parse_master_key("abcd", Path::new("k")).is_err());
    assert!(parse_master_key(&"g".repeat(64), Path::new("k")).is_err());
    assert!(parse_master_key(&"0a".repeat(32), Path::new("k")).is_ok());
}

/// A key listed twice would let the second line silently replace the first (and its scope).
#[test]
fn a_duplicate_access_key_is_refused() {
    let text = "AKIAONE:secret-a:ro:prefix=app/\n# other\nAKIAONE:secret-b\n";
    let err = parse_credentials(text, Path::new("creds")).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, FileError::DuplicateAccessKey { line: 3, first: 1, .. }), "{message}");
    assert!(message.contains("AKIAONE") && !message.contains("secret-a") && !message.contains("secret-b"), "{message}");
}

/// The temporary file behind a new key is created exclusively: a symlink planted under its
/// name is removed, never followed, and the key lands where it belongs.
#[test]
fn a_planted_symlink_does_not_redirect_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::write(&elsewhere, "untouched").unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir.path().join(format!(".{MASTER_KEY_FILE}.partial"))).unwrap();
    let mut created = Vec::new();
    master_key(None, dir.path(), &mut created).unwrap();
    assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "untouched");
    assert_eq!(std::fs::read_to_string(dir.path().join(MASTER_KEY_FILE)).unwrap().trim().len(), 64);
}

#[test]
fn credential_lines_with_options() {
    let text = "A1:s1\nA2:s/2+=:with:colon:ro\nA3:s3:prefix=app/:prefix=lib/\nA4:s4:ro:noaudit\nA5:s5:colons\n";
    let store = parse_credentials(text, Path::new("c")).unwrap();
    assert_eq!(store.access("A1"), Some(&Access::full()));
    assert_eq!(store.access("A2"), Some(&Access { read_only: true, ..Access::default() }));
    assert_eq!(store.access("A3"), Some(&Access::with_prefixes(&["app/", "lib/"])));
    assert_eq!(store.access("A4"), Some(&Access { read_only: true, no_audit: true, ..Access::default() }));
    assert_eq!(store.access("A5"), Some(&Access::full()));
    for bad in ["A:s:prefix=", "A:s:prefix=a%b", "A:ro", "A::ro"] {
        let parsed = parse_credentials(bad, Path::new("c"));
        // `A:ro` is the key `ro` with full access; the others are refused.
        assert_eq!(parsed.is_ok(), bad == "A:ro", "{bad}");
    }
}
