//! `nesa gateway` from outside, on a devnet with the real model: the official OpenAI Python
//! client gets chat completions, streamed and not, for a plaintext and an ee-v1 kernel, and
//! OpenAI-shaped errors that spend nothing; the web chat page, driven by headless Chromium,
//! asks a question and shows the settled answer and the payments. Every claim the clients
//! make is checked against the chain.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nesa_engine::Tokenizer;
use nesa_market::market::{QueryResponse, QueryStatus};
use nesa_sdk::market::MarketClient;
use nesa_sdk::{
    msgs::bank_send, signing_key_from_mnemonic, Address, AddressExt, ChainClient, Coin, Keyring,
    SendTxOptions,
};
use serde_json::Value;

mod support;
use support::{bin_dir, free_port, model_available, nesa, whole_model_answer, Devnet};

/// A running `nesa gateway`, stopped on drop.
struct Gateway {
    child: Child,
    url: String,
    api_key: String,
}

impl Gateway {
    /// The gateway paying from `key` of wallet `home`, on a free port.
    fn start(devnet: &Devnet, home: &Path, key: &str, model: &Path) -> Gateway {
        Self::start_with(devnet, home, key, model, &[])
    }

    /// The same, with more `nesa gateway` arguments.
    fn start_with(
        devnet: &Devnet,
        home: &Path,
        key: &str,
        model: &Path,
        extra: &[&str],
    ) -> Gateway {
        let port = free_port();
        let api_key = format!("nesa-e2e-{}-{port}", std::process::id());
        let log = std::fs::File::create(devnet.dir.join(format!("gateway-{key}.log"))).unwrap();
        let child = Command::new(bin_dir().join("nesa"))
            .args(["gateway", "--from", key, "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--model")
            .arg(model)
            .arg("--home")
            .arg(home)
            .args(["--node", &devnet.rpc(), "--keyring-backend", "test"])
            .args(extra)
            .env("NESA_GATEWAY_API_KEY", &api_key)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the gateway did not listen: {}",
                devnet.log(&format!("gateway-{key}.log"))
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Gateway {
            child,
            url: format!("http://127.0.0.1:{port}"),
            api_key,
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python environment `scripts/setup` creates with the `openai` client.
fn python(test: &str) -> Option<PathBuf> {
    let env = std::env::var_os("NESA_PYTHON_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| dirs_home().join(".cache/nesa/python"));
    nesa_testkit::require_file(
        test,
        &env.join("bin/python"),
        "scripts/setup creates it with the openai client",
    )
}

fn dirs_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// Runs a client program; returns the JSON object it prints.
fn run_client(program: &Path, args: &[&str], dir: &Path) -> Value {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    client_output(program, &out)
}

/// The JSON object a client program printed last, once it succeeded.
fn client_output(program: &Path, out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{} failed:\n{}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// The unes balance of `home`'s key `name`.
async fn balance(client: &ChainClient, home: &Path, name: &str) -> u128 {
    let address = Keyring::open(home).unwrap().show(name).unwrap().address;
    match client.balance(&address, "unes").await {
        Ok(coin) => coin.amount,
        Err(nesa_sdk::ClientError::AccountNotFound(_)) => 0,
        Err(e) => panic!("{e}"),
    }
}

/// `amount` as the page writes it (`en-US` digit grouping).
fn as_shown(amount: u128) -> String {
    let digits = amount.to_string();
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

fn unes(value: &Value) -> u128 {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| value.as_u64().map(u128::from))
        .unwrap_or_else(|| panic!("not an amount: {value}"))
}

/// The query of a settled turn the page showed (its settlement table's "query" row): settled
/// on chain, with the answer shown as its output.
async fn shown_answer_is_the_chains(
    market: &MarketClient<'_>,
    tokenizer: &Tokenizer,
    turn: &Value,
) -> QueryResponse {
    let query_id: u64 = turn["settlement"]["query"]
        .as_str()
        .and_then(|q| q.split_whitespace().next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no query shown: {turn}"));
    let state = market.query(query_id).await.unwrap();
    assert_eq!(state.query.status, QueryStatus::Settled);
    let result = state.query.settlement.as_ref().unwrap();
    let output = nesa_market::tokens::decode_token_ids(result.output.as_ref().unwrap()).unwrap();
    assert_eq!(
        turn["answer"].as_str().unwrap(),
        tokenizer.decode(&output).unwrap()
    );
    state
}

/// The settlement a client reported, checked against the chain: the query settled, its
/// escrow split into payments, fee, royalty and refund to the unes, as reported.
async fn check_settlement(market: &MarketClient<'_>, nesa: &Value) -> QueryResponse {
    let id = nesa["query_id"].as_u64().unwrap();
    let state = market.query(id).await.unwrap();
    assert_eq!(state.query.status, QueryStatus::Settled);
    let settlement = state.query.settlement.as_ref().unwrap();
    let (paid, fee, royalty, refunded) = (
        unes(&nesa["paid_to_nodes"]),
        unes(&nesa["protocol_fee"]),
        unes(&nesa["kernel_royalty"]),
        unes(&nesa["refunded"]),
    );
    assert_eq!(fee, settlement.protocol_fee.u128());
    assert_eq!(royalty, settlement.royalty.u128());
    assert_eq!(refunded, settlement.refunded.u128());
    assert_eq!(
        unes(&nesa["escrow"]["amount"]),
        state.query.escrow.amount.u128()
    );
    assert_eq!(
        paid + fee + royalty + refunded,
        state.query.escrow.amount.u128(),
        "escrow = payments + fee + royalty + refund"
    );
    assert_eq!(
        unes(&nesa["cost"]),
        state.query.escrow.amount.u128() - refunded
    );
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_client_chats_through_the_gateway_with_plaintext_and_encrypted_kernels() {
    let test = "the_openai_client_chats_through_the_gateway_with_plaintext_and_encrypted_kernels";
    let (Some(model), Some(python)) = (model_available(test), python(test)) else {
        return;
    };
    let tokenizer = Tokenizer::load(&model).unwrap();
    let script = repo().join("tests/python/openai_client.py");
    let script = script.to_str().unwrap();
    // What one node running the model answers the client's question (system turn included).
    let answer = whole_model_answer(&model, &tokenizer, "What is the capital of France?", 24);
    let expected = tokenizer.decode(&answer).unwrap();
    for encrypted in [false, true] {
        let devnet = Devnet::start(
            if encrypted { "gateway-ee" } else { "gateway" },
            None,
            encrypted,
        );
        let wallet = devnet.dir.join("wallet");
        let empty_home = devnet.dir.join("empty-wallet");
        let (ok, _, stderr) = nesa(&devnet, &empty_home, &["keys", "add", "empty"]);
        assert!(ok, "{stderr}");
        if encrypted {
            // A wallet without the kernel's key cannot use it at all: the empty one gets it.
            let key = devnet.dir.join("kernel.ee.key");
            let (ok, _, stderr) = nesa(
                &devnet,
                &empty_home,
                &["keys", "ee", "import", key.to_str().unwrap()],
            );
            assert!(ok, "{stderr}");
        }
        let gateway = Gateway::start(&devnet, &wallet, "alice", &model);
        let empty = Gateway::start(&devnet, &empty_home, "empty", &model);
        let client = ChainClient::new(&devnet.rpc()).unwrap();
        let market = MarketClient::connect(&client).await.unwrap();

        // Wrong model, wrong key, empty wallet: OpenAI's errors, and nothing spent or submitted.
        let before = balance(&client, &wallet, "alice").await;
        let errors = run_client(
            &python,
            &[
                script,
                "errors",
                &format!("{}/v1", gateway.url),
                &gateway.api_key,
                &format!("{}/v1", empty.url),
                &empty.api_key,
            ],
            repo(),
        );
        for case in ["unknown_model", "unknown_model_streamed"] {
            let error = &errors[case];
            assert_eq!(error["class"], "NotFoundError", "{case}: {error}");
            assert_eq!(error["status"], 404);
            assert_eq!(error["code"], "model_not_found");
        }
        assert_eq!(errors["wrong_api_key"]["class"], "AuthenticationError");
        assert_eq!(errors["wrong_api_key"]["status"], 401);
        for case in ["empty_wallet", "empty_wallet_streamed"] {
            let error = &errors[case];
            assert_eq!(error["class"], "RateLimitError", "{case}: {error}");
            assert_eq!(error["code"], "insufficient_quota");
            assert!(
                error["message"].as_str().unwrap().contains("holds 0unes"),
                "{error}"
            );
        }
        assert_eq!(balance(&client, &wallet, "alice").await, before);
        assert_eq!(balance(&client, &empty_home, "empty").await, 0);
        assert!(market.query(1).await.is_err(), "no query was submitted");

        // A chat completion, then the same streamed: the model's own answer, settled on chain.
        let chat = run_client(
            &python,
            &[
                script,
                "chat",
                &format!("{}/v1", gateway.url),
                &gateway.api_key,
            ],
            repo(),
        );
        let details = &chat["model_details"][0];
        assert_eq!(
            details["encryption"],
            if encrypted { "ee-v1" } else { "none" }
        );
        assert_eq!(details["nodes_serving"], 3);
        let completion = &chat["completion"];
        let stream = &chat["stream"];
        assert_eq!(completion["object"], "chat.completion");
        assert_eq!(completion["role"], "assistant");
        assert_eq!(completion["content"].as_str().unwrap(), expected);
        assert_eq!(stream["content"].as_str().unwrap(), expected);
        assert!(
            stream["pieces"].as_u64().unwrap() > 1,
            "streamed piece by piece"
        );
        assert_eq!(completion["finish_reason"], stream["finish_reason"]);
        assert_eq!(completion["usage"], stream["usage"]);
        assert_eq!(
            completion["usage"]["completion_tokens"].as_u64().unwrap(),
            answer.len() as u64
        );
        let mut spent = 0;
        for reported in [&completion["nesa"], &stream["nesa"]] {
            let state = check_settlement(&market, reported).await;
            assert_eq!(
                completion["usage"]["prompt_tokens"].as_u64().unwrap(),
                u64::from(state.query.input_tokens)
            );
            assert_eq!(reported["encrypted"], encrypted);
            assert!(
                unes(&reported["fee"]) > 0,
                "the submission's fee is reported"
            );
            spent += unes(&reported["cost"]) + unes(&reported["fee"]);
            if encrypted {
                // The chain saw permuted ids: no plaintext pair of the prompt.
                let sent = nesa_market::tokens::decode_token_ids(&state.query.input).unwrap();
                let plain = support::chat(&tokenizer, "What is the capital of France?");
                assert_eq!(sent.len(), plain.len());
                for pair in plain.windows(2) {
                    assert!(
                        !sent.windows(2).any(|w| w == pair),
                        "plaintext pair {pair:?} on chain"
                    );
                }
            }
        }
        let after = balance(&client, &wallet, "alice").await;
        assert!(
            before - after >= spent,
            "the wallet paid the two queries and their fees: {before} → {after}, {spent}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_chat_page_asks_in_a_headless_browser_and_shows_the_settled_answer_and_payments() {
    /// The Keplr user's wallet: an account that is not in the devnet's genesis.
    const KEPLR_MNEMONIC: &str = "test test test test test test test test test test test junk";
    const KEPLR_FUNDS: u128 = 5_000_000;
    let test =
        "the_web_chat_page_asks_in_a_headless_browser_and_shows_the_settled_answer_and_payments";
    let puppeteer = repo().join("tests/js/node_modules/puppeteer-core/package.json");
    let (Some(model), Some(node), Some(_chromium), Some(_)) = (
        model_available(test),
        nesa_testkit::require_tool(test, "node", "install Node.js 18 or newer"),
        nesa_testkit::require_tool(test, "chromium", "scripts/setup installs Debian's chromium"),
        nesa_testkit::require_file(test, &puppeteer, "scripts/setup installs tests/js"),
    ) else {
        return;
    };
    let tokenizer = Tokenizer::load(&model).unwrap();
    let devnet = Devnet::up("web-chat", None);
    let wallet = devnet.dir.join("wallet");
    // The chain info the page offers Keplr, as `nesad chain-info` writes it for users.
    let chain_info = devnet.dir.join("keplr-chain-info.json");
    let out = Command::new(bin_dir().join("nesad"))
        .args(["chain-info", "--rpc", &devnet.rpc(), "--rest"])
        .arg(format!("http://127.0.0.1:{}", devnet.rest_port))
        .arg("--home")
        .arg(devnet.dir.join("chain"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&chain_info, &out.stdout).unwrap();
    let gateway = Gateway::start_with(
        &devnet,
        &wallet,
        "alice",
        &model,
        &["--keplr-chain-info", chain_info.to_str().unwrap()],
    );
    let client = ChainClient::new(&devnet.rpc()).unwrap();
    let keplr_address = Address::from_public_key(
        &signing_key_from_mnemonic(KEPLR_MNEMONIC)
            .unwrap()
            .public_key(),
    )
    .unwrap();
    let alice = Keyring::open(&wallet)
        .unwrap()
        .signing_key("alice")
        .unwrap();
    let alice_address = Address::from_public_key(&alice.public_key()).unwrap();
    client
        .send_tx(
            &alice,
            vec![bank_send(
                &alice_address,
                &keplr_address,
                &Coin::unes(KEPLR_FUNDS).into(),
            )
            .unwrap()],
            &SendTxOptions::default(),
        )
        .await
        .unwrap();
    let market = MarketClient::connect(&client).await.unwrap();
    let shots = bin_dir().join("test-output/web-chat");
    let _ = std::fs::remove_dir_all(&shots);
    let before = balance(&client, &wallet, "alice").await;

    let out = Command::new(&node)
        .args([
            "browser/chat-page.mjs",
            &format!("{}/", gateway.url),
            &gateway.api_key,
        ])
        .arg(&shots)
        .env("KEPLR_MNEMONIC", KEPLR_MNEMONIC)
        .current_dir(repo().join("tests/js"))
        .output()
        .unwrap();
    let page = client_output(&node, &out);
    eprintln!("screenshots of each step: {}", shots.display());
    assert!(page["wrongKey"].as_str().unwrap().contains("Wrong API key"));
    assert_eq!(page["model"], "SmolLM2-135M-Instruct");
    assert!(page["modelInfo"]
        .as_str()
        .unwrap()
        .contains("3 nodes serving"));
    assert_eq!(page["state"], "settled", "{page}");
    assert_eq!(
        page["offLoopback"],
        serde_json::json!([]),
        "the page reached beyond loopback"
    );
    assert_eq!(unes(&page["balanceBefore"]), before);

    // The answer and payments shown are the chain's.
    let settlement = &page["settlement"];
    let state = shown_answer_is_the_chains(&market, &tokenizer, &page).await;
    // The page asks with its default system prompt, as the model answers best.
    assert!(
        page["answer"].as_str().unwrap().contains("Paris"),
        "{}",
        page["answer"]
    );
    let result = state.query.settlement.as_ref().unwrap();
    let shown = |row: &str| -> u128 {
        settlement[row]
            .as_str()
            .unwrap()
            .trim_end_matches(" unes")
            .replace(',', "")
            .parse()
            .unwrap()
    };
    assert_eq!(shown("escrow"), state.query.escrow.amount.u128());
    assert_eq!(shown("protocol fee"), result.protocol_fee.u128());
    assert_eq!(shown("kernel royalty"), result.royalty.u128());
    assert_eq!(shown("refunded"), result.refunded.u128());
    assert_eq!(
        shown("paid to nodes")
            + shown("protocol fee")
            + shown("kernel royalty")
            + shown("refunded"),
        shown("escrow")
    );
    assert_eq!(settlement["agreeing (paid)"], "3 of 3");
    assert!(
        unes(&page["balanceAfter"]) < before,
        "the balance shown went down"
    );

    // Paid with Keplr: the wallet was offered the chain info, signed once, and paid the escrow
    // and the fee it chose; the gateway's wallet paid nothing for it.
    let keplr = &page["keplr"];
    assert_eq!(keplr["state"], "settled", "{keplr}");
    assert_eq!(keplr["payer"], "keplr");
    assert_eq!(keplr["address"], keplr_address.to_string());
    let chain_id = client.chain_id().await.unwrap().to_string();
    let methods: Vec<&str> = keplr["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        methods,
        ["enable", "experimentalSuggestChain", "enable", "signDirect"],
        "{keplr}"
    );
    assert!(keplr["calls"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["chainId"] == chain_id.as_str()));
    assert_eq!(unes(&keplr["balanceBefore"]), KEPLR_FUNDS);
    let state = shown_answer_is_the_chains(&market, &tokenizer, keplr).await;
    assert_eq!(state.query.user.as_str(), keplr_address.to_string());
    let result = state.query.settlement.as_ref().unwrap();
    let fee: u128 = keplr["fee"]
        .as_str()
        .unwrap()
        .trim_end_matches("unes")
        .parse()
        .unwrap();
    assert_eq!(
        keplr["settlement"]["transaction fee"],
        format!("{} unes", as_shown(fee)),
        "the page shows the fee Keplr signed"
    );
    let cost = state.query.escrow.amount.u128() - result.refunded.u128();
    let keplr_after = client.balance(&keplr_address, "unes").await.unwrap().amount;
    assert_eq!(
        KEPLR_FUNDS - keplr_after,
        cost + fee,
        "the Keplr wallet paid the query's cost and the fee it signed"
    );
    assert_eq!(
        unes(&keplr["balanceAfter"]),
        keplr_after,
        "the page shows it"
    );
    let alice_after = client.balance(&alice_address, "unes").await.unwrap().amount;
    assert!(
        unes(&page["balanceAfter"]) - alice_after < state.query.escrow.amount.u128(),
        "the gateway's wallet did not pay the Keplr query"
    );

    for step in [
        "1-locked",
        "2-wrong-key",
        "3-unlocked",
        "4-waiting",
        "5-settled",
        "6-keplr-connected",
        "7-keplr-waiting",
        "8-keplr-settled",
    ] {
        assert!(
            shots.join(format!("{step}.png")).is_file(),
            "screenshot {step}"
        );
    }
}
