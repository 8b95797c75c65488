//! nesad behind real CometBFT 0.38 nodes, each network started by `scripts/localnet` in its own
//! temporary directory on its own loopback ports: a transfer behind one validator, app-hash
//! agreement across four, and no committed transaction lost when nesad is killed mid-block.
//!
//! Skipped (passing, with a message) when `cometbft` is not installed; `scripts/setup` installs
//! it where Go is present. The tests run one at a time: four validators already fill two cores.

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nesa_sdk::cosmrs::crypto::secp256k1::SigningKey;
use nesa_sdk::fee::DEFAULT_GAS_LIMIT;
use nesa_sdk::msgs::bank_send;
use nesa_sdk::tendermint::block::Height;
use nesa_sdk::tendermint::Hash;
use nesa_sdk::{
    signing_key_from_mnemonic, Address, ChainClient, Coin, Coins, GasSetting, Keyring,
    SendTxOptions,
};
use rand::Rng;
use sha2::{Digest, Sha256};
use tendermint_rpc::Client;

const NESAD: &str = env!("CARGO_BIN_EXE_nesad");
const LOCALNET_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/localnet");
const CHAIN_ID: &str = "nesa-cometbft-test";
/// CometBFT's pause between blocks in these networks.
const BLOCK_TIME: &str = "300ms";
/// 200000 gas (`DEFAULT_GAS_LIMIT`, fixed in [`send_options`]) at the minimum gas price of
/// 0.025unes.
const FEE: u128 = 5_000;
const GENESIS_BALANCE: u128 = 1_000_000_000_000;
/// Longest a `scripts/localnet` command may run before the test fails.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// One network at a time: the machine may have only two cores.
static ONE_NETWORK_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_network_at_a_time() -> MutexGuard<'static, ()> {
    ONE_NETWORK_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether `cometbft` is installed (tools dir, PATH or ~/go/bin); otherwise `test` is
/// reported as skipped by name, or fails under `CI=true`.
fn cometbft_installed(test: &str) -> bool {
    nesa_testkit::require_tool(
        test,
        "cometbft",
        "scripts/setup installs it where Go is present",
    )
    .is_some()
}

/// A generated key: its mnemonic is made by the keyring, the signing key recovered from it.
struct TestKey {
    mnemonic: String,
    key: SigningKey,
    address: Address,
}

fn generate_keys(dir: &Path, count: usize) -> Vec<TestKey> {
    let mut keyring = Keyring::open(&dir.join("test-keys")).expect("opens a keyring");
    (0..count)
        .map(|i| {
            let entry = keyring.add(&format!("key{i}")).expect("generates a key");
            let key = signing_key_from_mnemonic(&entry.mnemonic)
                .expect("recovers the key from its mnemonic");
            TestKey {
                mnemonic: entry.mnemonic,
                key,
                address: entry.address,
            }
        })
        .collect()
}

fn unes(amount: u128) -> Coins {
    Coins::new(vec![Coin::unes(amount)]).expect("valid coins")
}

/// A network started by `scripts/localnet` in a temporary directory. Dropping it runs
/// `scripts/localnet down` (also on panic), which ends every process group it started.
struct Localnet {
    dir: PathBuf,
    base_port: u16,
    validators: usize,
    _one_at_a_time: MutexGuard<'static, ()>,
}

impl Localnet {
    /// Creates a temporary directory for a network of `validators` nodes (not started yet).
    fn new(name: &str, validators: usize) -> Localnet {
        let guard = one_network_at_a_time();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "nesa-cometbft-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("creates the network directory");
        Localnet {
            dir,
            base_port: free_base_port(validators),
            validators,
            _one_at_a_time: guard,
        }
    }

    /// `scripts/localnet up N` with `accounts` funded at genesis; returns when every node has a block.
    async fn up(&self, accounts: &[(Address, u128)]) {
        let accounts: Vec<String> = accounts
            .iter()
            .map(|(address, amount)| format!("{address}={amount}unes"))
            .collect();
        self.script(
            &["up", &self.validators.to_string()],
            &[("LOCALNET_ACCOUNTS", accounts.join(" "))],
        )
        .await;
    }

    /// SIGKILLs node `i`'s nesad.
    async fn kill_app(&self, i: usize) {
        self.script(&["kill-app", &i.to_string()], &[]).await;
    }

