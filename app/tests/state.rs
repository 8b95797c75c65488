//! State guarantees: proofs verify against the app hash of their height, execution is
//! deterministic (the app hash of a scripted sequence is pinned), and a restart loses nothing.

mod support;

use nesa_app::query::PROOF_OP_TYPE;
use nesa_sdk::cosmrs::proto::cosmos::bank::v1beta1::QuerySupplyOfRequest;
use nesa_sdk::AddressExt;
use prost::Message;
use support::{TestAccount, TestChain};
use tendermint_proto::v0_38::abci::RequestQuery;

fn balance_key(address: &nesa_sdk::Address) -> Vec<u8> {
    // `store/bank/key` keys are relative to the bank prefix: `balance/<len><address><denom>`.
    let bytes = address.to_account_id().to_bytes();
    [
        b"balance/".as_slice(),
        &[bytes.len() as u8],
        &bytes,
        b"unes",
    ]
    .concat()
}

#[test]
fn a_balance_proof_verifies_against_the_app_hash_of_its_height() {
    let mut alice = TestAccount::from_seed(1, 0);
    let bob = TestAccount::from_seed(2, 1);
    let chain = TestChain::new("proof", &[(&alice.address, 1_000_000), (&bob.address, 0)]);
    let tx = alice.sign(vec![alice.send_msg(&bob.address, 4_242)]);
    assert_eq!(chain.submit(&tx).code, 0);
    let proven_height = chain.produce().block.header.height.value();
    // Later blocks change the state again; the proof must still be about `proven_height`.
    let tx = alice.sign(vec![alice.send_msg(&bob.address, 1)]);
    assert_eq!(chain.submit(&tx).code, 0);
    chain.produce();
    let next = chain.produce();
    assert!(next.block.header.height.value() > proven_height + 1);

    let response = chain.app.query(RequestQuery {
        path: "store/bank/key".into(),
        data: balance_key(&bob.address).into(),
        height: proven_height as i64,
        prove: true,
    });
    assert_eq!(response.code, 0, "{}", response.log);
    assert_eq!(response.height, proven_height as i64);
    assert_eq!(response.value.as_ref(), b"4242");
    let ops = response.proof_ops.expect("proof requested").ops;
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].r#type, PROOF_OP_TYPE);
    let proof = ics23::CommitmentProof::decode(ops[0].data.as_slice()).unwrap();

    // A light client trusts the header of the next block, which carries this height's app hash.
    let header_app_hash = chain
        .store
        .block(proven_height + 1)
        .unwrap()
        .unwrap()
        .block
        .header
        .app_hash;
    let root = header_app_hash.as_bytes().to_vec();
    let spec = jmt::ics23_spec();
    assert!(ics23::verify_membership::<ics23::HostFunctionsManager>(
        &proof,
        &spec,
        &root,
        &ops[0].key,
        b"4242"
    ));
    assert!(!ics23::verify_membership::<ics23::HostFunctionsManager>(
        &proof,
        &spec,
        &root,
        &ops[0].key,
        b"4243"
    ));
    let latest_root = chain.app_hash().to_vec();
    assert!(!ics23::verify_membership::<ics23::HostFunctionsManager>(
        &proof,
        &spec,
        &latest_root,
        &ops[0].key,
        b"4242"
    ));
}

#[test]
fn an_absent_balance_has_a_non_membership_proof() {
    let alice = TestAccount::from_seed(1, 0);
    let stranger = TestAccount::from_seed(9, 99);
    let chain = TestChain::new("absent", &[(&alice.address, 10)]);
    chain.produce();
    let height = chain.height() - 1;
    let response = chain.app.query(RequestQuery {
        path: "store/bank/key".into(),
        data: balance_key(&stranger.address).into(),
        height: height as i64,
        prove: true,
    });
    assert_eq!(response.code, 0, "{}", response.log);
    assert!(response.value.is_empty());
    let op = &response.proof_ops.unwrap().ops[0];
    let proof = ics23::CommitmentProof::decode(op.data.as_slice()).unwrap();
    let root = chain.app.storage().root_at(height).unwrap().to_vec();
    assert!(ics23::verify_non_membership::<ics23::HostFunctionsManager>(
        &proof,
        &jmt::ics23_spec(),
        &root,
        &op.key
    ));
}

#[test]
fn queries_at_past_heights_see_past_state_and_future_heights_are_refused() {
    let mut alice = TestAccount::from_seed(1, 0);
    let bob = TestAccount::from_seed(2, 1);
    let chain = TestChain::new("history", &[(&alice.address, 1_000_000), (&bob.address, 0)]);
    let before = chain.height();
    let tx = alice.sign(vec![alice.send_msg(&bob.address, 7)]);
    assert_eq!(chain.submit(&tx).code, 0);
    chain.produce();
    let supply_at = |height: i64| {
        chain.app.query(RequestQuery {
            path: "/cosmos.bank.v1beta1.Query/SupplyOf".into(),
            data: QuerySupplyOfRequest {
                denom: "unes".into(),
            }
            .encode_to_vec()
            .into(),
            height,
            prove: false,
        })
    };
    assert_eq!(
        supply_at(before as i64).code,
        0,
        "point queries work at past heights"
    );
    let future = supply_at(chain.height() as i64 + 5);
    assert_ne!(future.code, 0);
    assert!(future.log.contains("is not available"), "{}", future.log);
}

/// The app hash after a fixed sequence of transactions. Any change to consensus-visible state
/// (key layout, encoding, gas, events in state) changes it: update it only on purpose.
const SCRIPTED_APP_HASH: &str = "C332196209D7B7514C77AD56FC19E91268086F50CA31CD0FCBCEF6041BEBAC9A";

#[test]
fn the_app_hash_of_a_scripted_sequence_is_pinned() {
    let mut alice = TestAccount::from_seed(1, 0);
    let mut bob = TestAccount::from_seed(2, 1);
    let carol = TestAccount::from_seed(3, 2);
    let chain = TestChain::new(
        "snapshot",
        &[(&alice.address, 1_000_000_000), (&bob.address, 50_000)],
    );
    let blocks = vec![
        vec![
            alice.sign(vec![alice.send_msg(&bob.address, 1_000)]),
            bob.sign(vec![bob.send_msg(&carol.address, 7)]),
        ],
        vec![alice.sign(vec![
            alice.send_msg(&carol.address, 5),
            alice.send_msg(&bob.address, 6),
        ])],
        vec![bob.sign(vec![bob.send_msg(&alice.address, 10_000_000)])],
        vec![],
    ];
    for txs in blocks {
        chain.finalize(txs);
    }
    assert_eq!(hex::encode_upper(chain.app_hash()), SCRIPTED_APP_HASH);
}

#[test]
fn a_reopened_chain_resumes_at_its_last_commit() {
    let mut alice = TestAccount::from_seed(1, 0);
    let bob = TestAccount::from_seed(2, 1);
    let chain = TestChain::new("reopen", &[(&alice.address, 1_000_000), (&bob.address, 0)]);
    let tx = alice.sign(vec![alice.send_msg(&bob.address, 99)]);
    assert_eq!(chain.submit(&tx).code, 0);
    chain.produce();
    let (height, hash) = (chain.height(), chain.app_hash());
    let reopened = TestChain::open(chain.close());
    assert_eq!(reopened.height(), height);
    assert_eq!(reopened.app_hash(), hash);
    assert_eq!(reopened.balance(&bob.address), 99);
    let next = reopened.produce();
    assert_eq!(next.block.header.height.value(), height + 1);
    assert_eq!(next.block.header.app_hash.as_bytes(), hash);
}
