//! Transactions through the real application: transfers, and every kind of bad input rejected
//! with the SDK's error code while the state stays as it was.

mod support;

use nesa_sdk::cosmrs::proto::cosmos::tx::v1beta1::TxRaw;
use nesa_sdk::cosmrs::Any;
use prost::Message;
use support::{TestAccount, TestChain};

const FUNDS: u128 = 1_000_000_000;
const FEE: u128 = 5_000;

fn chain_with_alice_and_bob(name: &str) -> (TestChain, TestAccount, TestAccount) {
    let alice = TestAccount::from_seed(1, 0);
    let bob = TestAccount::from_seed(2, 1);
    let chain = TestChain::new(name, &[(&alice.address, FUNDS), (&bob.address, 1_000)]);
    (chain, alice, bob)
}

/// What a rejected transaction must leave untouched.
fn snapshot(chain: &TestChain, accounts: &[&TestAccount]) -> Vec<(u128, u64)> {
    accounts
        .iter()
        .map(|a| (chain.balance(&a.address), chain.sequence(&a.address)))
        .collect()
}

/// Submits `tx` and executes it in a block: both refuse it with `code` (CheckTx's log naming
/// `reason`), and the accounts' balances and sequences stay as they were.
fn assert_rejected(
    chain: &TestChain,
    accounts: &[&TestAccount],
    tx: Vec<u8>,
    code: u32,
    reason: &str,
) {
    let before = snapshot(chain, accounts);
    let check = chain.submit(&tx);
    assert_eq!(check.code, code, "{}", check.log);
    assert!(check.log.contains(reason), "{}", check.log);
    assert_eq!(chain.finalize(vec![tx])[0].code, code);
    assert_eq!(snapshot(chain, accounts), before);
}

