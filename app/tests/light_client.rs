//! A light client of a solo chain, fed from the RPC as a relayer feeds one: the headers,
//! commits and validator sets that `commit` and `validators` serve pass
//! `tendermint-light-client-verifier` (the checks of Hermes' light client, and of ibc-go's
//! 07-tendermint client), block after block and skipping; a header or commit that was altered
//! does not.

mod support;

use std::sync::Arc;
use std::time::Duration;

use nesa_app::rpc::{router, RpcContext};
use support::{TestChain, CHAIN_ID};
use tendermint::block::{signed_header::SignedHeader, Height};
use tendermint_light_client_verifier::options::Options;
use tendermint_light_client_verifier::types::{LightBlock, TrustThreshold};
use tendermint_light_client_verifier::{ProdVerifier, Verdict, Verifier};
use tendermint_rpc::{Client, HttpClient, Paging};

/// The chain's RPC on a free loopback port.
async fn serve(chain: &TestChain) -> HttpClient {
    let (committed, _) = tokio::sync::broadcast::channel(16);
    let context = Arc::new(RpcContext {
        app: chain.app.clone(),
        store: chain.store.clone(),
        mempool: chain.mempool.clone(),
        committed,
        genesis: serde_json::json!({ "chain_id": CHAIN_ID }),
        validators: chain.producer.validators().clone(),
        node_id: "0000000000000000000000000000000000000000".into(),
        moniker: "light-client-test".into(),
        rpc_address: "tcp://127.0.0.1:0".into(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(context)).await });
    HttpClient::new(format!("http://{address}").as_str()).unwrap()
}

/// The light block at `height`, read as a relayer reads it.
async fn light_block(rpc: &HttpClient, height: u64) -> LightBlock {
    let at = Height::try_from(height).unwrap();
    let commit = rpc.commit(at).await.unwrap();
    let validators = rpc.validators(at, Paging::All).await.unwrap().validators;
    let next = rpc
        .validators(at.increment(), Paging::All)
        .await
        .map(|v| v.validators)
        .unwrap_or_else(|_| validators.clone());
    let peer = "0000000000000000000000000000000000000000".parse().unwrap();
    LightBlock::new(
        commit.signed_header,
        tendermint::validator::Set::without_proposer(validators),
        tendermint::validator::Set::without_proposer(next),
        peer,
    )
}

fn options() -> Options {
    Options {
        trust_threshold: TrustThreshold::ONE_THIRD,
        trusting_period: Duration::from_secs(14 * 24 * 3600),
        clock_drift: Duration::from_secs(10),
    }
}

fn verify(untrusted: &LightBlock, trusted: &LightBlock) -> Verdict {
    let now = (untrusted.signed_header.header.time + Duration::from_secs(5)).unwrap();
    ProdVerifier::default().verify_update_header(
        untrusted.as_untrusted_state(),
        trusted.as_trusted_state(),
        &options(),
        now,
    )
}

#[tokio::test]
async fn a_light_client_verifies_solo_headers_in_sequence_and_by_skipping() {
    let chain = TestChain::new("light-client", &[]);
    for _ in 0..6 {
        chain.produce();
    }
    let rpc = serve(&chain).await;
    let latest = rpc.latest_commit().await.unwrap();
    assert_eq!(latest.signed_header.header.height.value(), 7);
    assert!(
        !latest.canonical,
        "the latest commit is the validator's seen commit"
    );
    assert!(rpc.commit(Height::from(6u32)).await.unwrap().canonical);

    let mut trusted = light_block(&rpc, 1).await;
    for height in 2..=7 {
        let next = light_block(&rpc, height).await;
        let verdict = verify(&next, &trusted);
        assert!(
            matches!(verdict, Verdict::Success),
            "height {height}: {verdict:?}"
        );
        trusted = next;
    }
    let first = light_block(&rpc, 1).await;
    let last = light_block(&rpc, 7).await;
    let verdict = verify(&last, &first);
    assert!(
        matches!(verdict, Verdict::Success),
        "skipping 1 → 7: {verdict:?}"
    );

    // The commit the RPC serves for a block is the one the next block carries.
    let carried = chain
        .store
        .block(6)
        .unwrap()
        .unwrap()
        .block
        .last_commit
        .unwrap();
    assert_eq!(light_block(&rpc, 5).await.signed_header.commit, carried);
}

#[tokio::test]
async fn an_altered_header_or_commit_is_refused() {
    let chain = TestChain::new("light-client-altered", &[]);
    for _ in 0..3 {
        chain.produce();
    }
    let rpc = serve(&chain).await;
    let trusted = light_block(&rpc, 2).await;
    let honest = light_block(&rpc, 3).await;

    let mut other_state = honest.clone();
    let mut header = other_state.signed_header.header.clone();
    header.app_hash = tendermint::AppHash::try_from(vec![7u8; 32]).unwrap();
    other_state.signed_header =
        SignedHeader::new(header, other_state.signed_header.commit.clone()).unwrap();
    assert!(matches!(
        verify(&other_state, &trusted),
        Verdict::Invalid(_)
    ));

    let mut forged = honest.clone();
    let mut commit = forged.signed_header.commit.clone();
    if let tendermint::block::CommitSig::BlockIdFlagCommit { signature, .. } =
        &mut commit.signatures[0]
    {
        let mut bytes = signature.as_ref().unwrap().as_bytes().to_vec();
        bytes[0] ^= 1;
        *signature = tendermint::Signature::try_from(bytes).ok();
    }
    forged.signed_header = SignedHeader::new(forged.signed_header.header.clone(), commit).unwrap();
    assert!(matches!(verify(&forged, &trusted), Verdict::Invalid(_)));
}