    /// Starts whatever is not running (after `kill_app`: nesad, then a fresh cometbft).
    async fn restart(&self) {
        self.script(&["up"], &[]).await;
    }

    fn rpc_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.base_port as usize + 100 * i + 1)
    }

    fn client(&self, i: usize) -> ChainClient {
        ChainClient::new(&self.rpc_url(i)).expect("valid node URL")
    }

    fn environment(&self) -> Vec<(&'static str, String)> {
        let nesa = Path::new(NESAD).with_file_name("nesa");
        assert!(
            nesa.is_file(),
            "{} is missing: build the CLI first with `cargo build --workspace --bins` (scripts/setup and scripts/test do)",
            nesa.display()
        );
        vec![
            ("LOCALNET_DIR", self.dir.display().to_string()),
            ("LOCALNET_BASE_PORT", self.base_port.to_string()),
            ("LOCALNET_CHAIN_ID", CHAIN_ID.to_string()),
            ("LOCALNET_BLOCK_TIME", BLOCK_TIME.to_string()),
            ("NESAD_BIN", NESAD.to_string()),
            ("NESA_BIN", nesa.display().to_string()),
        ]
    }

    /// Runs the script in its own process group, bounded by `SCRIPT_TIMEOUT`; panics with its output on failure.
    async fn script(&self, args: &[&str], extra_env: &[(&str, String)]) {
        let started = Instant::now();
        let mut command = tokio::process::Command::new("bash");
        command
            .arg(LOCALNET_SCRIPT)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
            .envs(self.environment())
            .envs(extra_env.iter().map(|(k, v)| (*k, v.as_str())));
        command.process_group(0).kill_on_drop(true);
        let child = command.spawn().expect("bash runs scripts/localnet");
        let pid = child.id();
        let output = match tokio::time::timeout(SCRIPT_TIMEOUT, child.wait_with_output()).await {
            Ok(output) => output.expect("scripts/localnet output"),
            Err(_) => {
                if let Some(pid) = pid {
                    kill_process_group(pid);
                }
                panic!("scripts/localnet {args:?} ran over {SCRIPT_TIMEOUT:?}");
            }
        };
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        println!(
            "$ scripts/localnet {} ({:.1?})\n{}",
            args.join(" "),
            started.elapsed(),
            text.trim_end()
        );
        assert!(
            output.status.success(),
            "scripts/localnet {args:?} failed ({}):\n{text}",
            output.status
        );
    }

    /// Waits until node `i` reports a latest height of at least `height`; returns it.
    async fn wait_for_height(&self, i: usize, height: u64, timeout: Duration) -> u64 {
        let client = self.client(i);
        let started = Instant::now();
        loop {
            if let Ok(latest) = client.latest_height().await {
                if latest.value() >= height {
                    return latest.value();
                }
            }
            assert!(
                started.elapsed() < timeout,
                "node{i} did not reach height {height} within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn print_log_tails(&self) {
        for i in 0..self.validators {
            for log in ["nesad.log", "cometbft.log"] {
                let path = self.dir.join(format!("node{i}")).join(log);
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(25)..].join("\n");
                eprintln!("--- last lines of {} ---\n{tail}", path.display());
            }
        }
    }
}

