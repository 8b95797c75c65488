//! `nesa-node kernel …`: tools for kernel files.

use std::path::PathBuf;

use anyhow::Context;
use nesa_engine::ee::encrypt_kernel;
use nesa_engine::ModelConfig;
use nesa_sdk::ee::{EeKey, KeyFile, Transform};

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
        let content = nesa_engine::gguf::read_content(&args.input)?;
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

/// Options of `nesa-node kernel attack`.
pub struct AttackArgs {
    pub model: PathBuf,
    pub samples: usize,
    pub corpus: Vec<PathBuf>,
}

/// Plays a node runner that owns the public plaintext model against encrypted forms of it and
/// prints how much of the vocabulary permutation (or hidden basis) each attack recovers.
pub fn attack(args: &AttackArgs) -> anyhow::Result<()> {
    use candle_core::quantized::gguf_file;
    use candle_core::Device;
    use nesa_engine::ee::attack::{self, Matrix, Scheme};

    let mut file = std::fs::File::open(&args.model)
        .with_context(|| format!("cannot open {}", args.model.display()))?;
    let content = gguf_file::Content::read(&mut file)?;
    anyhow::ensure!(
        !content.metadata.contains_key(nesa_engine::ee::keys::SCHEME),
        "pass the plaintext model: the attacker owns the public weights"
    );
    let config = ModelConfig::from_gguf_metadata(&content.metadata)?;
    let mut dense = |name: &str| -> anyhow::Result<Vec<f32>> {
        Ok(content
            .tensor(&mut file, name, &Device::Cpu)?
            .dequantize(&Device::Cpu)?
            .flatten_all()?
            .to_vec1()?)
    };
    let embedding = Matrix {
        rows: config.vocab_size,
        cols: config.hidden_size,
        values: dense("token_embd.weight")?,
    };
    let step = (embedding.rows / args.samples.max(1)).max(1);
    let samples: Vec<usize> = (0..embedding.rows)
        .step_by(step)
        .take(args.samples)
        .collect();
    println!("| scheme | sorted-|values| row match | row-norm match |\n|---|---|---|");
    for scheme in Scheme::ALL {
        let (encrypted, perm) = attack::encrypt_embedding(&embedding, scheme, 11);
        let sorted = attack::sorted_abs_attack(&embedding, &encrypted, &perm, &samples)?;
        let norms = attack::row_norm_attack(&embedding, &encrypted, &perm, &samples)?;
        println!(
            "| {} | {:.1} % | {:.1} % |",
            scheme.name(),
            100.0 * sorted,
            100.0 * norms
        );
    }
    println!(
        "\n(embedding rows of {}: {} sampled of {})",
        args.model.display(),
        samples.len(),
        embedding.rows
    );

    // The norm weights of a signed-permutation kernel against the public ones.
    let key = EeKey::generate(Transform::SignedPermutation, config.vocab_size as u32);
    let maps = nesa_engine::ee::KernelMaps::derive(&key, &config);
    let mut plain_norms = Vec::new();
    for layer in 0..config.layer_count {
        plain_norms.push(dense(&format!("blk.{layer}.attn_norm.weight"))?);
        plain_norms.push(dense(&format!("blk.{layer}.ffn_norm.weight"))?);
    }
    plain_norms.push(dense("output_norm.weight")?);
    let encrypted_norms: Vec<Vec<f32>> =
        plain_norms.iter().map(|g| maps.encrypt_hidden(g)).collect();
    let recovered = attack::norm_weight_attack(&plain_norms, &encrypted_norms, &maps.residual);
    println!(
        "\nhidden-dimension permutation recovered from the {} RMSNorm weight vectors of a signed-permutation kernel: {:.1} % of {} dimensions",
        plain_norms.len(),
        100.0 * recovered,
        config.hidden_size
    );

    if !args.corpus.is_empty() {
        let tokenizer = nesa_engine::Tokenizer::from_gguf_metadata(&content.metadata)?;
        let mut lines = Vec::new();
        for path in &args.corpus {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read corpus {}", path.display()))?;
            lines.extend(
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_owned),
            );
        }
        let half = lines.len() / 2;
        let tokens = |lines: &[String]| -> anyhow::Result<Vec<u32>> {
            let mut ids = Vec::new();
            for line in lines {
                ids.extend(tokenizer.encode(line)?);
            }
            Ok(ids)
        };
        let reference = tokens(&lines[..half])?;
        let observed = tokens(&lines[half..])?;
        let vocabulary = key.vocabulary();
        let recovery = attack::frequency_attack(&reference, &observed, |t| {
            vocabulary.encrypt(&[t]).expect("in vocabulary")[0]
        });
        println!(
            "\nfrequency analysis ({} observed tokens against a {}-token public reference): {:.1} % of token occurrences, {:.1} % of distinct ids recovered",
            observed.len(),
            reference.len(),
            100.0 * recovery.occurrences,
            100.0 * recovery.distinct
        );
    }
    Ok(())
}
