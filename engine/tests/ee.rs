//! Equivariant Encryption: an encrypted kernel gives the plaintext kernel's answers, token for
//! token, on the tiny test models and on SmolLM2; what a node runner receives holds no
//! plaintext token ids; keys that do not fit are refused.

use std::path::{Path, PathBuf};

use candle_core::quantized::GgmlDType;
use nesa_engine::ee::{encrypt_kernel, EncryptedKernel, KernelMaps};
use nesa_engine::ee::{EeKey, Transform};
use nesa_engine::tiny::{tiny_model_file, TinyModelSpec};
use nesa_engine::{default_model_path, GenerateRequest, LoadOptions, Model, Sampling, Tokenizer};

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("nesa-ee-test-{}-{name}", std::process::id()))
}

fn logits(model: &Model, tokens: &[u32]) -> Vec<f32> {
    let layers = model.loaded_layers();
    let mut cache = model.new_cache(layers.clone());
    let hidden = model
        .forward_layers(&model.embed(tokens).unwrap(), layers, 0, &mut cache)
        .unwrap();
    model.head(&hidden).unwrap()
}

fn greedy(model: &Model, prompt: &[u32], max_tokens: usize, stop_tokens: &[u32]) -> Vec<u32> {
    let request = GenerateRequest {
        prompt: prompt.to_vec(),
        max_tokens,
        sampling: Sampling::Greedy,
        stop_tokens: stop_tokens.to_vec(),
        top_logprobs: 0,
    };
    model.generate(&request, |_| {}).unwrap().tokens
}

/// How far the encrypted kernel's logits strayed from the plaintext ones.
struct Agreement {
    max_difference: f32,
    logit_scale: f32,
}

/// Encrypts `plain`, then checks greedy answers token for token and the logits of every
/// prompt. Returns the largest logit difference seen.
fn check_equivalence(
    plain: &Path,
    transform: Transform,
    prompts: &[Vec<u32>],
    max_tokens: usize,
    stop_tokens: &[u32],
) -> Agreement {
    let vocab_size = {
        let content = nesa_engine::gguf::read_content(plain).unwrap();
        nesa_engine::ModelConfig::from_gguf_metadata(&content.metadata)
            .unwrap()
            .vocab_size
    };
    let mut key = EeKey::from_seed([42; 32], transform, vocab_size as u32);
    let encrypted = temp(&format!(
        "{}-{transform:?}.gguf",
        plain.file_stem().unwrap().to_string_lossy()
    ));
    let report = encrypt_kernel(plain, &encrypted, &mut key).unwrap();
    assert_eq!(
        key.kernel_sha256.as_deref(),
        Some(hex::encode(report.sha256).as_str())
    );
    let plain_model = Model::load(plain, &LoadOptions::default()).unwrap();
    let encrypted_model = Model::load(&encrypted, &LoadOptions::default()).unwrap();
    let vocabulary = key.vocabulary();
    let forward = vocabulary
        .decrypt(&(0..vocab_size as u32).collect::<Vec<_>>())
        .unwrap();
    let encrypted_stops = vocabulary.encrypt(stop_tokens).unwrap();
    let info = EncryptedKernel::from_metadata(
        &nesa_engine::gguf::read_content(&encrypted)
            .unwrap()
            .metadata,
    )
    .unwrap()
    .expect("marked encrypted");
    if !stop_tokens.is_empty() {
        assert_eq!(info.stop_tokens, encrypted_stops);
    }

    // The residual stream is the plaintext one under the key's signed permutation.
    let maps = KernelMaps::derive(&key, plain_model.config());
    let plain_embedding = plain_model.embed(&prompts[0]).unwrap().to_vec().unwrap();
    let encrypted_embedding = encrypted_model
        .embed(&vocabulary.encrypt(&prompts[0]).unwrap())
        .unwrap()
        .to_vec()
        .unwrap();
    assert_eq!(maps.encrypt_hidden(&plain_embedding), encrypted_embedding);

    let mut agreement = Agreement {
        max_difference: 0.0,
        logit_scale: 0.0,
    };
    for prompt in prompts {
        let encrypted_prompt = vocabulary.encrypt(prompt).unwrap();
        let answer = greedy(&plain_model, prompt, max_tokens, stop_tokens);
        let encrypted_answer = greedy(
            &encrypted_model,
            &encrypted_prompt,
            max_tokens,
            &info.stop_tokens,
        );
        assert_eq!(
            vocabulary.decrypt(&encrypted_answer).unwrap(),
            answer,
            "{transform:?}: greedy answers differ for prompt {prompt:?}"
        );
        let plain_logits = logits(&plain_model, prompt);
        let encrypted_logits = logits(&encrypted_model, &encrypted_prompt);
        for (e, &value) in encrypted_logits.iter().enumerate() {
            let expected = plain_logits[forward[e] as usize];
            agreement.max_difference = agreement.max_difference.max((value - expected).abs());
            agreement.logit_scale = agreement.logit_scale.max(expected.abs());
        }
    }
    std::fs::remove_file(&encrypted).unwrap();
    agreement
}

