//! The generation loop: prefill the prompt in one pass, then decode token by token until a
//! stop token or the token budget.

use std::time::Instant;

use super::error::{EngineError, Result};
use super::model::Model;
use super::sampling::{top_logprobs, Sampler, Sampling};

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenerateRequest {
    /// The prompt, already tokenized (and wrapped in the chat template when wanted).
    pub prompt: Vec<u32>,
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// How each token is chosen.
    pub sampling: Sampling,
    /// Tokens that end the answer (not included in the output).
    pub stop_tokens: Vec<u32>,
    /// How many most likely tokens to report per generated position (for the fingerprint).
    pub top_logprobs: usize,
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// A stop token was chosen.
    Stop,
    /// `max_tokens` were generated, or the context is full.
    Length,
}

/// A finished generation.
#[derive(Clone, Debug)]
pub struct GenerationOutput {
    /// The generated tokens, without the stop token.
    pub tokens: Vec<u32>,
    /// Per generated token, the `top_logprobs` most likely `(token, log-probability)` at that
    /// position, most likely first.
    pub top_logprobs: Vec<Vec<(u32, f32)>>,
    /// Why generation ended.
    pub finish_reason: FinishReason,
    /// Time to process the prompt and produce the first logits.
    pub prefill_ms: f64,
    /// Time for everything after the first logits.
    pub decode_ms: f64,
}

impl GenerationOutput {
    /// Prompt tokens per second in prefill.
    pub fn prefill_tokens_per_second(&self, prompt_len: usize) -> f64 {
        per_second(prompt_len, self.prefill_ms)
    }

    /// Generated tokens per second after the first (each decode step runs one forward pass).
    pub fn decode_tokens_per_second(&self) -> f64 {
        per_second(self.decode_steps(), self.decode_ms)
    }

    /// Forward passes made after prefill.
    pub fn decode_steps(&self) -> usize {
        match self.finish_reason {
            // The stop token was chosen from the logits of the last step.
            FinishReason::Stop => self.tokens.len(),
            FinishReason::Length => self.tokens.len().saturating_sub(1),
        }
    }
}

fn per_second(count: usize, ms: f64) -> f64 {
    if ms > 0.0 {
        count as f64 * 1000.0 / ms
    } else {
        0.0
    }
}

