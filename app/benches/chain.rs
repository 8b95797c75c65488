//! Chain throughput: signed bank-send transactions per second
//!
//! 1. in process, through FinalizeBlock + Commit (one core), against a baseline measured in
//!    the same run: bare secp256k1 signature verification of the same transactions;
//! 2. end to end through a solo node's RPC (`broadcast_tx_sync` from concurrent clients until
//!    the last transaction is committed).
//!
//! Prints a markdown report and writes it to `$CARGO_TARGET_DIR/bench/chain.md`.

use std::time::{Duration, Instant};

use k256::ecdsa::signature::Verifier;
use nesa_sdk::cosmrs::proto::cosmos::tx::v1beta1::{SignDoc, TxRaw};
use prost::Message;
use tendermint_proto::v0_38::abci::RequestFinalizeBlock;

mod support;

use support::{genesis, senders, signed_sends, Sender, CHAIN_ID};

/// Verifies every signature the way the ante handler does, without touching state.
fn verify_only(txs: &[Vec<u8>], senders: &[Sender]) -> Duration {
    let started = Instant::now();
    for (i, raw) in txs.iter().enumerate() {
        let tx = TxRaw::decode(raw.as_slice()).unwrap();
        let sender = &senders[i % senders.len()];
        let doc = SignDoc {
            body_bytes: tx.body_bytes,
            auth_info_bytes: tx.auth_info_bytes,
            chain_id: CHAIN_ID.into(),
            account_number: sender.account_number,
        };
        let key = k256::ecdsa::VerifyingKey::from_sec1_bytes(&sender.key.public_key().to_bytes())
            .unwrap();
        let signature = k256::ecdsa::Signature::from_slice(&tx.signatures[0]).unwrap();
        key.verify(&doc.encode_to_vec(), &signature).unwrap();
    }
    started.elapsed()
}

struct InProcess {
    txs: usize,
    finalize: Duration,
    commit: Duration,
    verify_baseline: Duration,
}

fn in_process(senders: &[Sender], blocks: usize) -> InProcess {
    let (app, dir) = support::fresh_app("chain", &genesis(senders));
    eprintln!("signing {} transactions…", senders.len() * blocks);
    let txs = signed_sends(senders, blocks, CHAIN_ID);
    let verify_baseline = verify_only(&txs, senders);

    let (mut finalize, mut commit) = (Duration::ZERO, Duration::ZERO);
    for (height, block) in txs.chunks(senders.len()).enumerate() {
        let started = Instant::now();
        let response = app
            .finalize_block(RequestFinalizeBlock {
                txs: block.iter().map(|tx| tx.clone().into()).collect(),
                height: height as i64 + 1,
                ..Default::default()
            })
            .unwrap();
        finalize += started.elapsed();
        assert!(
            response.tx_results.iter().all(|r| r.code == 0),
            "{:?}",
            response.tx_results.iter().find(|r| r.code != 0)
        );
        let started = Instant::now();
        app.commit().unwrap();
        commit += started.elapsed();
    }
    drop(app);
    let _ = std::fs::remove_dir_all(&dir);
    InProcess {
        txs: txs.len(),
        finalize,
        commit,
        verify_baseline,
    }
}

struct EndToEnd {
    txs: usize,
    elapsed: Duration,
    blocks: u64,
}

