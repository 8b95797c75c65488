//! End to end with the real SmolLM2 model: a solo chain with the market at genesis and three
//! node runners (`scripts/devnet`), a user query through the sdk's market client, and the
//! faults the market must absorb — a runner killed mid-query, a runner serving a tampered
//! model, a runner restarted mid-round — and a burst of queries each runner serves in shared
//! batches. Every assertion is on chain state (and the runners' own metrics).

use std::path::{Path, PathBuf};
use std::time::Duration;

use nesa_engine::Tokenizer;
use nesa_market::market::{
    NodeOutcome, QueryPhase, QueryResponse, QueryStatus, Sampling, SlashReason,
};
use nesa_sdk::ee::KeyFile;
use nesa_sdk::market::{MarketClient, QueryRequest};
use nesa_sdk::{ChainClient, Keyring};

mod support;
use support::{chat, model_available, nesa, whole_model_answer, Devnet};

/// Asks `prompt` as alice (96 tokens at most) and returns the query id once assigned, plus
/// the client for following it.
async fn ask(
    devnet: &Devnet,
    tokenizer: &Tokenizer,
    prompt: &str,
) -> (
    ChainClient,
    nesa_sdk::cosmrs::crypto::secp256k1::SigningKey,
    u64,
    u128,
) {
    ask_for(devnet, tokenizer, prompt, 96).await
}

/// [`ask`] with at most `max_output_tokens`.
async fn ask_for(
    devnet: &Devnet,
    tokenizer: &Tokenizer,
    prompt: &str,
    max_output_tokens: u32,
) -> (
    ChainClient,
    nesa_sdk::cosmrs::crypto::secp256k1::SigningKey,
    u64,
    u128,
) {
    let client = ChainClient::new(&devnet.rpc()).unwrap();
    let key = Keyring::open(&devnet.dir.join("wallet"))
        .unwrap()
        .signing_key("alice")
        .unwrap();
    let market = MarketClient::connect(&client).await.unwrap();
    let request = QueryRequest {
        kernel_id: 1,
        input: chat(tokenizer, prompt),
        max_output_tokens,
        sampling: Sampling {
            seed: 7,
            temperature_milli: 0,
            top_p_milli: 1000,
        },
        redundancy: Some(3),
    };
    let submitted = market.submit(&key, &request).await.unwrap();
    (client, key, submitted.query_id, submitted.escrow.amount)
}

