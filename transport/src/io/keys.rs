//! Key files for signed channels (protocol.md §15): a sender's Ed25519 key
//! pair, made from the OS's randomness, written as `PREFIX.key` (mode 600)
//! and `PREFIX.pub`, and read back with errors that name the file. And the
//! channel keys of encrypted channels (§16): a file of its own (mode 600),
//! or a passphrase stretched with Argon2id.
//!
//! Each file is one line of text: `groupcast-ed25519-secret `,
//! `groupcast-ed25519-public ` or `groupcast-channel-key ` and 64 hex
//! digits (the 32-byte seed, the 32-byte public key, the 32-byte channel
//! key). A public key may also be given as its 64 hex digits alone.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::proto::auth::ChannelKey;
use crate::proto::auth::{SigningKey, VerifyingKey};

const SECRET_TAG: &str = "groupcast-ed25519-secret";
const PUBLIC_TAG: &str = "groupcast-ed25519-public";
const CHANNEL_TAG: &str = "groupcast-channel-key";
/// The Argon2id salt of passphrases: the same for every channel, so that a
/// passphrase alone names the key (docs/security.md says what this costs).
const PASSPHRASE_SALT: &[u8] = b"groupcast channel passphrase v1";
/// Argon2id's cost for passphrases: 64 MiB, 3 passes, one lane (RFC 9106
/// §4's second recommended option).
const ARGON2_MEMORY_KIB: u32 = 64 * 1024;
const ARGON2_PASSES: u32 = 3;
/// The shortest passphrase taken, in bytes.
pub const MIN_PASSPHRASE: usize = 12;

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
    hex(&crate::proto::auth::key_fingerprint(key))
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
    let text = read_secret(path)?;
    let seed = parse_line(&text, SECRET_TAG).ok_or_else(|| {
        format!(
            "{}: not a groupcast secret key (make one with `groupcast keygen --out PREFIX`)",
            path.display()
        )
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// A secret file's text; refused if others may read it.
fn read_secret(path: &Path) -> Result<String, String> {
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
            "{name}: others may read this secret (mode {:o}): chmod 600 it",
            mode & 0o777
        ));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut f, &mut text).map_err(|e| format!("{name}: {e}"))?;
    Ok(text)
}

/// A new channel key from the OS's randomness.
pub fn generate_channel_key() -> std::io::Result<ChannelKey> {
    let mut k = [0u8; 32];
    getrandom::fill(&mut k).map_err(|e| std::io::Error::other(format!("no randomness: {e}")))?;
    Ok(ChannelKey::from_bytes(k))
}

/// Writes a channel key to `path` (mode 600); refuses to replace a file.
pub fn write_channel_key(path: &Path, key: &ChannelKey) -> Result<(), String> {
    if path.exists() {
        return Err(format!("{} exists: not replacing a key", path.display()));
    }
    write_new(
        path,
        &format!("{CHANNEL_TAG} {}\n", hex(key.as_bytes())),
        0o600,
    )
}

/// Reads a channel key written by [`write_channel_key`]; refuses one that
/// others may read.
pub fn read_channel_key(path: &Path) -> Result<ChannelKey, String> {
    let text = read_secret(path)?;
    let k = parse_line(&text, CHANNEL_TAG).ok_or_else(|| {
        format!(
            "{}: not a groupcast channel key (make one with `groupcast keygen --channel-key \
             FILE`; a passphrase goes in --passphrase-file)",
            path.display()
        )
    })?;
    Ok(ChannelKey::from_bytes(k))
}

/// The channel key of a passphrase: Argon2id, 64 MiB and 3 passes, over a
/// fixed salt (protocol.md §16.4). Refuses a passphrase shorter than
/// [`MIN_PASSPHRASE`] bytes.
pub fn channel_key_from_passphrase(passphrase: &[u8]) -> Result<ChannelKey, String> {
    if passphrase.len() < MIN_PASSPHRASE {
        return Err(format!(
            "the passphrase is {} bytes: at least {MIN_PASSPHRASE} are needed (or use a \
             channel key file: `groupcast keygen --channel-key FILE`)",
            passphrase.len()
        ));
    }
    let params = argon2::Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, 1, Some(32))
        .map_err(|e| format!("argon2: {e}"))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut k = [0u8; 32];
    argon
        .hash_password_into(passphrase, PASSPHRASE_SALT, &mut k)
        .map_err(|e| format!("argon2: {e}"))?;
    Ok(ChannelKey::from_bytes(k))
}

/// Reads a passphrase from the first line of `path` (its line ending
/// dropped), refused if others may read the file, and stretches it.
pub fn read_passphrase_file(path: &Path) -> Result<ChannelKey, String> {
    let text = read_secret(path)?;
    let line = text.lines().next().unwrap_or("");
    channel_key_from_passphrase(line.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
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

/// A key's fingerprint given as its 16 hex digits ([`fingerprint`]).
pub fn parse_fingerprint(s: &str) -> Option<[u8; crate::proto::auth::FINGERPRINT_LEN]> {
    unhex(s)
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
    unhex(s)
}

/// `N` bytes from exactly `2 × N` hex digits.
fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; N];
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

    #[test]
    fn a_channel_key_or_a_passphrase_gives_the_same_key_each_time() {
        let dir = std::env::temp_dir().join(format!("gc-ckeys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("channel.key");
        let key = generate_channel_key().unwrap();
        write_channel_key(&path, &key).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_channel_key(&path).unwrap(), key);
        assert!(
            write_channel_key(&path, &key)
                .unwrap_err()
                .contains("exists")
        );
        // A signing key is not a channel key.
        let (secret, _) = write_pair(&dir.join("sender"), &generate().unwrap()).unwrap();
        assert!(
            read_channel_key(&secret)
                .unwrap_err()
                .contains("not a groupcast channel key")
        );
        let a = channel_key_from_passphrase(b"correct horse battery").unwrap();
        assert_eq!(
            a,
            channel_key_from_passphrase(b"correct horse battery").unwrap()
        );
        assert_ne!(
            a,
            channel_key_from_passphrase(b"correct horse batterz").unwrap()
        );
        assert!(
            channel_key_from_passphrase(b"short")
                .unwrap_err()
                .contains("at least 12")
        );
        let pass = dir.join("pass");
        write_new(&pass, "correct horse battery\n", 0o600).unwrap();
        assert_eq!(read_passphrase_file(&pass).unwrap(), a);
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            read_passphrase_file(&pass)
                .unwrap_err()
                .contains("chmod 600")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
