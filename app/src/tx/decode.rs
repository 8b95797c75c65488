//! Stateless checks: a `TxRaw` is decoded and validated once into a `CheckedTx`; everything
//! after this works with checked data only. The signed bytes are kept exactly as received
//! (never re-encoded), because the signature covers them.

use cosmrs::proto::cosmos::crypto::secp256k1::PubKey;
use cosmrs::proto::cosmos::tx::signing::v1beta1::SignMode;
use cosmrs::proto::cosmos::tx::v1beta1::{mode_info, AuthInfo, TxBody, TxRaw};
use prost::Message;
use sha2::{Digest, Sha256};

use super::{Params, TxError};
use crate::modules::auth::SECP256K1_PUBKEY_TYPE_URL;
use crate::modules::bank::parse_coins;
use crate::msg::Msg;
use nesa_types::{Address, Coin};

/// How strictly to check: simulation accepts unsigned transactions without fees or gas limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeMode {
    Signed,
    Simulate,
}

/// A decoded transaction that passed every stateless check.
#[derive(Clone, Debug)]
pub struct CheckedTx {
    /// sha256 of the raw bytes (the CometBFT tx hash).
    pub hash: [u8; 32],
    /// Size of the raw transaction in bytes.
    pub size: usize,
    pub body_bytes: Vec<u8>,
    pub auth_info_bytes: Vec<u8>,
    pub signature: Vec<u8>,
    pub msgs: Vec<Msg>,
    pub memo: String,
    pub timeout_height: u64,
    /// The one account that signs every message and pays the fee.
    pub signer: Address,
    pub public_key: Option<[u8; 33]>,
    pub sequence: u64,
    pub fee: Vec<Coin>,
    pub gas_limit: u64,
}

/// Decodes `raw` and runs the stateless checks.
pub fn decode_tx(raw: &[u8], params: &Params, mode: DecodeMode) -> Result<CheckedTx, TxError> {
    if raw.len() as u64 > params.max_tx_bytes {
        return Err(TxError::TxTooLarge(format!(
            "tx is {} bytes, the limit is {}",
            raw.len(),
            params.max_tx_bytes
        )));
    }
    let tx = TxRaw::decode(raw).map_err(|e| TxError::Decode(format!("TxRaw: {e}")))?;
    let body = TxBody::decode(tx.body_bytes.as_slice())
        .map_err(|e| TxError::Decode(format!("TxBody: {e}")))?;
    let auth_info = AuthInfo::decode(tx.auth_info_bytes.as_slice())
        .map_err(|e| TxError::Decode(format!("AuthInfo: {e}")))?;
    if !body.extension_options.is_empty() || !body.non_critical_extension_options.is_empty() {
        return Err(TxError::UnknownRequest(
            "transaction extension options are not supported".into(),
        ));
    }
    if body.messages.is_empty() {
        return Err(TxError::InvalidRequest(
            "a transaction must contain at least one message".into(),
        ));
    }
    if body.memo.chars().count() as u64 > params.max_memo_characters {
        return Err(TxError::MemoTooLarge(format!(
            "maximum number of characters is {} but received {} characters",
            params.max_memo_characters,
            body.memo.chars().count()
        )));
    }
    let msgs = body
        .messages
        .iter()
        .map(|any| Msg::from_any(any).map_err(TxError::from))
        .collect::<Result<Vec<_>, _>>()?;
    let signer = msgs[0].signer();
    if msgs.iter().any(|m| m.signer() != signer) {
        return Err(TxError::Unauthorized(
            "every message in a transaction must have the same signer".into(),
        ));
    }

    let [signer_info] = auth_info.signer_infos.as_slice() else {
        return Err(TxError::Unauthorized(format!(
            "wrong number of signers; expected 1, got {}",
            auth_info.signer_infos.len()
        )));
    };
    if tx.signatures.len() != 1 {
        return Err(TxError::Unauthorized(format!(
            "expected 1 signature, got {}",
            tx.signatures.len()
        )));
    }
    let sign_mode = match signer_info.mode_info.as_ref().and_then(|m| m.sum.as_ref()) {
        Some(mode_info::Sum::Single(single)) => single.mode,
        _ => {
            return Err(TxError::Unauthorized(
                "only single-signer SIGN_MODE_DIRECT transactions are supported".into(),
            ))
        }
    };
    let signature = tx.signatures[0].clone();
    match mode {
        DecodeMode::Signed => {
            if sign_mode != SignMode::Direct as i32 {
                return Err(TxError::Unauthorized(format!(
                    "sign mode {sign_mode} is not supported; sign with SIGN_MODE_DIRECT"
                )));
            }
            if signature.len() != 64 {
                return Err(TxError::Unauthorized(format!(
                    "signature must be 64 bytes (r ‖ s), got {}",
                    signature.len()
                )));
            }
        }
        DecodeMode::Simulate => {}
    }
    let public_key = match &signer_info.public_key {
        Some(any) if any.type_url == SECP256K1_PUBKEY_TYPE_URL => {
            let key = PubKey::decode(any.value.as_slice())
                .map_err(|e| TxError::InvalidPubKey(e.to_string()))?;
            let key: [u8; 33] = key.key.try_into().map_err(|_| {
                TxError::InvalidPubKey("a secp256k1 public key is 33 bytes (compressed)".into())
            })?;
            if Address::from_secp256k1(&key) != signer {
                return Err(TxError::InvalidPubKey(format!(
                    "public key does not belong to signer {signer}"
                )));
            }
            Some(key)
        }
        Some(any) => {
            return Err(TxError::InvalidPubKey(format!(
                "unsupported public key type `{}`",
                any.type_url
            )))
        }
        None => None,
    };

    let fee = auth_info.fee.unwrap_or_default();
    if !fee.payer.is_empty() || !fee.granter.is_empty() {
        return Err(TxError::InvalidRequest(
            "fee payers and fee grants are not supported".into(),
        ));
    }
    let fee_coins = parse_coins(&fee.amount)?;
    if let Some(other) = fee_coins.iter().find(|c| c.denom != params.fee_denom) {
        return Err(TxError::InsufficientFee(format!(
            "fees are paid in {}, not {}",
            params.fee_denom, other.denom
        )));
    }
    if mode == DecodeMode::Signed && (fee.gas_limit == 0 || fee.gas_limit > params.max_tx_gas) {
        return Err(TxError::InvalidGasLimit(format!(
            "gas limit {} must be between 1 and {}",
            fee.gas_limit, params.max_tx_gas
        )));
    }

    Ok(CheckedTx {
        hash: Sha256::digest(raw).into(),
        size: raw.len(),
        body_bytes: tx.body_bytes,
        auth_info_bytes: tx.auth_info_bytes,
        signature,
        msgs,
        memo: body.memo,
        timeout_height: body.timeout_height,
        signer,
        public_key,
        sequence: signer_info.sequence,
        fee: fee_coins,
        gas_limit: fee.gas_limit,
    })
}

impl CheckedTx {
    /// The fee amount in the fee denomination.
    pub fn fee_amount(&self) -> u128 {
        self.fee.iter().map(|c| c.amount).sum()
    }
}

impl CheckedTx {
    /// What the transaction pays per unit of gas, in millionths of `fee_denom`: the order in
    /// which proposals include transactions (the Cosmos SDK's fee-based priority).
    pub fn priority(&self, fee_denom: &str) -> u128 {
        let paid: u128 = self
            .fee
            .iter()
            .filter(|coin| coin.denom == fee_denom)
            .map(|coin| coin.amount)
            .sum();
        paid.saturating_mul(1_000_000) / u128::from(self.gas_limit.max(1))
    }
}
