//! Trusted checkpoints: `keygen`, reading signing and public keys, deciding whether a
//! checkpoint is trusted (`verify --checkpoint C --trusted-key K`), and `check-proof`, which
//! checks a proof against kept checkpoints with nothing else.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use ledger_audit::proofs::{ConsistencyDoc, InclusionDoc};
use ledger_core::checkpoint::{Checkpoint, SigningKey, VerifyingKey};
use serde_json::{json, Value};

/// `keygen --out FILE`: a fresh ed25519 key: the 32-byte seed as 64 hex digits in FILE (mode
/// 0600, never overwritten), the public key in FILE.pub; prints the public key.
pub(crate) fn keygen(out: &Path) -> anyhow::Result<ExitCode> {
    let public_path = public_path(out);
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed[..]);
    let key = SigningKey::from_bytes(&seed);
    let public = hex::encode(key.verifying_key().to_bytes());
    let create = |path: &Path, mode: u32| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .with_context(|| format!("cannot create {} (keygen never overwrites a key)", path.display()))
    };
    let mut secret = create(out, 0o600)?;
    let mut pub_file = match create(&public_path, 0o644) {
        Ok(f) => f,
        Err(e) => {
            let _ = std::fs::remove_file(out);
            return Err(e);
        }
    };
    secret.write_all(format!("{}\n", hex::encode(&seed[..])).as_bytes())?;
    secret.sync_all()?;
    pub_file.write_all(format!("{public}\n").as_bytes())?;
    pub_file.sync_all()?;
    eprintln!("wrote the signing key {} (keep it secret) and the public key {}", out.display(), public_path.display());
    println!("{public}");
    Ok(ExitCode::SUCCESS)
}

fn public_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

fn is_hex_key(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Reads 64 hex digits from `path`; never echoes the file's content or a key given in place of
/// a path.
fn read_hex32(path: &Path, what: &str, flag: &str) -> anyhow::Result<zeroize::Zeroizing<[u8; 32]>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => zeroize::Zeroizing::new(text),
        Err(_) if is_hex_key(&path.to_string_lossy()) => {
            bail!("{flag} takes a file holding the {what} (made by `secret-ledger keygen`), not the key itself")
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read the {what} file {}", path.display())),
    };
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    if hex::decode_to_slice(text.trim(), &mut bytes[..]).is_err() {
        bail!("{} does not hold a {what}: 64 hex digits expected (made by `secret-ledger keygen`)", path.display());
    }
    Ok(bytes)
}

/// The signing key in `path` (a `keygen` FILE; never its `.pub`, whose hex would sign with a
/// key anyone can rebuild).
pub(crate) fn read_signing_key(path: &Path) -> anyhow::Result<SigningKey> {
    if path.extension().is_some_and(|e| e == "pub") {
        bail!("--signing-key takes the secret key file made by `secret-ledger keygen`, not its .pub");
    }
    Ok(SigningKey::from_bytes(&*read_hex32(path, "signing key", "--signing-key")?))
}

/// The public keys in `paths` (`keygen`'s FILE.pub).
pub(crate) fn read_trusted_keys(paths: &[PathBuf]) -> anyhow::Result<Vec<VerifyingKey>> {
    paths
        .iter()
        .map(|path| {
            let bytes = read_hex32(path, "public key", "--trusted-key")?;
            VerifyingKey::from_bytes(&bytes)
                .map_err(|_| anyhow::anyhow!("{} is not an ed25519 public key", path.display()))
        })
        .collect()
}

/// A checkpoint file, parsed; its signature is judged by [`judge`].
pub(crate) fn read_checkpoint(path: &Path) -> anyhow::Result<Checkpoint> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Checkpoint::from_json(text.trim()).with_context(|| format!("{} is not a checkpoint", path.display()))
}

/// What was checked about a checkpoint's signature, for the report.
#[derive(Clone, Debug)]
pub(crate) struct Judgement {
    /// `"verified"` or `"unsigned"`.
    pub signature: &'static str,
    pub key: Option<String>,
    /// The key is one of `--trusted-key`.
    pub trusted: bool,
}

impl Judgement {
    pub(crate) fn describe(&self) -> String {
        match (&self.key, self.trusted) {
            (None, _) => "checkpoint unsigned: no signature checked".to_string(),
            (Some(key), true) => format!("checkpoint signed by trusted key {key}: signature verified"),
            (Some(key), false) => {
                format!("checkpoint signed by key {key}: signature verified, key not pinned (give --trusted-key)")
            }
        }
    }

