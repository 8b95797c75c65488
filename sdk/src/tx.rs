//! The one transaction builder: messages + account state + fee → signed `TxRaw` bytes
//! (SIGN_MODE_DIRECT, one secp256k1 signer).

use cosmrs::{
    crypto::{secp256k1::SigningKey, PublicKey},
    proto::{
        cosmos::tx::v1beta1::{SignDoc as ProtoSignDoc, TxRaw},
        prost::Message,
    },
    tendermint::{chain, Hash},
    tx::{Body, Fee, SignerInfo},
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
        let doc = self.sign_doc(key.public_key())?;
        let signature = key
            .sign(&doc.to_bytes())
            .map_err(|e| TxError::Signing(e.to_string()))?;
        Ok(doc.with_signature(signature.to_bytes().to_vec()))
    }

    /// The SIGN_MODE_DIRECT `SignDoc` a signer holding `public_key`'s private key signs
    /// elsewhere (a wallet such as Keplr): the same bytes [`TxBuilder::sign`] signs.
    pub fn sign_doc(&self, public_key: PublicKey) -> Result<SignDocParts, TxError> {
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
        let auth_info = SignerInfo::single_direct(Some(public_key), self.sequence).auth_info(fee);
        Ok(SignDocParts {
            body_bytes: body.into_bytes().map_err(signing)?,
            auth_info_bytes: auth_info.into_bytes().map_err(signing)?,
            chain_id: self.chain_id.to_string(),
            account_number: self.account_number,
        })
    }
}

/// A SIGN_MODE_DIRECT `SignDoc` in its four fields, as wallets' `signDirect` take it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignDocParts {
    /// Protobuf `TxBody`: the messages and memo.
    pub body_bytes: Vec<u8>,
    /// Protobuf `AuthInfo`: signer, sequence and fee.
    pub auth_info_bytes: Vec<u8>,
    pub chain_id: String,
    pub account_number: u64,
}

impl SignDocParts {
    /// The bytes a signature covers (a secp256k1 signature over their sha256).
    pub fn to_bytes(&self) -> Vec<u8> {
        ProtoSignDoc {
            body_bytes: self.body_bytes.clone(),
            auth_info_bytes: self.auth_info_bytes.clone(),
            chain_id: self.chain_id.clone(),
            account_number: self.account_number,
        }
        .encode_to_vec()
    }

    /// The `TxRaw` carrying `signature` (64 bytes r ‖ s; empty for a simulation, which
    /// checks no signature).
    pub fn with_signature(&self, signature: Vec<u8>) -> SignedTx {
        let raw = TxRaw {
            body_bytes: self.body_bytes.clone(),
            auth_info_bytes: self.auth_info_bytes.clone(),
            signatures: vec![signature],
        };
        SignedTx::new(raw.encode_to_vec())
    }
}

#[cfg(test)]
mod tests {
    use cosmrs::tx::Msg;
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
    fn a_sign_doc_signed_elsewhere_makes_the_same_transaction() {
        let key = signing_key_from_mnemonic(TEST_MNEMONIC).unwrap();
        let from = Address::from_public_key(&key.public_key()).unwrap();
        let send = bank_send(&from, &Address::from_bytes([9; 20]), &Coin::unes(5).into()).unwrap();
        let builder = TxBuilder::new(CHAIN_ID.parse().unwrap(), 7, 3).msgs([send]);
        let doc = builder.sign_doc(key.public_key()).unwrap();
        assert_eq!((doc.chain_id.as_str(), doc.account_number), (CHAIN_ID, 7));
        let signature = key.sign(&doc.to_bytes()).unwrap().to_bytes().to_vec();
        assert_eq!(doc.with_signature(signature), builder.sign(&key).unwrap());
        let unsigned = TxRaw::decode(doc.with_signature(Vec::new()).bytes.as_slice()).unwrap();
        assert_eq!(unsigned.signatures, vec![Vec::<u8>::new()]);
    }

    #[test]
    fn tx_without_messages_is_refused() {
        let key = signing_key_from_mnemonic(TEST_MNEMONIC).unwrap();
        let builder = TxBuilder::new(CHAIN_ID.parse().unwrap(), 0, 0);
        assert!(matches!(builder.sign(&key), Err(TxError::NoMessages)));
    }
}