impl Drop for Localnet {
    fn drop(&mut self) {
        let down = std::process::Command::new("bash")
            .arg(LOCALNET_SCRIPT)
            .arg("down")
            .envs([("LOCALNET_DIR", self.dir.display().to_string())])
            .stdin(Stdio::null())
            .output();
        if !matches!(&down, Ok(output) if output.status.success()) {
            eprintln!(
                "scripts/localnet down failed ({down:?}); killing the recorded process groups"
            );
        }
        // Whatever `down` left (it removes the pid files of what it stopped), killed outright.
        for i in 0..self.validators {
            for name in ["nesad.pid", "cometbft.pid"] {
                let pid_file = self.dir.join(format!("node{i}")).join(name);
                let Some(pid) = std::fs::read_to_string(&pid_file)
                    .ok()
                    .and_then(|p| p.trim().parse::<u32>().ok())
                else {
                    continue;
                };
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains(&*self.dir.to_string_lossy()) {
                    kill_process_group(pid);
                }
            }
        }
        if std::thread::panicking() {
            self.print_log_tails();
            eprintln!(
                "network directory kept for inspection: {}",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn kill_process_group(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .status();
}

/// A base port such that every node's P2P, RPC and ABCI port (base + 100 i + 0..3) is free,
/// below Linux's ephemeral range so outgoing connections do not take them meanwhile.
fn free_base_port(validators: usize) -> u16 {
    let mut rng = rand::thread_rng();
    for _ in 0..200 {
        let base: u16 = rng.gen_range(200..290) * 100 + rng.gen_range(0..30) * 3;
        let ports = (0..validators).flat_map(|i| (0..3).map(move |k| base + 100 * i as u16 + k));
        if ports
            .into_iter()
            .all(|port| TcpListener::bind(("127.0.0.1", port)).is_ok())
        {
            return base;
        }
    }
    panic!("no free loopback ports found for the network");
}

/// tendermint-rpc 0.40 hands over `abci_info`'s base64 `last_block_app_hash` undecoded (the
/// bytes of the base64 text; tendermint-rs#1447 fixed the same for `block_results` only).
fn decoded_app_hash(reported: &[u8]) -> Vec<u8> {
    use base64::Engine;
    match reported.len() {
        0 | 32 => reported.to_vec(),
        _ => base64::engine::general_purpose::STANDARD
            .decode(reported)
            .expect("abci_info app hash is base64"),
    }
}

/// A fixed gas limit, so every transfer pays [`FEE`].
fn send_options() -> SendTxOptions {
    SendTxOptions {
        gas: GasSetting::Fixed(DEFAULT_GAS_LIMIT),
        timeout: Duration::from_secs(30),
        ..SendTxOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_commits_behind_a_single_cometbft_validator() {
    if !cometbft_installed("a_transfer_commits_behind_a_single_cometbft_validator") {
        return;
    }
    let net = Localnet::new("single", 1);
    let started = Instant::now();
    let keys = generate_keys(&net.dir, 2);
    let (sender, recipient) = (&keys[0], &keys[1]);
    net.up(&[(sender.address, GENESIS_BALANCE)]).await;
    let client = net.client(0);
    assert_eq!(client.chain_id().await.unwrap().as_str(), CHAIN_ID);

    let amount = 1_234_567;
    let msg = bank_send(&sender.address, &recipient.address, &unes(amount)).unwrap();
    let outcome = client
        .send_tx(&sender.key, vec![msg], &send_options())
        .await
        .expect("the transfer commits");
    assert_eq!(outcome.code, 0, "transfer failed: {}", outcome.log);
    assert!(outcome.height >= 1);

    let found = client
        .tx(outcome.hash)
        .await
        .expect("the tx is found by hash");
    assert_eq!((found.code, found.height), (0, outcome.height));
    assert_eq!(
        client
            .balance(&recipient.address, "unes")
            .await
            .unwrap()
            .amount,
        amount
    );
    assert_eq!(
        client
            .balance(&sender.address, "unes")
            .await
            .unwrap()
            .amount,
        GENESIS_BALANCE - amount - FEE
    );
    println!(
        "transfer committed at height {} behind CometBFT in {:.1?}",
        outcome.height,
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_agree_on_the_app_hash_at_every_height() {
    if !cometbft_installed("four_validators_agree_on_the_app_hash_at_every_height") {
        return;
    }
    let net = Localnet::new("four", 4);
    let started = Instant::now();
    let keys = generate_keys(&net.dir, 4);
    let (sender, recipients) = (&keys[0], &keys[1..]);
    net.up(&[(sender.address, GENESIS_BALANCE)]).await;

    // Transfers submitted through every node in turn.
    let mut expected: BTreeMap<Address, u128> = BTreeMap::new();
    let mut last_tx_height = 0;
    for n in 0..6usize {
        let recipient = &recipients[n % recipients.len()];
        let amount = 10_000 + n as u128;
        let msg = bank_send(&sender.address, &recipient.address, &unes(amount)).unwrap();
        // The next node must have the previous transfer's block before it is asked for the
        // sender's sequence: a node a block behind would hand out a sequence already used.
        net.wait_for_height(n % 4, last_tx_height, Duration::from_secs(30))
            .await;
        let outcome = net
            .client(n % 4)
            .send_tx(&sender.key, vec![msg], &send_options())
            .await
            .expect("transfer commits");
        assert_eq!(outcome.code, 0, "transfer {n} failed: {}", outcome.log);
        *expected.entry(recipient.address).or_default() += amount;
        *expected.entry(sender.address).or_insert(GENESIS_BALANCE) -= amount + FEE;
        last_tx_height = last_tx_height.max(outcome.height);
    }

    // Every node has the blocks with the transfers and the one whose header commits to their state.
    let mut top = u64::MAX;
    for i in 0..4 {
        top = top.min(
            net.wait_for_height(i, last_tx_height + 2, Duration::from_secs(30))
                .await,
        );
    }
    let clients: Vec<ChainClient> = (0..4).map(|i| net.client(i)).collect();
    for height in 1..=top {
        let mut app_hashes = vec![];
        for client in &clients {
            let block = client
                .rpc()
                .block(Height::try_from(height).unwrap())
                .await
                .expect("block at height");
            app_hashes.push(block.block.header.app_hash);
        }
        assert!(
            app_hashes.iter().all(|hash| *hash == app_hashes[0]),
            "nodes disagree on the app hash in the header of block {height}: {app_hashes:?}"
        );
    }
    for (i, client) in clients.iter().enumerate() {
        for (address, amount) in &expected {
            let balance = client.balance(address, "unes").await.unwrap().amount;
            assert_eq!(
                balance, *amount,
                "node{i} reports {balance}unes for {address}"
            );
        }
    }
    println!(
        "4 validators agree on {top} heights ({} transfers) in {:.1?}",
        6,
        started.elapsed()
    );
}

/// A transfer the crash test signed: what it moves and whether the client saw it committed.
struct SentTransfer {
    amount: u128,
    /// The height reported by the node before the crash, if the client saw it committed.
    committed_at: Option<u64>,
}

/// Sends transfers one after another until `stop` is set or the node stops answering.
async fn send_until_stopped(
    client: ChainClient,
    sender_mnemonic: String,
    from: Address,
    to: Address,
    next_amount: u128,
    stop: Arc<AtomicBool>,
) -> Vec<(Hash, SentTransfer)> {
    let sender = signing_key_from_mnemonic(&sender_mnemonic).expect("valid mnemonic");
    let mut sent = vec![];
    let mut amount = next_amount;
    while !stop.load(Ordering::SeqCst) {
        let msg = bank_send(&from, &to, &unes(amount)).unwrap();
        let Ok(signed) = client.sign_tx(&sender, vec![msg], &send_options()).await else {
            break;
        };
        sent.push((
            signed.hash,
            SentTransfer {
                amount,
                committed_at: None,
            },
        ));
        amount += 1;
        // A broadcast that fails may still have reached the mempool: the hash is kept either way.
        if client.broadcast_sync(&signed).await.is_err() {
            break;
        }
        match client
            .wait_for_tx(signed.hash, Duration::from_secs(10))
            .await
        {
            Ok(outcome) => sent.last_mut().unwrap().1.committed_at = Some(outcome.height),
            Err(_) => break,
        }
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_nesad_under_cometbft_loses_no_committed_tx() {
    if !cometbft_installed("killing_nesad_under_cometbft_loses_no_committed_tx") {
        return;
    }
    const ROUNDS: usize = 5;
    let net = Localnet::new("crash", 1);
    let started = Instant::now();
    let keys = generate_keys(&net.dir, 2);
    let (sender, recipient) = (&keys[0], &keys[1]);
    net.up(&[(sender.address, GENESIS_BALANCE)]).await;
    let client = net.client(0);

    let mut sent: HashMap<Hash, SentTransfer> = HashMap::new();
    let mut highest_seen = client.latest_height().await.unwrap().value();
    let mut next_amount = 1_000;
    for round in 0..ROUNDS {
        let stop = Arc::new(AtomicBool::new(false));
        let sender_task = tokio::spawn(send_until_stopped(
            net.client(0),
            sender.mnemonic.clone(),
            sender.address,
            recipient.address,
            next_amount,
            stop.clone(),
        ));
        let delay = Duration::from_millis(rand::thread_rng().gen_range(0..=1500));
        tokio::time::sleep(delay).await;
        highest_seen =
            highest_seen.max(client.latest_height().await.map(|h| h.value()).unwrap_or(0));
        net.kill_app(0).await;
        stop.store(true, Ordering::SeqCst);
        let round_sent = tokio::time::timeout(Duration::from_secs(30), sender_task)
            .await
            .expect("the sender notices the crash")
            .expect("the sender task does not panic");
        next_amount += round_sent.len() as u128 + 1;
        let confirmed = round_sent
            .iter()
            .filter(|(_, t)| t.committed_at.is_some())
            .count();
        sent.extend(round_sent);

        net.restart().await;
        // Heights never go back, and blocks continue past the height seen before the crash.
        let after = client
            .latest_height()
            .await
            .expect("the node answers after restart")
            .value();
        assert!(
            after >= highest_seen,
            "round {round}: height went back from {highest_seen} to {after}"
        );
        highest_seen = net
            .wait_for_height(0, highest_seen + 2, Duration::from_secs(30))
            .await;

        // Every transfer seen committed is still there, at the same height.
        for (hash, transfer) in &sent {
            if let Some(height) = transfer.committed_at {
                let found = client
                    .tx(*hash)
                    .await
                    .unwrap_or_else(|e| panic!("round {round}: committed tx {hash} lost: {e}"));
                assert_eq!(
                    (found.code, found.height),
                    (0, height),
                    "round {round}: tx {hash} changed"
                );
            }
        }
        // The app's last committed state is what the next header commits to.
        let info = client.rpc().abci_info().await.expect("abci_info");
        let app_height = info.last_block_height.value();
        net.wait_for_height(0, app_height + 1, Duration::from_secs(10))
            .await;
        let next = client
            .rpc()
            .block(Height::try_from(app_height + 1).unwrap())
            .await
            .expect("next block");
        assert_eq!(
            hex::encode_upper(next.block.header.app_hash.as_bytes()),
            hex::encode_upper(decoded_app_hash(info.last_block_app_hash.as_bytes())),
            "round {round}: the app reports a different hash at {app_height} than header {} commits to",
            app_height + 1
        );
        println!("round {round}: killed nesad after {delay:?}; {confirmed} transfer(s) confirmed; height {highest_seen}");
    }

    // Settle: read every block, and account each of our transfers that landed in one.
    let top = net
        .wait_for_height(0, highest_seen + 1, Duration::from_secs(10))
        .await;
    let mut landed_amounts = 0u128;
    let mut landed = 0u128;
    for height in 1..=top {
        let height = Height::try_from(height).unwrap();
        let block = client.rpc().block(height).await.expect("block");
        if block.block.data.is_empty() {
            continue;
        }
        let results = client
            .rpc()
            .block_results(height)
            .await
            .expect("block results")
            .txs_results
            .unwrap_or_default();
        for (raw, result) in block.block.data.iter().zip(&results) {
            let hash = Hash::Sha256(Sha256::digest(raw).into());
            let transfer = sent
                .get(&hash)
                .unwrap_or_else(|| panic!("block {height} holds a tx nobody sent: {hash}"));
            assert_eq!(
                result.code.value(),
                0,
                "tx {hash} failed in block {height}: {}",
                result.log
            );
            if let Some(reported) = transfer.committed_at {
                assert_eq!(
                    reported,
                    height.value(),
                    "tx {hash} moved from height {reported} to {height}"
                );
            }
            landed_amounts += transfer.amount;
            landed += 1;
        }
    }
    let confirmed = sent.values().filter(|t| t.committed_at.is_some()).count() as u128;
    assert!(
        landed >= confirmed,
        "{landed} transfers in blocks but {confirmed} were confirmed"
    );
    assert!(
        confirmed >= 1,
        "no transfer was confirmed in {ROUNDS} rounds: the test proved nothing"
    );
    assert_eq!(
        client
            .balance(&recipient.address, "unes")
            .await
            .unwrap()
            .amount,
        landed_amounts
    );
    assert_eq!(
        client
            .balance(&sender.address, "unes")
            .await
            .unwrap()
            .amount,
        GENESIS_BALANCE - landed_amounts - landed * FEE
    );
    // Which recovery path CometBFT's handshake took after each crash (app height vs block store).
    let cometbft_log =
        std::fs::read_to_string(net.dir.join("node0/cometbft.log")).unwrap_or_default();
    for line in cometbft_log
        .lines()
        .filter(|line| line.contains("ABCI Replay Blocks") || line.contains("Replay last block"))
    {
        println!(
            "handshake: {}",
            line.split_once(']').map_or(line, |(_, rest)| rest).trim()
        );
    }
    println!(
        "{ROUNDS} crashes: {landed} transfers committed ({confirmed} confirmed before a crash), {top} blocks, in {:.1?}",
        started.elapsed()
    );
}
