//! What bounds a block: its gas limit, the order in which fees buy space in it, the shortest
//! time between blocks, and a database the node can no longer read.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nesa_app::solo::producer::Cadence;
use nesa_sdk::Coins;
use support::{TestAccount, TestChain};
use tendermint_proto::v0_38::abci::{RequestPrepareProposal, RequestProcessProposal};

const FUNDS: u128 = 1_000_000_000_000;
/// Close to half the block gas limit: two fit in a block, three do not.
const BIG_GAS: u64 = nesa_genesis::BLOCK_MAX_GAS * 2 / 5;

fn accounts(n: u8) -> Vec<TestAccount> {
    (0..n)
        .map(|i| TestAccount::from_seed(i + 1, u64::from(i)))
        .collect()
}

fn chain(name: &str, accounts: &[TestAccount]) -> TestChain {
    let funded: Vec<_> = accounts.iter().map(|a| (&a.address, FUNDS)).collect();
    TestChain::new(name, &funded)
}

/// A 1-unes transfer to `to` with `gas` and `fee`, advancing the sender's sequence.
fn transfer(from: &mut TestAccount, to: &TestAccount, gas: u64, fee: u128) -> Vec<u8> {
    let tx = from
        .builder()
        .msgs(vec![from.send_msg(&to.address, 1)])
        .gas_limit(gas)
        .fee(Coins::from(nesa_sdk::Coin::unes(fee)))
        .sign(&from.key)
        .unwrap()
        .bytes;
    from.sequence += 1;
    tx
}

fn min_fee(gas: u64) -> u128 {
    (gas as u128 * 25).div_ceil(1000)
}

#[test]
fn a_block_holds_no_more_gas_than_the_limit_and_the_rest_waits_for_the_next() {
    let mut people = accounts(3);
    let chain = chain("block-gas", &people);
    let receiver = TestAccount::from_seed(9, 99);
    for sender in people.iter_mut() {
        let tx = transfer(sender, &receiver, BIG_GAS, min_fee(BIG_GAS));
        assert_eq!(chain.submit(&tx).code, 0);
    }
    let first = chain.produce();
    assert_eq!(
        first.block.data.len(),
        2,
        "two of three 40M-gas txs fit in 100M"
    );
    let wanted: i64 = first.results.tx_results.iter().map(|r| r.gas_wanted).sum();
    assert!(wanted as u64 <= nesa_genesis::BLOCK_MAX_GAS);
    assert_eq!(chain.mempool.len(), 1, "the third waits in the mempool");
    let second = chain.produce();
    assert_eq!(second.block.data.len(), 1, "and goes into the next block");
    assert_eq!(chain.balance(&receiver.address), 3);
}

#[test]
fn a_proposal_over_the_block_gas_limit_is_rejected() {
    let mut people = accounts(3);
    let chain = chain("block-gas-process", &people);
    let receiver = TestAccount::from_seed(9, 99);
    let txs: Vec<_> = people
        .iter_mut()
        .map(|sender| transfer(sender, &receiver, BIG_GAS, min_fee(BIG_GAS)).into())
        .collect();
    let response = chain
        .app
        .process_proposal(RequestProcessProposal {
            txs,
            height: chain.height() as i64 + 1,
            ..Default::default()
        })
        .unwrap();
    use tendermint_proto::v0_38::abci::response_process_proposal::ProposalStatus;
    assert_eq!(response.status, ProposalStatus::Reject as i32);
}

#[test]
fn proposals_include_higher_fees_first_and_keep_each_senders_order() {
    let mut people = accounts(3);
    let chain = chain("block-priority", &people);
    let receiver = TestAccount::from_seed(9, 99);
    let gas = 100_000;
    let [alice, bob, carol] = &mut people[..] else {
        unreachable!()
    };
    let alice_cheap = transfer(alice, &receiver, gas, min_fee(gas));
    let alice_rich = transfer(alice, &receiver, gas, min_fee(gas) * 100);
    let bob_mid = transfer(bob, &receiver, gas, min_fee(gas) * 10);
    let carol_cheap = transfer(carol, &receiver, gas, min_fee(gas));
    let arrived = vec![
        alice_cheap.clone(),
        alice_rich.clone(),
        carol_cheap.clone(),
        bob_mid.clone(),
    ];
    let prepared = chain
        .app
        .prepare_proposal(RequestPrepareProposal {
            max_tx_bytes: 1 << 20,
            txs: arrived.into_iter().map(Into::into).collect(),
            height: chain.height() as i64 + 1,
            ..Default::default()
        })
        .unwrap();
    let order: Vec<Vec<u8>> = prepared.txs.iter().map(|t| t.to_vec()).collect();
    assert_eq!(
        order,
        vec![bob_mid, alice_cheap, alice_rich, carol_cheap],
        "bob pays most per gas; alice's richer tx cannot pass her own earlier one; ties keep arrival order"
    );
}

#[test]
fn a_flood_of_transactions_cannot_make_blocks_come_faster_than_the_minimum_interval() {
    let mut people = accounts(1);
    let chain = chain("block-cadence", &people);
    let receiver = TestAccount::from_seed(9, 99);
    let start_height = chain.height();
    let stop = AtomicBool::new(false);
    let cadence = Cadence {
        max_wait: Duration::from_millis(5),
        min_interval: Duration::from_millis(200),
    };
    let flood = Duration::from_millis(1000);
    std::thread::scope(|scope| {
        scope.spawn(|| chain.producer.run(cadence, &stop).unwrap());
        let started = Instant::now();
        let sender = &mut people[0];
        while started.elapsed() < flood {
            let tx = transfer(sender, &receiver, 100_000, min_fee(100_000));
            assert_eq!(chain.submit(&tx).code, 0);
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Release);
    });
    let blocks = chain.height() - start_height;
    assert!(
        blocks <= 1 + flood.as_millis() as u64 / 200 + 1,
        "{blocks} blocks in {flood:?} with a 200 ms minimum interval"
    );
    assert!(blocks >= 2, "blocks still follow the flood: {blocks}");
}

#[test]
fn a_corrupt_database_stops_the_node_with_a_message_not_a_panic() {
    let people = accounts(1);
    let chain = chain("corrupt-meta", &people);
    let dir = chain.close();
    {
        let db = redb::Database::open(dir.join("state.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let table: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
            let mut meta = txn.open_table(table).unwrap();
            meta.insert("height", [1u8, 2, 3].as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let storage = nesa_app::state::Storage::open(&dir.join("state.redb")).unwrap();
    let error = storage.committed().unwrap_err().to_string();
    assert!(error.contains("corrupt"), "{error}");
    let opened = nesa_app::app::App::new(storage, &dir.join("wasm"));
    let error = opened
        .err()
        .expect("a corrupt database must not open")
        .to_string();
    assert!(error.contains("corrupt"), "{error}");
    let _ = std::fs::remove_dir_all(dir);
}