/// Waits until query `id` is drawn (its nodes assigned), so a fault injected next hits an
/// assigned runner.
async fn drawn(client: &ChainClient, id: u64) {
    let market = MarketClient::connect(client).await.unwrap();
    let started = std::time::Instant::now();
    loop {
        let state = market.query(id).await.unwrap();
        if state.query.status != QueryStatus::Drawing {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "query {id} was never drawn"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn settle(
    client: &ChainClient,
    key: &nesa_sdk::cosmrs::crypto::secp256k1::SigningKey,
    id: u64,
) -> QueryResponse {
    let market = MarketClient::connect(client).await.unwrap();
    market
        .wait_for_settlement(key, id, Duration::from_secs(240), |_| {})
        .await
        .unwrap()
}

/// Unknown kernel, empty prompt, too many tokens, too many output tokens: each refused by the
/// market itself (its quote or a simulation of the submission) with its own reason, before
/// anything is sent, and the user's balance does not move.
async fn rejects_bad_queries_before_funds_move(devnet: &Devnet, tokenizer: &Tokenizer) {
    use nesa_sdk::market::SubmitError;
    let client = ChainClient::new(&devnet.rpc()).unwrap();
    let keyring = Keyring::open(&devnet.dir.join("wallet")).unwrap();
    let key = keyring.signing_key("alice").unwrap();
    let alice = keyring.show("alice").unwrap().address;
    let market = MarketClient::connect(&client).await.unwrap();
    let before = client.balance(&alice, "unes").await.unwrap().amount;
    let good = tokenizer
        .encode(&tokenizer.chat_prompt(None, "hello"))
        .unwrap();
    let request = |kernel_id: u64, input: Vec<u32>, max_output_tokens: u32| QueryRequest {
        kernel_id,
        input,
        max_output_tokens,
        sampling: Sampling::default(),
        redundancy: None,
    };
    type Expected = fn(&SubmitError) -> bool;
    let cases: Vec<(QueryRequest, Expected)> = vec![
        (
            request(99, good.clone(), 16),
            |e| matches!(e, SubmitError::Refused(reason) if reason.contains("kernel 99")),
        ),
        (
            request(1, vec![], 16),
            |e| matches!(e, SubmitError::Refused(reason) if reason.contains("the input is empty")),
        ),
        (request(1, vec![42; 5000], 16), |e| {
            matches!(
                e,
                SubmitError::Refused(reason)
                    if reason.contains("max_input_tokens") || reason.contains("max_payload_bytes")
            )
        }),
        (request(1, good.clone(), 100_000), |e| {
            matches!(
                e,
                SubmitError::Refused(reason) if reason.contains("max_output_tokens 100000")
            )
        }),
    ];
    for (bad, expected) in cases {
        let error = market
            .submit(&key, &bad)
            .await
            .err()
            .expect("a bad query is refused");
        assert!(expected(&error), "unexpected error: {error}");
        assert!(!error.to_string().is_empty());
        assert!(!error.to_string().contains('\n'), "one line: {error}");
        assert!(
            !error.to_string().contains("wasm contract failed"),
            "the market's own words, not the chain's wrapping: {error}"
        );
    }
    assert_eq!(
        client.balance(&alice, "unes").await.unwrap().amount,
        before,
        "no funds moved"
    );
}

fn outcome_of<'a>(state: &'a QueryResponse, node: &str) -> &'a Option<NodeOutcome> {
    &state
        .assignments
        .iter()
        .find(|a| a.node.as_str() == node)
        .expect("assigned")
        .outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_is_answered_by_three_runners_and_survives_their_faults() {
    let Some(model) =
        model_available("a_query_is_answered_by_three_runners_and_survives_their_faults")
    else {
        return;
    };
    let tokenizer = Tokenizer::load(&model).unwrap();

    // 1. Honest round: submitted, assigned to 3, committed, revealed, settled, paid, refunded.
    {
        let devnet = Devnet::up("honest", None);
        rejects_bad_queries_before_funds_move(&devnet, &tokenizer).await;
        let (client, key, id, escrow) =
            ask(&devnet, &tokenizer, "What is the capital of France?").await;
        let state = settle(&client, &key, id).await;
        assert_eq!(state.query.status, QueryStatus::Settled);
        assert_eq!(
            state.assignments.len(),
            3,
            "assigned to three distinct nodes"
        );
        assert!(
            state.assignments.iter().all(|a| a.commitment.is_some()),
            "all committed"
        );
        assert!(
            state
                .assignments
                .iter()
                .all(|a| a.reveal.as_ref().is_some_and(|r| r.matches_commitment)),
            "all revealed"
        );
        let settlement = state.query.settlement.clone().expect("settled");
        assert_eq!(settlement.winners.len(), 3, "CDV: all three agree");
        assert!(state
            .assignments
            .iter()
            .all(|a| matches!(a.outcome, Some(NodeOutcome::Paid { .. }))));
        assert_eq!(
            settlement.paid.u128() + settlement.refunded.u128(),
            escrow,
            "escrow = payments + refund, to the unes"
        );
        let to_nodes: u128 = state
            .assignments
            .iter()
            .map(|a| match a.outcome {
                Some(NodeOutcome::Paid { amount }) => amount.u128(),
                _ => 0,
            })
            .sum();
        assert_eq!(
            to_nodes + settlement.protocol_fee.u128() + settlement.royalty.u128(),
            settlement.paid.u128(),
            "payments = node payouts + protocol fee + kernel royalty"
        );
        eprintln!("settlement: {settlement:?}");
        assert!(
            settlement.refunded.u128() > 0,
            "the unused escrow is refunded"
        );
        let output =
            nesa_market::tokens::decode_token_ids(settlement.output.as_ref().unwrap()).unwrap();
        let answer = tokenizer.decode(&output).unwrap();
        assert!(answer.contains("Paris"), "a sensible answer: {answer}");
        assert!(matches!(state.phase, QueryPhase::Closed));
    }

    // 2. A runner killed right after the draw assigned it: settled by the other two, the dead one slashed.
    {
        let devnet = Devnet::up("killed", None);
        let dead = devnet.runner_address(3);
        let (client, key, id, _) = ask(&devnet, &tokenizer, "Name a primary color.").await;
        drawn(&client, id).await;
        devnet.kill_runner(3);
        let state = settle(&client, &key, id).await;
        assert_eq!(
            state.query.status,
            QueryStatus::Settled,
            "quorum of two reached"
        );
        assert_eq!(state.query.settlement.as_ref().unwrap().winners.len(), 2);
        assert!(
            matches!(
                outcome_of(&state, &dead),
                Some(NodeOutcome::Slashed {
                    reason: SlashReason::NoCommit | SlashReason::NoReveal,
                    ..
                })
            ),
            "the dead runner is slashed for not revealing: {:?}",
            outcome_of(&state, &dead)
        );
    }

    // 3. A runner serving a tampered model ends up outside consensus and is slashed.
    {
        let tampered =
            std::env::temp_dir().join(format!("nesa-e2e-tampered-{}.gguf", std::process::id()));
        let mut bytes = std::fs::read(&model).unwrap();
        // Scramble 4 MiB of tensor data in the middle of the file: different weights, same shape.
        let middle = bytes.len() / 2;
        for (i, byte) in bytes[middle..middle + (4 << 20)].iter_mut().enumerate() {
            *byte = byte.wrapping_mul(31).wrapping_add(i as u8);
        }
        std::fs::write(&tampered, bytes).unwrap();
        let devnet = Devnet::up("tampered", Some(tampered.clone()));
        let cheater = devnet.runner_address(3);
        let (client, key, id, _) = ask(&devnet, &tokenizer, "What is the capital of France?").await;
        let state = settle(&client, &key, id).await;
        assert_eq!(state.query.status, QueryStatus::Settled);
        assert!(
            matches!(
                outcome_of(&state, &cheater),
                Some(NodeOutcome::Slashed {
                    reason: SlashReason::Outlier,
                    ..
                })
            ),
            "the tampered runner is an outlier: {:?}",
            outcome_of(&state, &cheater)
        );
        let _ = std::fs::remove_file(tampered);
    }

    // 4. A runner restarted mid-round loses nothing: it resumes from chain state and is paid.
    {
        let devnet = Devnet::up("restart", None);
        let restarted = devnet.runner_address(2);
        let (client, key, id, _) = ask(&devnet, &tokenizer, "Say hello.").await;
        drawn(&client, id).await;
        devnet.kill_runner(2);
        let out = devnet.script("up");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let state = settle(&client, &key, id).await;
        assert_eq!(state.query.status, QueryStatus::Settled);
        assert!(
            matches!(
                outcome_of(&state, &restarted),
                Some(NodeOutcome::Paid { .. })
            ),
            "the restarted runner finished its work: {:?}",
            outcome_of(&state, &restarted)
        );
        assert!(devnet
            .log("runner2/runner.log")
            .contains("resuming unfinished query"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_kernel_answers_users_holding_its_key_and_runners_see_only_permuted_ids() {
    let Some(model) = model_available(
        "an_encrypted_kernel_answers_users_holding_its_key_and_runners_see_only_permuted_ids",
    ) else {
        return;
    };
    let tokenizer = Tokenizer::load(&model).unwrap();
    let devnet = Devnet::start("encrypted", None, true);
    let wallet = devnet.dir.join("wallet");
    let question = "What is the capital of France?";
    let system = "You are a helpful AI assistant.";
    let ask = |home: &Path, extra: &[&str]| {
        let mut args = vec![
            "ask",
            question,
            "--kernel",
            "1",
            "--from",
            "alice",
            "--system",
            system,
            "--max-tokens",
            "32",
            "--output",
            "json",
        ];
        args.extend_from_slice(extra);
        nesa(&devnet, home, &args)
    };

    // The user holds the key (imported by the devnet): the answer is the plaintext model's.
    let (ok, stdout, stderr) = ask(&wallet, &[]);
    assert!(ok, "nesa ask failed: {stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let answer = summary["answer"].as_str().unwrap_or_default();
    assert!(answer.contains("Paris"), "answer: {answer:?}");

    // What every runner read from the chain: permuted ids, no plaintext pair of the prompt.
    let client = ChainClient::new(&devnet.rpc()).unwrap();
    let market = MarketClient::connect(&client).await.unwrap();
    let state = market
        .query(summary["query_id"].as_u64().unwrap())
        .await
        .unwrap();
    assert_eq!(state.query.status, QueryStatus::Settled);
    let sent = nesa_market::tokens::decode_token_ids(&state.query.input).unwrap();
    let plain = tokenizer
        .encode(&tokenizer.chat_prompt(Some(system), question))
        .unwrap();
    assert_eq!(sent.len(), plain.len());
    for pair in plain.windows(2) {
        assert!(
            !sent.windows(2).any(|w| w == pair),
            "plaintext pair {pair:?} on chain"
        );
    }
    let output = state.query.settlement.unwrap().output.unwrap();
    let output = nesa_market::tokens::decode_token_ids(&output).unwrap();
    assert!(
        !tokenizer
            .decode(&output)
            .unwrap_or_default()
            .contains("Paris"),
        "the output on chain reads as plaintext"
    );

    // No key in the wallet: refused before anything is submitted, with the way out.
    let keyless = devnet.dir.join("keyless-wallet");
    std::fs::create_dir_all(&keyless).unwrap();
    std::fs::copy(wallet.join("keyring.json"), keyless.join("keyring.json")).unwrap();
    let (ok, _, stderr) = ask(&keyless, &[]);
    assert!(!ok);
    assert!(stderr.contains("nesa keys ee import"), "{stderr}");

    // Another kernel's key: refused, never garbage decoded as an answer.
    let other = devnet.dir.join("other.key");
    let mut key = nesa_sdk::ee::EeKey::generate(
        nesa_sdk::ee::Transform::SignedPermutation,
        tokenizer.vocab_size() as u32,
    );
    key.kernel_sha256 = Some(hex::encode([7u8; 32]));
    key.save(&other).unwrap();
    let (ok, _, stderr) = ask(&wallet, &["--ee-key", other.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("wrong key"), "{stderr}");
    let queries = market.query(2).await;
    assert!(queries.is_err(), "nothing was submitted with the wrong key");
}

/// The last block's app hash at `height` as validator `rpc` reports it.
async fn app_hash_at(rpc: &str, height: u64) -> Option<String> {
    let url = format!("{rpc}/block?height={height}");
    let body: serde_json::Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
    body["result"]["block"]["header"]["app_hash"]
        .as_str()
        .map(str::to_string)
}

/// The market on four CometBFT validators: a query settles while one validator's application
/// is killed mid-round and restarted, and every validator reports the same app hash at every
/// height.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_settles_on_four_cometbft_validators_while_one_is_killed_and_restarted() {
    const TEST: &str =
        "a_query_settles_on_four_cometbft_validators_while_one_is_killed_and_restarted";
    let Some(model) = model_available(TEST) else {
        return;
    };
    if nesa_testkit::require_tool(
        TEST,
        "cometbft",
        "scripts/setup installs it where Go is present",
    )
    .is_none()
    {
        return;
    }
    let tokenizer = Tokenizer::load(&model).unwrap();
    let devnet = Devnet::start_network("cometbft", None, false, 4);
    let (client, key, id, escrow) =
        ask(&devnet, &tokenizer, "What is the capital of France?").await;

    // Validator 3's application dies mid-round; its CometBFT stops with it; `up` restarts both
    // and the node catches up from its peers.
    let killed = devnet.localnet(&["kill-app", "3"]);
    assert!(
        killed.status.success(),
        "{}",
        String::from_utf8_lossy(&killed.stderr)
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let restarted = devnet.localnet(&["up"]);
    assert!(
        restarted.status.success(),
        "restart: {}{}",
        String::from_utf8_lossy(&restarted.stdout),
        String::from_utf8_lossy(&restarted.stderr)
    );

    let state = settle(&client, &key, id).await;
    assert_eq!(state.query.status, QueryStatus::Settled);
    let settlement = state.query.settlement.clone().expect("settled");
    assert_eq!(settlement.winners.len(), 3, "all three runners agree");
    assert_eq!(
        settlement.paid.u128() + settlement.refunded.u128(),
        escrow,
        "escrow = payments + refund, to the unes"
    );

    // Every validator, the restarted one included, reports the same app hash at every height.
    let settled_height = client.latest_height().await.unwrap().value();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    for height in 1..=settled_height {
        let mut hashes = vec![];
        for i in 0..4 {
            let rpc = devnet.validator_rpc(i);
            let hash = loop {
                if let Some(hash) = app_hash_at(&rpc, height).await {
                    break hash;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "validator {i} never reached height {height}"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            };
            hashes.push(hash);
        }
        assert!(
            hashes.iter().all(|h| h == &hashes[0]),
            "validators disagree at height {height}: {hashes:?}"
        );
    }
}

/// The value of an unlabelled Prometheus sample in `text`.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
        .trim()
        .parse()
        .unwrap()
}

/// Twenty queries land within a block or two: every runner takes all of them on, generates
/// them in shared batches on its one core, and commits each in its window; every query settles
/// with all three nodes paid (the same tokens from each, however each batched them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_twenty_queries_settles_with_every_runner_agreeing_from_shared_batches() {
    use cosmwasm_std::Binary;
    use nesa_market::events::market::{attr, QUERY_SUBMITTED};
    use nesa_market::market::{ExecuteMsg, QueryMsg, QuoteResponse};
    use nesa_sdk::{Coin, Coins, SendTxOptions, TxSender};
    const BURST: u64 = 20;
    let Some(path) = model_available(
        "a_burst_of_twenty_queries_settles_with_every_runner_agreeing_from_shared_batches",
    ) else {
        return;
    };
    let tokenizer = Tokenizer::load(&path).unwrap();
    let devnet = Devnet::up("burst", None);
    let client = ChainClient::new(&devnet.rpc()).unwrap();
    let key = Keyring::open(&devnet.dir.join("wallet"))
        .unwrap()
        .signing_key("alice")
        .unwrap();
    let contracts = client.market_contracts().await.unwrap();
    let mut sender = TxSender::new(&client, &key).unwrap();
    let mut sent = Vec::new();
    for i in 0..BURST {
        let question = format!("Give one word that rhymes with the number {i}.");
        let input = tokenizer
            .encode(&tokenizer.chat_prompt(None, &question))
            .unwrap();
        let quote: QuoteResponse = client
            .query_contract(
                &contracts.market,
                &QueryMsg::Quote {
                    kernel_id: 1,
                    input_tokens: input.len() as u32,
                    max_output_tokens: 32,
                    redundancy: Some(3),
                },
            )
            .await
            .unwrap();
        let msg = ExecuteMsg::SubmitQuery {
            kernel_id: 1,
            input: Binary::from(nesa_market::tokens::encode_token_ids(&input)),
            max_output_tokens: 32,
            sampling: Sampling {
                seed: i,
                // Half greedy, half sampled: both must agree across runners.
                temperature_milli: if i % 2 == 0 { 0 } else { 800 },
                top_p_milli: 950,
            },
            redundancy: Some(3),
            user_entropy: Binary::from(vec![i as u8; 32]),
        };
        let escrow = Coin::new(quote.escrow.amount.u128(), &quote.escrow.denom).unwrap();
        let signed = sender
            .broadcast_contract(
                &contracts.market,
                &msg,
                &Coins::from(escrow),
                &SendTxOptions::default(),
            )
            .await
            .unwrap();
        sent.push(signed.hash);
    }
    let mut ids = Vec::new();
    let mut heights = Vec::new();
    for hash in sent {
        let outcome = client
            .wait_for_tx(hash, Duration::from_secs(60))
            .await
            .unwrap();
        heights.push(outcome.height);
        ids.push(
            outcome
                .contract_attribute::<u64>(QUERY_SUBMITTED, attr::QUERY_ID)
                .unwrap(),
        );
    }
    let span = heights.iter().max().unwrap() - heights.iter().min().unwrap();
    assert!(
        span <= 3,
        "the burst landed within a few blocks: {heights:?}"
    );
    let market = MarketClient::connect(&client).await.unwrap();
    for &id in &ids {
        let state = market
            .wait_for_settlement(&key, id, Duration::from_secs(300), |_| {})
            .await
            .unwrap();
        assert_eq!(
            state.query.status,
            QueryStatus::Settled,
            "query {id}: {state:?}"
        );
        assert_eq!(state.assignments.len(), 3, "query {id}");
        for assignment in &state.assignments {
            assert!(
                matches!(assignment.outcome, Some(NodeOutcome::Paid { .. })),
                "query {id}: {} was not paid: {:?}",
                assignment.node,
                assignment.outcome
            );
        }
    }
    for i in 0..3u16 {
        let url = format!("http://127.0.0.1:{}/metrics", devnet.api_port + i);
        let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
        let runner = i + 1;
        assert!(
            metric(&text, "nesa_engine_batch_size_max") > 1.0,
            "runner{runner} batched queries together:\n{text}"
        );
        assert_eq!(
            metric(&text, "nesa_node_slashes_total"),
            0.0,
            "runner{runner}"
        );
        assert_eq!(
            metric(&text, "nesa_node_draws_declined_total"),
            0.0,
            "runner{runner}"
        );
        assert!(
            metric(&text, "nesa_node_queries_served_total") >= BURST as f64,
            "runner{runner} served every query"
        );
    }
}

/// A copy of `model` whose tensor `tensor` has its bytes scrambled: same shapes, other
/// weights in that block only.
fn tamper_tensor(model: &Path, tensor: &str) -> PathBuf {
    let content = nesa_sdk::gguf::read_content(model).unwrap();
    let mut offsets: Vec<u64> = content.tensor_infos.values().map(|i| i.offset).collect();
    offsets.sort_unstable();
    let start = content.tensor_infos[tensor].offset;
    let end = offsets.into_iter().find(|&o| o > start).unwrap();
    let base = content.tensor_data_offset;
    let mut bytes = std::fs::read(model).unwrap();
    for (i, byte) in bytes[(base + start) as usize..(base + end) as usize]
        .iter_mut()
        .enumerate()
    {
        *byte = byte.wrapping_mul(31).wrapping_add(i as u8);
    }
    let out = std::env::temp_dir().join(format!(
        "nesa-e2e-{}-{}.gguf",
        tensor.replace('.', "-"),
        std::process::id()
    ));
    std::fs::write(&out, bytes).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_kernel_answers_through_pipelines_pays_by_layers_and_slashes_a_tampered_shard() {
    let Some(model) = model_available(
        "a_sharded_kernel_answers_through_pipelines_pays_by_layers_and_slashes_a_tampered_shard",
    ) else {
        return;
    };
    let tokenizer = Tokenizer::load(&model).unwrap();
    // Six runners, runner i serving range (i − 1) mod 2: runner 4 serves blocks 15..30 with a
    // scrambled block 20.
    let tampered = tamper_tensor(&model, "blk.20.ffn_down.weight");
    let devnet = Devnet::launch("sharded", Some((4, tampered.clone())), false, 1, 2);
    let cheater = devnet.runner_address(4);

    let question = "What is the capital of France?";
    let (client, key, query_id, escrow) = ask_for(&devnet, &tokenizer, question, 32).await;
    let state = settle(&client, &key, query_id).await;
    assert_eq!(state.query.status, QueryStatus::Settled);
    assert_eq!(state.query.shards.len(), 2);
    assert_eq!(state.assignments.len(), 6, "three pipelines of two seats");

    // The answer is, token for token, what one node running the whole model answers.
    let settlement = state.query.settlement.clone().expect("settled");
    let output =
        nesa_market::tokens::decode_token_ids(settlement.output.as_ref().unwrap()).unwrap();
    let alone = whole_model_answer(&model, &tokenizer, question, 32);
    assert_eq!(output, alone, "{}", tokenizer.decode(&output).unwrap());
    assert!(tokenizer.decode(&output).unwrap().contains("Paris"));

    // The tampered shard is found and slashed alone; every other seat is paid its layers'
    // share of the pipeline's pay: 15 of 30 blocks each.
    let terms = state
        .query
        .terms
        .clone()
        .expect("terms fixed at submission");
    let gross = cosmwasm_std::Uint128::new(pipeline_pay(&state)).multiply_ratio(15u128, 30u128);
    let net = gross - gross.mul_floor(terms.protocol_fee) - gross.mul_floor(terms.kernel_royalty);
    for assignment in &state.assignments {
        if assignment.node.as_str() == cheater {
            assert!(
                matches!(
                    assignment.outcome,
                    Some(NodeOutcome::Slashed {
                        reason: SlashReason::Divergent,
                        ..
                    })
                ),
                "the tampered shard is slashed as divergent: {:?}",
                assignment.outcome
            );
        } else {
            assert_eq!(
                assignment.outcome,
                Some(NodeOutcome::Paid { amount: net }),
                "seat {}/{} ({})",
                assignment.pipeline,
                assignment.span,
                assignment.node
            );
        }
    }
    assert_eq!(
        settlement.paid.u128() + settlement.refunded.u128(),
        escrow,
        "escrow = payments + refund, to the unes"
    );
    assert_eq!(settlement.paid, gross * cosmwasm_std::Uint128::new(5));
    // The seats past span 0 served the streams their drivers claimed.
    let claimed = (1..=6)
        .filter(|i| {
            devnet
                .log(&format!("runner{i}/runner.log"))
                .contains("the pipeline's driver opened this node's seat")
        })
        .count();
    assert_eq!(claimed, 3, "every span-1 seat was opened by its own driver");
    drop(devnet);
    let _ = std::fs::remove_file(tampered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_kernel_runs_sharded_on_a_devnet_and_answers_as_one_plaintext_node() {
    // Six runners serving the two halves of the ee-v1 copy; the wallet holds the key.
    let Some((model, tokenizer, devnet)) = two_span_devnet(
        "an_encrypted_kernel_runs_sharded_on_a_devnet_and_answers_as_one_plaintext_node",
        "sharded-encrypted",
        true,
    ) else {
        return;
    };
    let question = "What is the capital of France?";
    let (ok, stdout, stderr) = nesa(
        &devnet,
        &devnet.dir.join("wallet"),
        &[
            "ask",
            question,
            "--kernel",
            "1",
            "--from",
            "alice",
            "--system",
            "You are a helpful AI assistant.",
            "--max-tokens",
            "32",
            "--output",
            "json",
        ],
    );
    assert!(ok, "nesa ask failed: {stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();

    // Decrypted on the user's side, the answer is what one plaintext node answers.
    let alone = whole_model_answer(&model, &tokenizer, question, 32);
    assert_eq!(
        summary["answer"].as_str().unwrap(),
        tokenizer.decode(&alone).unwrap()
    );

    // On chain: two spans, three pipelines, permuted ids in and out, escrow exactly split.
    let client = ChainClient::new(&devnet.rpc()).unwrap();
    let market = MarketClient::connect(&client).await.unwrap();
    let state = market
        .query(summary["query_id"].as_u64().unwrap())
        .await
        .unwrap();
    assert_eq!(state.query.status, QueryStatus::Settled);
    assert_eq!(state.query.shards.len(), 2);
    assert_eq!(state.assignments.len(), 6, "three pipelines of two seats");
    let sent = nesa_market::tokens::decode_token_ids(&state.query.input).unwrap();
    assert_ne!(
        sent,
        chat(&tokenizer, question),
        "the prompt went on chain permuted"
    );
    let settlement = state.query.settlement.clone().unwrap();
    let output =
        nesa_market::tokens::decode_token_ids(settlement.output.as_ref().unwrap()).unwrap();
    assert_ne!(output, alone, "the answer on chain is permuted too");
    assert_eq!(output.len(), alone.len());
    assert!(state
        .assignments
        .iter()
        .all(|a| matches!(a.outcome, Some(NodeOutcome::Paid { .. }))));
    assert_eq!(
        settlement.paid.u128() + settlement.refunded.u128(),
        state.query.escrow.amount.u128(),
        "escrow = payments + refund, to the unes"
    );
}

/// The model, its tokenizer and a devnet of six runners serving the model's two spans
/// (`encrypted`: its ee-v1 copy), for `test`; `None` when the model is missing.
fn two_span_devnet(
    test: &str,
    name: &str,
    encrypted: bool,
) -> Option<(std::path::PathBuf, Tokenizer, Devnet)> {
    let model = model_available(test)?;
    let tokenizer = Tokenizer::load(&model).unwrap();
    let devnet = Devnet::launch(name, None, encrypted, 1, 2);
    Some((model, tokenizer, devnet))
}

/// What one pipeline of a settled query earns before fees: the prompt and the generated
/// tokens at the kernel's prices.
fn pipeline_pay(state: &QueryResponse) -> u128 {
    let query = &state.query;
    let output_tokens = nesa_market::tokens::decode_token_ids(
        query.settlement.as_ref().unwrap().output.as_ref().unwrap(),
    )
    .unwrap()
    .len() as u128;
    query.input_tokens as u128 * query.price_per_input_token.u128()
        + output_tokens * query.price_per_output_token.u128()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_killed_mid_answer_is_replaced_for_its_span_and_goes_unpaid_not_slashed() {
    let Some((model, tokenizer, devnet)) = two_span_devnet(
        "a_shard_killed_mid_answer_is_replaced_for_its_span_and_goes_unpaid_not_slashed",
        "shard-killed",
        false,
    ) else {
        return;
    };
    let question = "Write a short story about a lighthouse keeper.";
    let (client, key, query_id, escrow) = ask_for(&devnet, &tokenizer, question, 96).await;
    // Kill the first span-1 seat its driver opens, while the answer streams through it.
    let log = "the pipeline's driver opened this node's seat";
    let started = std::time::Instant::now();
    let victim = loop {
        if let Some(i) = [2, 4, 6]
            .into_iter()
            .find(|i| devnet.log(&format!("runner{i}/runner.log")).contains(log))
        {
            break i;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no driver opened a seat"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // A moment for the prompt to pass and decoding to start (96 tokens take seconds here).
    tokio::time::sleep(Duration::from_millis(300)).await;
    devnet.kill_runner(victim);
    let dead = devnet.runner_address(victim);
    let state = settle(&client, &key, query_id).await;
    assert_eq!(state.query.status, QueryStatus::Settled);

    // The answer is still the whole model's, token for token.
    let settlement = state.query.settlement.clone().expect("settled");
    let output =
        nesa_market::tokens::decode_token_ids(settlement.output.as_ref().unwrap()).unwrap();
    let alone = whole_model_answer(&model, &tokenizer, question, 96);
    assert_eq!(output, alone);
    // The dead shard never committed: not paid, not slashed. Every other seat is paid.
    for assignment in &state.assignments {
        if assignment.node.as_str() == dead {
            assert_eq!(assignment.outcome, Some(NodeOutcome::Unpaid {}));
        } else {
            assert!(
                matches!(assignment.outcome, Some(NodeOutcome::Paid { .. })),
                "seat {}/{}: {:?}",
                assignment.pipeline,
                assignment.span,
                assignment.outcome
            );
        }
    }
    assert_eq!(
        settlement.paid.u128() + settlement.refunded.u128(),
        escrow,
        "escrow = payments + refund, to the unes"
    );
    // Its driver moved its blocks to another pipeline's seat.
    let replaced = (1..=5).step_by(2).any(|i| {
        devnet
            .log(&format!("runner{i}/runner.log"))
            .contains("a pipeline hop was replaced")
    });
    assert!(replaced, "a driver replaced the dead hop");
}