/// Logits may differ only by float summation order (the same products, added in another
/// order in the LM head; the blocks compute the same bits): at most 1e-5 of the largest logit.
const RELATIVE_TOLERANCE: f32 = 1e-5;

fn assert_close(agreement: &Agreement, what: &str) {
    eprintln!(
        "{what}: max logit difference {:.2e} (largest logit {:.2})",
        agreement.max_difference, agreement.logit_scale
    );
    assert!(
        agreement.max_difference <= RELATIVE_TOLERANCE * agreement.logit_scale,
        "{what}: logits differ by {} (scale {})",
        agreement.max_difference,
        agreement.logit_scale
    );
}

#[test]
fn encrypted_tiny_models_answer_like_the_plaintext_ones() {
    let prompts = [
        vec![1, 40, 75, 250, 3, 99, 100, 2, 17],
        vec![5, 6, 7],
        (0..40).map(|i| (i * 37 % 250) + 3).collect(),
    ];
    let specs = [
        // Heads of 16 values: heads stay in place, everything else moves.
        TinyModelSpec::default(),
        TinyModelSpec {
            weight_dtype: GgmlDType::Q4_1,
            ..Default::default()
        },
        // Heads of 32 values, like SmolLM2's 64: heads and key/value groups move too.
        TinyModelSpec {
            weight_dtype: GgmlDType::Q4_1,
            hidden: 128,
            heads: 4,
            kv_heads: 2,
            ffn: 256,
            ..Default::default()
        },
    ];
    for spec in specs {
        let path = tiny_model_file(&spec).unwrap();
        for transform in [Transform::Permutation, Transform::SignedPermutation] {
            let agreement = check_equivalence(&path, transform, &prompts, 12, &[]);
            assert_close(
                &agreement,
                &format!(
                    "tiny {:?} {}x{} {transform:?}",
                    spec.weight_dtype, spec.hidden, spec.heads
                ),
            );
        }
    }
}

#[test]
fn encrypted_smollm2_answers_like_the_plaintext_model() {
    let Some(path) = nesa_testkit::require_file(
        "encrypted_smollm2_answers_like_the_plaintext_model",
        &default_model_path(),
        "run scripts/fetch-model",
    ) else {
        return;
    };
    let tokenizer = Tokenizer::load(&path).unwrap();
    let prompts: Vec<Vec<u32>> = [
        "What is the capital of France?",
        "Write a haiku about the sea.",
        "List three prime numbers.",
    ]
    .iter()
    .map(|question| {
        tokenizer
            .encode(&tokenizer.chat_prompt(Some("You are a helpful AI assistant."), question))
            .unwrap()
    })
    .collect();
    let agreement = check_equivalence(
        &path,
        Transform::SignedPermutation,
        &prompts,
        24,
        tokenizer.stop_tokens(),
    );
    assert_close(&agreement, "SmolLM2-135M Q4_1 signed-permutation");
}

#[test]
fn what_a_node_receives_holds_no_plaintext_token_ids_of_the_prompt() {
    let path = tiny_model_file(&TinyModelSpec::default()).unwrap();
    let tokenizer = Tokenizer::load(&path).unwrap();
    let key = EeKey::from_seed(
        [9; 32],
        Transform::SignedPermutation,
        tokenizer.vocab_size() as u32,
    );
    let plain = tokenizer
        .encode(&tokenizer.chat_prompt(None, "my account number is 12345, keep it secret"))
        .unwrap();
    let sent = key.vocabulary().encrypt(&plain).unwrap();
    assert_eq!(sent.len(), plain.len());
    // Not one pair of consecutive plaintext ids appears anywhere in what is sent.
    for pair in plain.windows(2) {
        assert!(
            !sent.windows(2).any(|w| w == pair),
            "plaintext bigram {pair:?} visible in {sent:?}"
        );
    }
    let same_position = plain.iter().zip(&sent).filter(|(a, b)| a == b).count();
    assert!(
        same_position * 10 < plain.len(),
        "{same_position} ids unchanged"
    );
}

#[test]
fn keys_that_do_not_fit_the_model_are_refused() {
    let path = tiny_model_file(&TinyModelSpec::default()).unwrap();
    let out = temp("refused.gguf");
    let mut wrong_vocabulary = EeKey::from_seed([1; 32], Transform::SignedPermutation, 49_152);
    let error = encrypt_kernel(&path, &out, &mut wrong_vocabulary).unwrap_err();
    assert!(error.to_string().contains("vocabulary"), "{error}");
    assert!(!out.exists());

    // Encrypting an encrypted kernel again is refused too.
    let vocab = Tokenizer::load(&path).unwrap().vocab_size() as u32;
    let mut key = EeKey::from_seed([1; 32], Transform::SignedPermutation, vocab);
    encrypt_kernel(&path, &out, &mut key).unwrap();
    let twice = temp("twice.gguf");
    let error = encrypt_kernel(&out, &twice, &mut key).unwrap_err();
    assert!(error.to_string().contains("already"), "{error}");
    std::fs::remove_file(&out).unwrap();
}