#[test]
fn a_signed_transfer_moves_coins_and_charges_the_fee() {
    let (chain, mut alice, bob) = chain_with_alice_and_bob("transfer");
    let tx = alice.sign(vec![alice.send_msg(&bob.address, 250)]);
    let check = chain.submit(&tx);
    assert_eq!(check.code, 0, "{}", check.log);
    let block = chain.produce();
    assert_eq!(block.results.tx_results.len(), 1);
    let result = &block.results.tx_results[0];
    assert_eq!(result.code, 0, "{}", result.log);
    assert!(result.gas_used > 0 && result.gas_used <= result.gas_wanted);
    let kinds: Vec<_> = result.events.iter().map(|e| e.r#type.as_str()).collect();
    for expected in ["coin_spent", "coin_received", "transfer", "message", "tx"] {
        assert!(
            kinds.contains(&expected),
            "missing {expected} event in {kinds:?}"
        );
    }
    assert_eq!(chain.balance(&alice.address), FUNDS - 250 - FEE);
    assert_eq!(chain.balance(&bob.address), 1_000 + 250);
    assert_eq!(chain.sequence(&alice.address), 1);
    assert_eq!(
        chain.store.find_tx(&sha(&tx)).unwrap().unwrap().height,
        block.block.header.height.value()
    );
}

#[test]
fn malformed_protobuf_is_rejected_as_a_decode_error() {
    let (chain, alice, bob) = chain_with_alice_and_bob("malformed");
    let garbage = b"\x0a\xff\xff\xff not a transaction".to_vec();
    assert_rejected(&chain, &[&alice, &bob], garbage, 2, "tx parse error");
}

#[test]
fn a_corrupted_signature_is_rejected_as_unauthorized() {
    let (chain, mut alice, bob) = chain_with_alice_and_bob("badsig");
    let tx = alice.sign(vec![alice.send_msg(&bob.address, 1)]);
    let mut raw = TxRaw::decode(tx.as_slice()).unwrap();
    raw.signatures[0][10] ^= 0x01;
    let tampered = raw.encode_to_vec();
    assert_rejected(
        &chain,
        &[&alice, &bob],
        tampered,
        4,
        "signature verification failed",
    );
}

#[test]
fn a_transaction_signed_for_another_chain_is_rejected() {
    let (chain, alice, bob) = chain_with_alice_and_bob("chainid");
    let tx = nesa_sdk::TxBuilder::new("other-chain".parse().unwrap(), alice.account_number, 0)
        .msgs(vec![alice.send_msg(&bob.address, 1)])
        .sign(&alice.key)
        .unwrap()
        .bytes;
    assert_rejected(&chain, &[&alice, &bob], tx, 4, "chain-id (nesa-test-1)");
}

#[test]
fn a_wrong_account_number_is_rejected() {
    let (chain, alice, bob) = chain_with_alice_and_bob("accnum");
    let tx = nesa_sdk::TxBuilder::new(
        support::CHAIN_ID.parse().unwrap(),
        alice.account_number + 7,
        0,
    )
    .msgs(vec![alice.send_msg(&bob.address, 1)])
    .sign(&alice.key)
    .unwrap()
    .bytes;
    assert_rejected(&chain, &[&alice, &bob], tx, 4, "account number (0)");
}

#[test]
fn a_replayed_transaction_is_rejected_by_its_sequence() {
    let (chain, mut alice, bob) = chain_with_alice_and_bob("replay");
    let tx = alice.sign(vec![alice.send_msg(&bob.address, 10)]);
    assert_eq!(chain.submit(&tx).code, 0);
    assert_eq!(chain.produce().results.tx_results[0].code, 0);
    let reason = "account sequence mismatch, expected 1, got 0";
    assert_rejected(&chain, &[&alice, &bob], tx, 32, reason);
}

#[test]
fn a_fee_below_the_minimum_gas_price_is_rejected() {
    let (chain, alice, bob) = chain_with_alice_and_bob("lowfee");
    let tx = alice.sign_send_with_gas(&bob.address, 1, 200_000, 4_999);
    let reason = "insufficient fees; got: 4999unes required: 5000unes";
    assert_rejected(&chain, &[&alice, &bob], tx, 13, reason);
}

#[test]
fn running_out_of_gas_in_a_message_reverts_it_but_charges_the_fee() {
    let (chain, alice, bob) = chain_with_alice_and_bob("outofgas");
    // Enough gas for the signature and fee checks, too little for the transfer's two balance
    // writes (each costs at least 2,000 gas).
    let probe = alice
        .builder()
        .msgs(vec![alice.send_msg(&bob.address, 77)])
        .sign(&alice.key)
        .unwrap()
        .bytes;
    let gas_limit = chain.simulate(&probe) - 3_000;
    let fee = (gas_limit as u128 * 25).div_ceil(1000);
    let tx = alice.sign_send_with_gas(&bob.address, 77, gas_limit, fee);
    assert_eq!(
        chain.submit(&tx).code,
        0,
        "the ante checks fit in the gas limit"
    );
    let result = chain.produce().results.tx_results[0].clone();
    assert_eq!(result.code, 11, "{}", result.log);
    assert!(result.log.contains("out of gas"), "{}", result.log);
    assert_eq!(
        chain.balance(&bob.address),
        1_000,
        "the transfer was reverted"
    );
    assert_eq!(
        chain.balance(&alice.address),
        FUNDS - fee,
        "the fee was charged"
    );
    assert_eq!(chain.sequence(&alice.address), 1, "the sequence advanced");
}

#[test]
fn a_gas_limit_too_small_for_the_checks_is_rejected_without_charge() {
    let (chain, alice, bob) = chain_with_alice_and_bob("tinygas");
    let tx = alice.sign_send_with_gas(&bob.address, 1, 500, 13);
    assert_rejected(&chain, &[&alice, &bob], tx, 11, "out of gas");
}

#[test]
fn sending_more_than_the_balance_fails_with_insufficient_funds() {
    let (chain, alice, mut bob) = chain_with_alice_and_bob("funds");
    let tx = bob.sign(vec![bob.send_msg(&alice.address, 100_000)]);
    let check = chain.submit(&tx);
    assert_eq!(check.code, 5, "bob cannot even pay the fee: {}", check.log);
    assert!(check.log.contains("insufficient funds"), "{}", check.log);

    let mut alice = alice;
    let tx = alice.sign(vec![alice.send_msg(&bob.address, FUNDS)]);
    assert_eq!(chain.submit(&tx).code, 0);
    let result = chain.produce().results.tx_results[0].clone();
    assert_eq!(result.code, 5, "{}", result.log);
    assert!(
        result
            .log
            .contains("failed to execute message; message index: 0"),
        "{}",
        result.log
    );
    assert_eq!(chain.balance(&alice.address), FUNDS - FEE);
    assert_eq!(chain.balance(&bob.address), 1_000);
}

#[test]
fn an_unknown_message_type_is_rejected() {
    let (chain, mut alice, bob) = chain_with_alice_and_bob("unknownmsg");
    let unknown = Any {
        type_url: "/cosmos.staking.v1beta1.MsgDelegate".into(),
        value: vec![],
    };
    let tx = alice.sign(vec![unknown]);
    assert_rejected(
        &chain,
        &[&alice, &bob],
        tx,
        6,
        "/cosmos.staking.v1beta1.MsgDelegate",
    );
}

#[test]
fn an_oversized_transaction_is_rejected_before_decoding() {
    let (chain, alice, bob) = chain_with_alice_and_bob("oversized");
    let huge = vec![0u8; 1024 * 1024 + 1];
    assert_rejected(&chain, &[&alice, &bob], huge, 21, "the limit is 1048576");
}

#[test]
fn a_block_proposal_drops_invalid_transactions_and_keeps_valid_ones() {
    let (chain, mut alice, bob) = chain_with_alice_and_bob("prepare");
    let valid = alice.sign(vec![alice.send_msg(&bob.address, 5)]);
    let block = chain
        .producer
        .produce(vec![b"junk".to_vec(), valid.clone(), valid])
        .unwrap();
    assert_eq!(block.block.data.len(), 1, "junk and the replay are dropped");
    assert_eq!(chain.balance(&bob.address), 1_005);
}

fn sha(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

#[test]
fn transactions_left_in_the_mempool_after_a_block_keep_later_sequences_admissible() {
    let (chain, mut alice, bob) = chain_with_alice_and_bob("mempool-sequence");
    let first = alice.sign(vec![alice.send_msg(&bob.address, 1)]);
    let second = alice.sign(vec![alice.send_msg(&bob.address, 2)]);
    assert_eq!(chain.submit(&first).code, 0);
    assert_eq!(chain.submit(&second).code, 0);
    // A block that takes only the first transaction; the second stays pending.
    let taken = chain.mempool.pending(first.len());
    assert_eq!(taken, vec![first]);
    chain.producer.produce(taken).unwrap();
    assert_eq!(chain.mempool.len(), 1);
    let third = alice.sign(vec![alice.send_msg(&bob.address, 3)]);
    let check = chain.submit(&third);
    assert_eq!(
        check.code, 0,
        "sequence 2 follows the pending sequence 1: {}",
        check.log
    );
    chain.produce();
    assert_eq!(chain.balance(&bob.address), 1_000 + 1 + 2 + 3);
}

#[test]
fn the_next_transaction_simulates_on_top_of_the_senders_ones_waiting_in_the_mempool() {
    let (chain, mut alice, bob) = chain_with_alice_and_bob("simmempool");
    let first = alice.sign(vec![alice.send_msg(&bob.address, 5)]);
    assert_eq!(chain.submit(&first).code, 0);
    // Sequence 1 while sequence 0 waits for a block: the SDK simulates against its check
    // state, so clients sending several transactions per block can estimate each one.
    let next = alice
        .builder()
        .msgs(vec![alice.send_msg(&bob.address, 6)])
        .sign(&alice.key)
        .unwrap()
        .bytes;
    assert!(chain.simulate(&next) > 0);
    let stale = nesa_sdk::TxBuilder::new(support::CHAIN_ID.parse().unwrap(), 0, 0)
        .msgs(vec![alice.send_msg(&bob.address, 7)])
        .sign(&alice.key)
        .unwrap()
        .bytes;
    let error = chain.try_simulate(&stale).unwrap_err();
    assert!(error.contains("sequence"), "{error}");
    // Once the first is in a block, the committed state says the same.
    chain.produce();
    assert!(chain.simulate(&next) > 0);
    assert_eq!(chain.balance(&bob.address), 1_005);
}
