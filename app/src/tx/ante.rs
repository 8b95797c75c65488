//! Stateful checks before any message runs: timeout, fee, account, public key, sequence and
//! signature; then the fee is taken and the sequence advances. These effects persist even when
//! a message later fails.

use base64::Engine;
use cosmrs::proto::cosmos::tx::v1beta1::SignDoc;
use k256::ecdsa::signature::Verifier;
use k256::ecdsa::{Signature, VerifyingKey};
use prost::Message;
use tendermint_proto::v0_38::abci::Event;

use super::{CheckedTx, ExecMode, TxEnv, TxError};
use crate::events::event;
use crate::modules::auth;
use crate::modules::bank::{self, BankError};
use crate::state::{GasCosts, GasMeter, StateWrite};
use nesa_types::{Address, Coin};

/// The module account that collects fees.
pub fn fee_collector() -> Address {
    Address::module("fee_collector")
}

/// Runs the ante checks against `state`, charging `meter`.
pub fn ante(
    state: &mut (impl StateWrite + ?Sized),
    meter: &GasMeter,
    tx: &CheckedTx,
    env: &TxEnv,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    if tx.timeout_height > 0 && env.height > tx.timeout_height {
        return Err(TxError::TimeoutHeight(format!(
            "block height {} is past the tx's timeout height {}",
            env.height, tx.timeout_height
        )));
    }
    if env.mode != ExecMode::Simulate {
        let required = env.params.required_fee(tx.gas_limit);
        let paid = tx.fee_amount();
        if paid < required {
            return Err(TxError::InsufficientFee(format!(
                "insufficient fees; got: {paid}{denom} required: {required}{denom}",
                denom = env.params.fee_denom
            )));
        }
    }

    let mut account = auth::account(state, &tx.signer)?
        .ok_or_else(|| TxError::UnknownAddress(tx.signer.to_string()))?;
    let public_key = match (account.pub_key, tx.public_key) {
        (Some(stored), Some(given)) if stored != given => {
            return Err(TxError::InvalidPubKey(format!(
                "public key does not match the one stored for {}",
                tx.signer
            )))
        }
        (Some(stored), _) => stored,
        (None, Some(given)) => given,
        (None, None) => {
            return Err(TxError::InvalidPubKey(format!(
                "account {} has no public key yet; include it in the signer info",
                tx.signer
            )))
        }
    };
    if tx.sequence != account.sequence {
        return Err(TxError::WrongSequence {
            expected: account.sequence,
            got: tx.sequence,
        });
    }
    meter.consume(
        GasCosts::SDK.sig_verify_secp256k1,
        "secp256k1 signature verification",
    )?;
    if env.mode != ExecMode::Simulate {
        let cached = env
            .signatures
            .is_some_and(|c| c.contains(&tx.hash, account.account_number, &public_key));
        if !cached {
            verify_signature(tx, &public_key, env.chain_id, account.account_number)?;
            if let Some(cache) = env.signatures {
                cache.insert(&tx.hash, account.account_number, &public_key);
            }
        }
    }

    if env.mode == ExecMode::Simulate && tx.fee.is_empty() {
        // Clients simulate before they know the fee: charge what the fee transfer and the
        // missing signature will cost, so the estimate covers the signed transaction.
        meter.consume(GasCosts::SDK.tx_size_per_byte * 64, "txSize")?;
        let probe = [Coin {
            denom: env.params.fee_denom.clone(),
            amount: 1,
        }];
        match bank::send(state, &tx.signer, &fee_collector(), &probe, &mut vec![]) {
            Ok(()) | Err(BankError::InsufficientFunds(_)) => {}
            Err(other) => return Err(other.into()),
        }
    }
    let fee_text = nesa_types::format_coins(&tx.fee);
    if !tx.fee.is_empty() {
        let mut fee_events = vec![];
        bank::send(
            state,
            &tx.signer,
            &fee_collector(),
            &tx.fee,
            &mut fee_events,
        )
        .map_err(|e| match e {
            BankError::InsufficientFunds(reason) => {
                TxError::InsufficientFunds(format!("insufficient funds to pay the fee: {reason}"))
            }
            other => other.into(),
        })?;
        events.extend(fee_events);
    }
    let signer = tx.signer.to_string();
    events.push(event("tx", &[("fee", &fee_text), ("fee_payer", &signer)]));
    events.push(event(
        "tx",
        &[("acc_seq", &format!("{signer}/{}", account.sequence))],
    ));
    let signature = base64::engine::general_purpose::STANDARD.encode(&tx.signature);
    events.push(event("tx", &[("signature", &signature)]));

    account.pub_key = Some(public_key);
    account.sequence += 1;
    auth::set_account(state, &account)?;
    Ok(())
}

/// Verifies the SIGN_MODE_DIRECT signature over the received body and auth-info bytes.
/// A wrong chain id or account number changes the signed bytes, so they fail here too.
fn verify_signature(
    tx: &CheckedTx,
    public_key: &[u8; 33],
    chain_id: &str,
    account_number: u64,
) -> Result<(), TxError> {
    let failure = || TxError::SignatureVerification {
        account_number,
        sequence: tx.sequence,
        chain_id: chain_id.to_string(),
    };
    let sign_doc = SignDoc {
        body_bytes: tx.body_bytes.clone(),
        auth_info_bytes: tx.auth_info_bytes.clone(),
        chain_id: chain_id.to_string(),
        account_number,
    };
    let key = VerifyingKey::from_sec1_bytes(public_key)
        .map_err(|e| TxError::InvalidPubKey(e.to_string()))?;
    let signature = Signature::from_slice(&tx.signature).map_err(|_| failure())?;
    if signature.normalize_s().is_some() {
        // High-S signatures are malleable; the SDK rejects them too.
        return Err(failure());
    }
    key.verify(&sign_doc.encode_to_vec(), &signature)
        .map_err(|_| failure())
}
