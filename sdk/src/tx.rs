//! The one transaction builder: messages + account state + fee → signed `TxRaw` bytes
//! (SIGN_MODE_DIRECT, one secp256k1 signer).

use cosmrs::{
    crypto::secp256k1::SigningKey,
    tendermint::{chain, Hash},
    tx::{Body, Fee, SignDoc, SignerInfo},
    Any,
};
use sha2::{Digest, Sha256};

use crate::{
    coin::{Coins, CoinsExt},
    fee::{FeeSetting, DEFAULT_GAS_LIMIT},
};

/// Why a transaction could not be built or signed.
#[derive(Debug, thiserror::Error)]
pub enum TxError {
    /// A transaction must carry at least one message.
    #[error("a transaction needs at least one message")]
    NoMessages,
    /// A message could not be packed into an `Any`.
    #[error("cannot encode message: {0}")]
    Encode(String),
    /// Protobuf encoding or signing failed.
    #[error("cannot sign the transaction: {0}")]
    Signing(String),
}

/// A signed transaction ready to broadcast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTx {
    /// Protobuf-encoded `cosmos.tx.v1beta1.TxRaw`.
    pub bytes: Vec<u8>,
    /// sha256 of `bytes`: the hash CometBFT indexes the transaction by.
    pub hash: Hash,
}

impl SignedTx {
    fn new(bytes: Vec<u8>) -> Self {
        let hash = Hash::Sha256(Sha256::digest(&bytes).into());
        Self { bytes, hash }
    }
}

/// Builds and signs a transaction for one signer; defaults: 200000 gas, fee at 0.025unes/gas, no memo.
#[derive(Clone, Debug)]
pub struct TxBuilder {
    chain_id: chain::Id,
    account_number: u64,
    sequence: u64,
    msgs: Vec<Any>,
    gas_limit: u64,
    fee: Coins,
    memo: String,
}

impl TxBuilder {
    /// A builder for the signer's account `account_number` at `sequence` on `chain_id`.
    pub fn new(chain_id: chain::Id, account_number: u64, sequence: u64) -> Self {
        let fee = FeeSetting::default()
            .fee_for(DEFAULT_GAS_LIMIT)
            .expect("default fee fits in 128 bits");
        Self {
            chain_id,
            account_number,
            sequence,
            msgs: Vec::new(),
            gas_limit: DEFAULT_GAS_LIMIT,
            fee,
            memo: String::new(),
        }
    }

    /// Appends messages, executed in order and atomically.
    pub fn msgs(mut self, msgs: impl IntoIterator<Item = Any>) -> Self {
        self.msgs.extend(msgs);
        self
    }

    /// Sets the gas limit.
    pub fn gas_limit(mut self, gas_limit: u64) -> Self {
        self.gas_limit = gas_limit;
        self
    }

    /// Sets the fee paid by the signer.
    pub fn fee(mut self, fee: Coins) -> Self {
        self.fee = fee;
        self
    }

    /// Sets the memo.
    pub fn memo(mut self, memo: impl Into<String>) -> Self {
        self.memo = memo.into();
        self
    }

    /// Signs with `key` over the SIGN_MODE_DIRECT `SignDoc` and encodes the `TxRaw`.
    pub fn sign(&self, key: &SigningKey) -> Result<SignedTx, TxError> {
        if self.msgs.is_empty() {
            return Err(TxError::NoMessages);
        }
        let signing = |e: cosmrs::ErrorReport| TxError::Signing(e.to_string());
        let body = Body::new(self.msgs.clone(), self.memo.clone(), 0u32);
        let fee = Fee {
            amount: self.fee.to_cosmrs(),
            gas_limit: self.gas_limit,
            payer: None,
            granter: None,
        };
        // The public key travels in every tx so a fresh account needs no separate key registration.
        let auth_info =
            SignerInfo::single_direct(Some(key.public_key()), self.sequence).auth_info(fee);
        let sign_doc = SignDoc::new(&body, &auth_info, &self.chain_id, self.account_number)
            .map_err(signing)?;
        let raw = sign_doc.sign(key).map_err(signing)?;
        Ok(SignedTx::new(raw.to_bytes().map_err(signing)?))
    }
}

#[cfg(test)]
mod tests {
    use cosmrs::{
        proto::{
            cosmos::tx::v1beta1::SignDoc as ProtoSignDoc, cosmos::tx::v1beta1::TxRaw,
            prost::Message,
        },
        tx::Msg,
    };
    use k256::ecdsa::{signature::Verifier, Signature, VerifyingKey};