    pub(crate) fn json(&self) -> Value {
        json!({ "signature": self.signature, "key": self.key, "trusted": self.trusted })
    }
}

/// Judges a checkpoint's signature: `Err(why)` (a verification failure, exit 1) for a signature
/// that does not verify, a key outside `trusted`, or no signature when `trusted` is not empty.
pub(crate) fn judge(checkpoint: &Checkpoint, trusted: &[VerifyingKey]) -> Result<Judgement, String> {
    let Some(signature) = &checkpoint.signature else {
        if trusted.is_empty() {
            return Ok(Judgement { signature: "unsigned", key: None, trusted: false });
        }
        return Err("the checkpoint is unsigned, but --trusted-key asks for a signature by a trusted key".into());
    };
    let key = hex::encode(signature.public_key);
    if checkpoint.verify_signature().is_err() {
        return Err(format!("the checkpoint's signature by key {key} does not verify: it was forged or altered"));
    }
    let is_trusted = trusted.iter().any(|t| t.to_bytes() == signature.public_key);
    if !trusted.is_empty() && !is_trusted {
        return Err(format!("the checkpoint is signed by key {key}, which is not a trusted key"));
    }
    Ok(Judgement { signature: "verified", key: Some(key), trusted: is_trusted })
}

/// `check-proof --proof P --checkpoint C [--checkpoint D]`: an inclusion proof (one checkpoint)
/// or a consistency proof (two) checked against the kept checkpoints alone.
pub(crate) fn check_proof(
    proof: &Path,
    checkpoints: &[PathBuf],
    trusted: &[PathBuf],
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(proof).with_context(|| format!("cannot read {}", proof.display()))?;
    let doc: Value =
        serde_json::from_str(text.trim()).with_context(|| format!("{} is not a proof document", proof.display()))?;
    let trusted = read_trusted_keys(trusted)?;
    let kept: Vec<Checkpoint> = checkpoints.iter().map(|p| read_checkpoint(p)).collect::<anyhow::Result<_>>()?;
    let mut failures = Vec::new();
    let mut judgements = Vec::new();
    for (c, path) in kept.iter().zip(checkpoints) {
        match judge(c, &trusted) {
            Ok(j) => judgements.push(format!("{}: {}", path.display(), j.describe())),
            Err(why) => failures.push(format!("{}: {why}", path.display())),
        }
    }
    let not_a_proof = || format!("{} is not a proof made by `secret-ledger prove --json`", proof.display());
    let (kind, ok) = match (doc["type"].as_str(), &kept[..]) {
        // The proof leads to the checkpoint's root, and its head hash is that tree's last leaf.
        (Some("inclusion"), [c]) => {
            let doc: InclusionDoc = serde_json::from_value(doc.clone()).with_context(not_a_proof)?;
            ("inclusion", doc.check_against(c))
        }
        (Some("consistency"), [a, b]) => {
            let doc: ConsistencyDoc = serde_json::from_value(doc.clone()).with_context(not_a_proof)?;
            ("consistency", doc.old_size == a.size && doc.new_size == b.size && doc.check(a, b))
        }
        (Some("inclusion"), _) => bail!("an inclusion proof is checked against one --checkpoint"),
        (Some("consistency"), _) => bail!("a consistency proof is checked against two --checkpoint (older, newer)"),
        _ => bail!(not_a_proof()),
    };
    if !ok {
        failures.push(format!("the {kind} proof does not lead to the checkpoint's Merkle root"));
    }
    let verified = failures.is_empty();
    let what = match kind {
        "inclusion" => format!(
            "seq {} (record hash {}) is in the log of {} records",
            doc["seq"],
            doc["record_hash"].as_str().unwrap_or("?"),
            doc["tree_size"]
        ),
        _ => format!("the log of {} records extends the one of {}", doc["new_size"], doc["old_size"]),
    };
    if json_out {
        println!("{}", json!({ "type": kind, "verified": verified, "proves": what, "failures": failures }));
    } else if verified {
        println!("ok: the {kind} proof checks against the checkpoint{}: {what}", if kept.len() > 1 { "s" } else { "" });
        for j in &judgements {
            println!("{j}");
        }
    } else {
        for f in &failures {
            println!("FAILED: {f}");
        }
    }
    Ok(if verified { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