async fn end_to_end(nesad: &str, senders: &[Sender], per_sender: usize) -> EndToEnd {
    let home = std::env::temp_dir().join(format!("nesa-bench-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let run = |args: &[&str]| {
        let out = std::process::Command::new(nesad)
            .args(args)
            .arg("--home")
            .arg(&home)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["init", "bench", "--chain-id", CHAIN_ID]);
    for sender in senders {
        run(&[
            "genesis",
            "add-account",
            &sender.address.to_string(),
            "1000000000000unes",
        ]);
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(nesad)
        .args([
            "start",
            "--solo",
            "--api.laddr",
            "off",
            "--rpc.laddr",
            &format!("tcp://127.0.0.1:{port}"),
            "--home",
        ])
        .arg(&home)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let client = nesa_sdk::ChainClient::new(&url).unwrap();
    while client.latest_height().await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let start_height = client.latest_height().await.unwrap().value();
    let txs = signed_sends(senders, per_sender, CHAIN_ID);
    let total = txs.len();
    let last_hash = {
        use sha2::Digest;
        nesa_sdk::tendermint::Hash::Sha256(sha2::Sha256::digest(txs.last().unwrap()).into())
    };

    let started = Instant::now();
    // One client per sender keeps each account's transactions in sequence order.
    let mut lanes: Vec<Vec<Vec<u8>>> = vec![vec![]; senders.len()];
    for (i, tx) in txs.into_iter().enumerate() {
        lanes[i % senders.len()].push(tx);
    }
    let workers: Vec<_> = lanes
        .into_iter()
        .map(|lane| {
            let url = url.clone();
            tokio::spawn(async move {
                let http = Broadcaster::new(&url);
                for tx in lane {
                    http.broadcast(&tx).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    client
        .wait_for_tx(last_hash, Duration::from_secs(300))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let end_height = client.latest_height().await.unwrap().value();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&home);
    EndToEnd {
        txs: total,
        elapsed,
        blocks: end_height - start_height,
    }
}

/// Posts transactions with tendermint-rpc's client (the one the sdk uses).
struct Broadcaster {
    client: tendermint_rpc::HttpClient,
}

impl Broadcaster {
    fn new(url: &str) -> Self {
        Broadcaster {
            client: tendermint_rpc::HttpClient::new(url).unwrap(),
        }
    }

    async fn broadcast(&self, tx: &[u8]) {
        use tendermint_rpc::Client;
        let response = self
            .client
            .broadcast_tx_sync(tx.to_vec())
            .await
            .expect("broadcast");
        assert!(response.code.is_ok(), "CheckTx failed: {}", response.log);
    }
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn main() {
    let senders_count: usize = std::env::var("BENCH_SENDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let blocks: usize = std::env::var("BENCH_BLOCKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let senders = senders(senders_count);

    let measured = in_process(&senders, blocks);
    let total = measured.finalize + measured.commit;
    let chain_rate = rate(measured.txs, total);
    let verify_rate = rate(measured.txs, measured.verify_baseline);
    let mut report = format!(
        "# Chain throughput\n\n\
         Signed `MsgSend` transactions, {senders_count} senders, {blocks} blocks of {senders_count} txs, one core.\n\n\
         | path | tx/s | vs signature-verification baseline |\n|---|---:|---:|\n\
         | baseline: decode + secp256k1 verify only | {verify_rate:.0} | 1.00 |\n\
         | FinalizeBlock + Commit (in process) | {chain_rate:.0} | {:.2} |\n\
         | — FinalizeBlock alone | {:.0} | |\n\
         | — Commit alone (JMT + redb write) | {:.0} | |\n",
        chain_rate / verify_rate,
        rate(measured.txs, measured.finalize),
        rate(measured.txs, measured.commit),
    );

    print!("{report}");
    if let Ok(nesad) = std::env::var("NESAD_BIN") {
        let e2e_senders = senders_count.min(200);
        let per_sender = 20;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let e2e = runtime.block_on(end_to_end(&nesad, &senders[..e2e_senders], per_sender));
        let e2e_rate = rate(e2e.txs, e2e.elapsed);
        let row = format!(
            "| end to end: broadcast_tx_sync → committed, solo RPC ({} txs, {} blocks) | {e2e_rate:.0} | {:.2} |\n",
            e2e.txs,
            e2e.blocks,
            e2e_rate / verify_rate,
        );
        print!("{row}");
        report.push_str(&row);
    } else {
        report.push_str("\n(set NESAD_BIN to a release nesad to also measure end to end through the solo RPC)\n");
    }
    report.push_str(
        "\nReference (CometBFT's published figures): CometBFT with its kvstore app ~2,400 tx/s default, ~7,000 tx/s with a larger mempool.\n",
    );
    println!("\nReference (CometBFT's published figures): CometBFT with its kvstore app ~2,400 tx/s default, ~7,000 tx/s with a larger mempool.");
    let dir = std::path::PathBuf::from(
        std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()),
    )
    .join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("chain.md"), &report).unwrap();
}