    use super::*;
    use crate::{
        address::Address, coin::Coin, keys::signing_key_from_mnemonic, msgs::bank_send, AddressExt,
        CoinExt,
    };

    const TEST_MNEMONIC: &str = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";
    const CHAIN_ID: &str = "nesa-devnet-1";

    fn signed_send(key: &SigningKey) -> SignedTx {
        let from = Address::from_public_key(&key.public_key()).unwrap();
        let to = Address::from_bytes([9; 20]);
        let send = bank_send(&from, &to, &Coin::unes(1_000).into()).unwrap();
        TxBuilder::new(CHAIN_ID.parse().unwrap(), 7, 3)
            .msgs([send])
            .gas_limit(150_000)
            .fee(Coin::unes(3_750).into())
            .memo("hello")
            .sign(key)
            .unwrap()
    }

    #[test]
    fn signature_verifies_over_the_sign_doc_bytes_with_the_signer_pubkey() {
        let key = signing_key_from_mnemonic(TEST_MNEMONIC).unwrap();
        let signed = signed_send(&key);

        let raw = TxRaw::decode(signed.bytes.as_slice()).unwrap();
        let sign_doc_bytes = ProtoSignDoc {
            body_bytes: raw.body_bytes.clone(),
            auth_info_bytes: raw.auth_info_bytes.clone(),
            chain_id: CHAIN_ID.to_owned(),
            account_number: 7,
        }
        .encode_to_vec();
        let verifying_key = VerifyingKey::from_sec1_bytes(&key.public_key().to_bytes()).unwrap();
        let signature = Signature::from_slice(&raw.signatures[0]).unwrap();
        verifying_key.verify(&sign_doc_bytes, &signature).unwrap();
        // The chain rejects high-S signatures (malleability), so ours must already be low-S.
        assert!(signature.normalize_s().is_none());
    }

    #[test]
    fn signature_does_not_verify_for_another_account_number() {
        let key = signing_key_from_mnemonic(TEST_MNEMONIC).unwrap();
        let raw = TxRaw::decode(signed_send(&key).bytes.as_slice()).unwrap();
        let wrong_doc = ProtoSignDoc {
            body_bytes: raw.body_bytes,
            auth_info_bytes: raw.auth_info_bytes,
            chain_id: CHAIN_ID.to_owned(),
            account_number: 8,
        }
        .encode_to_vec();
        let verifying_key = VerifyingKey::from_sec1_bytes(&key.public_key().to_bytes()).unwrap();
        let signature = Signature::from_slice(&raw.signatures[0]).unwrap();
        assert!(verifying_key.verify(&wrong_doc, &signature).is_err());
    }

    #[test]
    fn signed_tx_decodes_back_with_its_fee_memo_sequence_and_message() {
        let key = signing_key_from_mnemonic(TEST_MNEMONIC).unwrap();
        let tx = cosmrs::Tx::from_bytes(&signed_send(&key).bytes).unwrap();

        assert_eq!(tx.body.memo, "hello");
        assert_eq!(tx.auth_info.fee.gas_limit, 150_000);
        assert_eq!(tx.auth_info.fee.amount, vec![Coin::unes(3_750).to_cosmrs()]);
        assert_eq!(tx.auth_info.signer_infos[0].sequence, 3);
        assert_eq!(tx.signatures.len(), 1);
        let send = cosmrs::bank::MsgSend::from_any(&tx.body.messages[0]).unwrap();
        assert_eq!(send.amount, vec![Coin::unes(1_000).to_cosmrs()]);
        assert_eq!(
            send.to_address.as_ref(),
            Address::from_bytes([9; 20]).to_string()
        );
    }

    #[test]
    fn tx_hash_is_the_uppercase_sha256_cometbft_reports() {
        let key = signing_key_from_mnemonic(TEST_MNEMONIC).unwrap();
        let signed = signed_send(&key);
        let expected = hex::encode_upper(Sha256::digest(&signed.bytes));
        assert_eq!(signed.hash.to_string(), expected);
    }

    #[test]
    fn tx_without_messages_is_refused() {
        let key = signing_key_from_mnemonic(TEST_MNEMONIC).unwrap();
        let builder = TxBuilder::new(CHAIN_ID.parse().unwrap(), 0, 0);
        assert!(matches!(builder.sign(&key), Err(TxError::NoMessages)));
    }
}