impl Model {
    /// Generates an answer with every layer in this process; `on_token` sees each token as
    /// soon as it is chosen.
    pub fn generate(
        &self,
        request: &GenerateRequest,
        mut on_token: impl FnMut(u32),
    ) -> Result<GenerationOutput> {
        let layers = 0..self.config().layer_count;
        if self.loaded_layers() != layers {
            let loaded = self.loaded_layers();
            return Err(EngineError::LayerRange {
                start: 0,
                end: layers.end,
                first: loaded.start,
                loaded: loaded.len(),
            });
        }
        if request.prompt.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let context_length = self.config().context_length;
        if request.prompt.len() > context_length {
            return Err(EngineError::ContextOverflow {
                needed: request.prompt.len(),
                context_length,
            });
        }
        let mut sampler = Sampler::new(request.sampling)?;
        let mut cache = self.new_cache(layers.clone());
        let mut output = GenerationOutput {
            tokens: Vec::new(),
            top_logprobs: Vec::new(),
            finish_reason: FinishReason::Length,
            prefill_ms: 0.0,
            decode_ms: 0.0,
        };

        let started = Instant::now();
        let hidden =
            self.forward_layers(&self.embed(&request.prompt)?, layers.clone(), 0, &mut cache)?;
        let mut logits = self.head(&hidden)?;
        output.prefill_ms = started.elapsed().as_secs_f64() * 1000.0;

        let decode_started = Instant::now();
        let mut position = request.prompt.len();
        while output.tokens.len() < request.max_tokens {
            let token = sampler.sample(&logits);
            if request.stop_tokens.contains(&token) {
                output.finish_reason = FinishReason::Stop;
                break;
            }
            output
                .top_logprobs
                .push(top_logprobs(&logits, request.top_logprobs));
            output.tokens.push(token);
            on_token(token);
            if output.tokens.len() == request.max_tokens || position >= context_length {
                break;
            }
            let hidden =
                self.forward_layers(&self.embed(&[token])?, layers.clone(), position, &mut cache)?;
            logits = self.head(&hidden)?;
            position += 1;
        }
        output.decode_ms = decode_started.elapsed().as_secs_f64() * 1000.0;
        Ok(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LoadOptions;
    use crate::tiny::{tiny_model_file, TinyModelSpec};

    fn tiny() -> Model {
        Model::load(
            &tiny_model_file(&TinyModelSpec::default()).unwrap(),
            &LoadOptions::default(),
        )
        .unwrap()
    }

    fn request(sampling: Sampling) -> GenerateRequest {
        GenerateRequest {
            prompt: vec![1, 70, 80, 90, 2, 1],
            max_tokens: 12,
            sampling,
            stop_tokens: vec![],
            top_logprobs: 5,
        }
    }

    #[test]
    fn greedy_generation_is_deterministic() {
        let model = tiny();
        let first = model.generate(&request(Sampling::Greedy), |_| {}).unwrap();
        let second = model.generate(&request(Sampling::Greedy), |_| {}).unwrap();
        assert_eq!(first.tokens.len(), 12);
        assert_eq!(first.tokens, second.tokens);
        assert_eq!(first.top_logprobs, second.top_logprobs);
        assert_eq!(first.finish_reason, FinishReason::Length);
    }

    #[test]
    fn greedy_tokens_are_the_most_likely_ones_reported() {
        let output = tiny().generate(&request(Sampling::Greedy), |_| {}).unwrap();
        for (token, top) in output.tokens.iter().zip(&output.top_logprobs) {
            assert_eq!(top.len(), 5);
            assert_eq!(top[0].0, *token);
            assert!(top.windows(2).all(|w| w[0].1 >= w[1].1));
            assert!(top.iter().all(|(_, lp)| *lp <= 0.0));
        }
    }

    #[test]
    fn seeded_sampling_is_deterministic_per_seed() {
        let model = tiny();
        let seeded = |seed| Sampling::Seeded {
            temperature: 1.5,
            top_p: 0.95,
            seed,
        };
        let a = model.generate(&request(seeded(1)), |_| {}).unwrap();
        let b = model.generate(&request(seeded(1)), |_| {}).unwrap();
        let c = model.generate(&request(seeded(2)), |_| {}).unwrap();
        assert_eq!(a.tokens, b.tokens);
        assert_ne!(a.tokens, c.tokens, "another seed draws another answer");
    }

    #[test]
    fn generation_ends_at_a_stop_token_without_emitting_it() {
        let model = tiny();
        let greedy = model.generate(&request(Sampling::Greedy), |_| {}).unwrap();
        let stop = greedy.tokens[3];
        let first_stop = greedy.tokens.iter().position(|&t| t == stop).unwrap();
        let mut streamed = Vec::new();
        let stopped = model
            .generate(
                &GenerateRequest {
                    stop_tokens: vec![stop],
                    ..request(Sampling::Greedy)
                },
                |t| streamed.push(t),
            )
            .unwrap();
        assert_eq!(stopped.tokens, greedy.tokens[..first_stop]);
        assert_eq!(streamed, stopped.tokens);
        assert_eq!(stopped.top_logprobs.len(), stopped.tokens.len());
        assert_eq!(stopped.finish_reason, FinishReason::Stop);
    }

    #[test]
    fn a_shard_cannot_generate_and_an_empty_prompt_is_rejected() {
        let path = tiny_model_file(&TinyModelSpec::default()).unwrap();
        let shard = Model::load(
            &path,
            &LoadOptions {
                layers: Some(0..2),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(matches!(
            shard.generate(&request(Sampling::Greedy), |_| {}),
            Err(EngineError::LayerRange { .. })
        ));
        let empty = GenerateRequest {
            prompt: vec![],
            ..request(Sampling::Greedy)
        };
        assert!(matches!(
            tiny().generate(&empty, |_| {}),
            Err(EngineError::EmptyPrompt)
        ));
    }
}
