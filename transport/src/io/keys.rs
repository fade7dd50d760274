//! Key files for signed channels (protocol.md §15): a sender's Ed25519 key
//! pair, made from the OS's randomness, written as `PREFIX.key` (mode 600)
//! and `PREFIX.pub`, and read back with errors that name the file.
//!
//! Both files are one line of text: `groupcast-ed25519-secret ` or
//! `groupcast-ed25519-public ` and 64 hex digits (the 32-byte seed, or the
//! 32-byte public key). A public key may also be given as its 64 hex digits
//! alone.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::proto::auth::{SigningKey, VerifyingKey};

const SECRET_TAG: &str = "groupcast-ed25519-secret";
const PUBLIC_TAG: &str = "groupcast-ed25519-public";

/// A new signing key from the OS's randomness. Fails, rather than make a
/// weak key, if there is none.
pub fn generate() -> std::io::Result<SigningKey> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| std::io::Error::other(format!("no randomness: {e}")))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// A public key's short fingerprint: the first 8 bytes of BLAKE3 of the
/// key, in hex, to compare keys by eye.
pub fn fingerprint(key: &VerifyingKey) -> String {
    hex(&blake3::hash(key.as_bytes()).as_bytes()[..8])
}

/// Writes `key` as `PREFIX.key` (mode 600) and its public key as
/// `PREFIX.pub`; refuses to replace either. The two paths.
pub fn write_pair(prefix: &Path, key: &SigningKey) -> Result<(PathBuf, PathBuf), String> {
    let with = |ext: &str| {
        let mut p = prefix.as_os_str().to_owned();
        p.push(ext);
        PathBuf::from(p)
    };
    let (secret, public) = (with(".key"), with(".pub"));
    for p in [&secret, &public] {
        if p.exists() {
            return Err(format!("{} exists: not replacing a key", p.display()));
        }
    }
    let secret_line = format!("{SECRET_TAG} {}\n", hex(key.as_bytes()));
    write_new(&secret, &secret_line, 0o600)?;
    let public_line = format!("{PUBLIC_TAG} {}\n", hex(key.verifying_key().as_bytes()));
    if let Err(e) = write_new(&public, &public_line, 0o644) {
        // No half pair left behind to block the next try.
        let _ = std::fs::remove_file(&secret);
        return Err(e);
    }
    Ok((secret, public))
}

/// Reads a signing key written by [`write_pair`]. Refuses one that others
/// may read (as ssh does).
pub fn read_signing_key(path: &Path) -> Result<SigningKey, String> {
    let name = path.display();
    // The mode is checked on the file opened, not on the path again.
    let mut f = std::fs::File::open(path).map_err(|e| format!("{name}: {e}"))?;
    let mode = f
        .metadata()
        .map_err(|e| format!("{name}: {e}"))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{name}: others may read this secret key (mode {:o}): chmod 600 it",
            mode & 0o777
        ));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut f, &mut text).map_err(|e| format!("{name}: {e}"))?;
    let seed = parse_line(&text, SECRET_TAG).ok_or_else(|| {
        format!("{name}: not a groupcast secret key (make one with `groupcast keygen`)")
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Reads a public key: a file written by [`write_pair`], or its 64 hex
/// digits given directly.
pub fn read_verifying_key(arg: &str) -> Result<VerifyingKey, String> {
    let bytes = match unhex32(arg.trim()) {
        Some(b) => b,
        None => {
            let text = std::fs::read_to_string(arg).map_err(|e| format!("{arg}: {e}"))?;
            parse_line(&text, PUBLIC_TAG).ok_or_else(|| {
                format!(
                    "{arg}: not a groupcast public key (the .pub file `groupcast keygen` wrote)"
                )
            })?
        }
    };
    VerifyingKey::from_bytes(&bytes).map_err(|_| format!("{arg}: not a valid Ed25519 public key"))
}

/// Reads a public key given as its 64 hex digits.
pub fn read_verifying_key_hex(hex: &str) -> Result<VerifyingKey, String> {
    let bytes =
        unhex32(hex).ok_or_else(|| format!("'{hex}' is not a public key: 64 hex digits"))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|_| format!("'{hex}' is not a valid Ed25519 public key"))
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn parse_line(text: &str, tag: &str) -> Option<[u8; 32]> {
    let rest = text.trim().strip_prefix(tag)?;
    unhex32(rest.trim())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_written_reads_back_and_is_not_replaced() {
        let dir = std::env::temp_dir().join(format!("gc-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let prefix = dir.join("sender");
        let key = generate().unwrap();
        let (secret, public) = write_pair(&prefix, &key).unwrap();
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            read_signing_key(&secret).unwrap().as_bytes(),
            key.as_bytes()
        );
        let public_key = read_verifying_key(public.to_str().unwrap()).unwrap();
        assert_eq!(public_key, key.verifying_key());
        let hex_key = hex(key.verifying_key().as_bytes());
        assert_eq!(read_verifying_key(&hex_key).unwrap(), public_key);
        assert!(write_pair(&prefix, &key).unwrap_err().contains("exists"));
        // A secret key others may read is refused, naming the fix.
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_signing_key(&secret).unwrap_err().contains("chmod 600"));
        // The public key is not a secret key, nor garbage a public key.
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&secret, "hello\n").unwrap();
        assert!(
            read_signing_key(&secret)
                .unwrap_err()
                .contains("not a groupcast secret key")
        );
        assert!(read_verifying_key("abc").is_err());
        assert!(
            read_verifying_key_hex(&"+a".repeat(32)).is_err(),
            "signs are not hex"
        );
        assert_eq!(fingerprint(&public_key).len(), 16);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
