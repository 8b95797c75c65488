//! Kill -9 of a solo `nesad` at random moments while transactions flow: after each restart no
//! committed transaction is lost, balances equal the committed transfers, the block store and
//! the state agree (each header carries the previous block's app hash), and blocks continue.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nesa_sdk::cosmrs::crypto::secp256k1::SigningKey;
use nesa_sdk::fee::DEFAULT_GAS_LIMIT;
use nesa_sdk::tendermint::Hash;
use nesa_sdk::{Address, AddressExt, ChainClient, Coin, Coins, GasSetting, SendTxOptions};
use rand::Rng;

const NESAD: &str = env!("CARGO_BIN_EXE_nesad");
const ROUNDS: usize = 6;
const AMOUNT: u128 = 1_000;

struct Node {
    child: Child,
}

impl Node {
    fn start(home: &Path, port: u16) -> Node {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(home.join("node.log"))
            .unwrap();
        let child = Command::new(NESAD)
            .args([
                "start",
                "--solo",
                "--block-interval-ms",
                "100",
                "--api.laddr",
                "off",
                "--rpc.laddr",
            ])
            .arg(format!("tcp://127.0.0.1:{port}"))
            .arg("--home")
            .arg(home)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("nesad starts");
        Node { child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(home: &Path, args: &[&str]) {
    let output = Command::new(NESAD)
        .args(args)
        .arg("--home")
        .arg(home)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "nesad {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn wait_until_serving(client: &ChainClient) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(height) = client.latest_height().await {
            return height.value();
        }
        assert!(Instant::now() < deadline, "nesad did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_solo_nesad_at_random_moments_loses_no_committed_tx() {
    let home = std::env::temp_dir().join(format!("nesa-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let alice_key = SigningKey::from_slice(&[11; 32]).unwrap();
    let alice = Address::from_public_key(&alice_key.public_key()).unwrap();
    let bob =
        Address::from_public_key(&SigningKey::from_slice(&[12; 32]).unwrap().public_key()).unwrap();
    let funds: u128 = 1_000_000_000;
    run(&home, &["init", "crash-test", "--chain-id", "nesa-crash-1"]);
    run(
        &home,
        &[
            "genesis",
            "add-account",
            &alice.to_string(),
            &format!("{funds}unes"),
        ],
    );

    let port = free_port();
    let client = ChainClient::new(&format!("http://127.0.0.1:{port}")).unwrap();
    // A fixed gas limit, so every transfer pays the same fee.
    let options = SendTxOptions {
        gas: GasSetting::Fixed(DEFAULT_GAS_LIMIT),
        timeout: Duration::from_secs(5),
        ..SendTxOptions::default()
    };
    let fee = 5_000u128;
    let mut sent: Vec<Hash> = vec![];
    let mut confirmed: Vec<(Hash, u64)> = vec![];
    let mut last_height = 0;
    let mut rng = rand::thread_rng();

    for round in 0..ROUNDS {
        let mut node = Node::start(&home, port);
        let height = wait_until_serving(&client).await;
        assert!(
            height >= last_height,
            "round {round}: height went back from {last_height} to {height}"
        );

        // Everything confirmed so far survived every crash, at the same height.
        for (hash, height) in &confirmed {
            let found = client
                .tx(*hash)
                .await
                .unwrap_or_else(|e| panic!("round {round}: committed tx {hash} lost: {e}"));
            assert_eq!(found.height, *height, "tx {hash} moved");
        }

        let kill_at = Instant::now() + Duration::from_millis(rng.gen_range(0..1500));
        while Instant::now() < kill_at {
            let msg =
                nesa_sdk::msgs::bank_send(&alice, &bob, &Coins::from(Coin::unes(AMOUNT))).unwrap();
            let Ok(signed) = client.sign_tx(&alice_key, vec![msg], &options).await else {
                break;
            };
            sent.push(signed.hash);
            if client.broadcast_sync(&signed).await.is_err() {
                break;
            }
            if let Ok(outcome) = client
                .wait_for_tx(signed.hash, Duration::from_millis(1500))
                .await
            {
                confirmed.push((signed.hash, outcome.height));
            }
        }
        last_height = client
            .latest_height()
            .await
            .map(|h| h.value())
            .unwrap_or(last_height);
        node.kill();
    }

    let _node = Node::start(&home, port);
    let height = wait_until_serving(&client).await;
    // The chain keeps producing blocks after the last crash.
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.latest_height().await.unwrap().value() < height + 2 {
        assert!(
            Instant::now() < deadline,
            "blocks stopped after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut committed = 0u128;
    for hash in &sent {
        if let Ok(outcome) = client.tx(*hash).await {
            assert_eq!(outcome.code, 0, "tx {hash}: {}", outcome.log);
            committed += 1;
        }
    }
    assert!(committed as usize >= confirmed.len());
    assert!(
        !confirmed.is_empty(),
        "some transactions were confirmed between crashes"
    );
    assert_eq!(
        client.balance(&bob, "unes").await.unwrap().amount,
        committed * AMOUNT
    );
    assert_eq!(
        client.balance(&alice, "unes").await.unwrap().amount,
        funds - committed * (AMOUNT + fee)
    );
    assert_eq!(
        client.account(&alice).await.unwrap().sequence,
        committed as u64
    );

    // Every block's header carries the app hash the previous block's execution produced.
    let rpc = client.rpc();
    use tendermint_rpc::Client;
    let latest = client.latest_height().await.unwrap().value();
    for h in 1..latest {
        let results = rpc
            .block_results(nesa_sdk::tendermint::block::Height::try_from(h).unwrap())
            .await
            .unwrap();
        let next = rpc
            .block(nesa_sdk::tendermint::block::Height::try_from(h + 1).unwrap())
            .await
            .unwrap();
        assert_eq!(
            next.block.header.app_hash,
            results.app_hash,
            "header {} does not carry block {h}'s app hash",
            h + 1
        );
    }
    drop(_node);
    std::fs::remove_dir_all(&home).unwrap();
}
