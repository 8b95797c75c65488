//! `nesa-node kernel …`: tools for kernel files.

use std::path::PathBuf;

use anyhow::Context;
use nesa_sdk::ee::{EeKey, Transform};

use crate::ee::encrypt_kernel;
use crate::engine::ModelConfig;

/// Options of `nesa-node kernel encrypt`.
pub struct EncryptArgs {
    pub input: PathBuf,
    pub output: PathBuf,
    pub key: PathBuf,
    pub transform: Transform,
}

/// Writes the ee-v1 form of a kernel. Uses the key file if it exists, else creates one (mode
/// 0600); either way the key ends up bound to the written kernel's hash.
pub fn encrypt(args: &EncryptArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.input != args.output,
        "--out must differ from --in (the plaintext kernel stays as it is)"
    );
    let mut key = if args.key.exists() {
        let key = EeKey::load(&args.key)?;
        eprintln!("using key {} ({:?})", args.key.display(), key.transform);
        key
    } else {
        let content = nesa_sdk::gguf::read_content(&args.input)?;
        let vocab_size = ModelConfig::from_gguf_metadata(&content.metadata)
            .with_context(|| format!("reading {}", args.input.display()))?
            .vocab_size;
        eprintln!(
            "creating key {} ({:?}, vocabulary of {vocab_size})",
            args.key.display(),
            args.transform
        );
        EeKey::generate(args.transform, vocab_size as u32)
    };
    // Written before the kernel, so a key is never lost once a kernel exists for it.
    key.save(&args.key)?;
    eprintln!(
        "encrypting {} → {} …",
        args.input.display(),
        args.output.display()
    );
    let report = encrypt_kernel(&args.input, &args.output, &mut key)?;
    key.save(&args.key)?;
    eprintln!(
        "wrote {} tensors, {:.1} MB in {:.1} s; the key stays with you: register the kernel (it is marked ee-v1) and give users `nesa keys ee import {}`",
        report.tensors,
        report.bytes as f64 / 1e6,
        report.seconds,
        args.key.display()
    );
    println!("{}", hex::encode(report.sha256));
    Ok(())
}
