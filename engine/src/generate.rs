//! What a generation asks for and what it returns. The loop itself (prefill the prompt, then
//! decode token by token until a stop token or the token budget) is the batch scheduler's:
//! [`Model::generate`] runs it for one sequence, so a sequence alone and in a batch go
//! through the same code.

use std::sync::Arc;

use super::batch::{Cancellation, EngineStats, GenerateJob, Job, Scheduler, SchedulerConfig};
use super::error::{EngineError, Result};
use super::model::Model;
use super::sampling::Sampling;

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
    /// Time waiting for a place in the batch before the first forward pass.
    pub queued_ms: f64,
    /// Time to process the prompt and produce the first logits.
    pub prefill_ms: f64,
    /// Time for everything after the first logits.
    pub decode_ms: f64,
}

impl GenerationOutput {
    pub(crate) fn empty() -> Self {
        Self {
            tokens: Vec::new(),
            top_logprobs: Vec::new(),
            finish_reason: FinishReason::Length,
            queued_ms: 0.0,
            prefill_ms: 0.0,
            decode_ms: 0.0,
        }
    }

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
    /// Generates an answer with every layer in this process, as the only sequence of its own
    /// batch; `on_token` sees each token as soon as it is chosen.
    pub fn generate(
        &self,
        request: &GenerateRequest,
        on_token: impl FnMut(u32) + Send,
    ) -> Result<GenerationOutput> {
        let mut result = None;
        {
            let stats = Arc::new(EngineStats::default());
            let mut scheduler = Scheduler::new(self, SchedulerConfig::unbounded(), stats);
            scheduler.submit(Job::Generate(GenerateJob {
                request: request.clone(),
                on_token: Box::new(on_token),
                done: Box::new(|outcome| result = Some(outcome)),
                cancel: Cancellation::new(),
            }));
            while !scheduler.is_idle() {
                scheduler.step();
            }
        }
        result.unwrap_or(Err(EngineError::Stopped))
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
