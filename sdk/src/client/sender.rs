//! Sequence-safe submission for long-running processes: one signer, many transactions, several
//! per block. The next sequence is tracked locally (so back-to-back transactions do not wait for
//! each other) and re-read from the chain when the node says it is wrong.

use cosmrs::crypto::secp256k1::SigningKey;
use cosmrs::Any;

use super::{ChainClient, ClientError, SendTxOptions, TxOutcome};
use crate::tx::SignedTx;
use crate::{Address, AddressExt};

/// The SDK's "account sequence mismatch" code.
const WRONG_SEQUENCE: u32 = 32;

/// Submits transactions for one key, keeping its sequence.
pub struct TxSender<'c> {
    client: &'c ChainClient,
    key: SigningKey,
    address: Address,
    account_number: Option<u64>,
    next_sequence: Option<u64>,
}

impl<'c> TxSender<'c> {
    /// A sender for `key` through `client`.
    pub fn new(client: &'c ChainClient, key: SigningKey) -> Result<Self, ClientError> {
        let address =
            Address::from_public_key(&key.public_key()).map_err(|e| ClientError::Decode {
                what: "signer public key",
                reason: e.to_string(),
            })?;
        Ok(TxSender {
            client,
            key,
            address,
            account_number: None,
            next_sequence: None,
        })
    }

    /// The signer's address.
    pub fn address(&self) -> &Address {
        &self.address
    }

    async fn sync(&mut self) -> Result<(u64, u64), ClientError> {
        if let (Some(number), Some(sequence)) = (self.account_number, self.next_sequence) {
            return Ok((number, sequence));
        }
        let account = self.client.account(&self.address).await?;
        self.account_number = Some(account.account_number);
        self.next_sequence = Some(account.sequence);
        Ok((account.account_number, account.sequence))
    }

    async fn sign(
        &mut self,
        msgs: &[Any],
        options: &SendTxOptions,
    ) -> Result<SignedTx, ClientError> {
        let (account_number, sequence) = self.sync().await?;
        self.client
            .sign_at(&self.key, account_number, sequence, msgs.to_vec(), options)
            .await
    }

    /// Signs and broadcasts `msgs`; returns the signed transaction once CheckTx accepted it.
    /// A wrong-sequence rejection re-reads the account and retries once.
    pub async fn broadcast(
        &mut self,
        msgs: Vec<Any>,
        options: &SendTxOptions,
    ) -> Result<SignedTx, ClientError> {
        for attempt in 0..2 {
            let signed = self.sign(&msgs, options).await?;
            match self.client.broadcast_sync(&signed).await {
                Ok(_) => {
                    self.next_sequence = self.next_sequence.map(|s| s + 1);
                    return Ok(signed);
                }
                Err(ClientError::CheckTx {
                    code: WRONG_SEQUENCE,
                    ..
                }) if attempt == 0 => {
                    self.next_sequence = None;
                }
                Err(e) => {
                    // The node may be behind or the tx invalid; start from the chain's view next time.
                    self.next_sequence = None;
                    return Err(e);
                }
            }
        }
        unreachable!("the loop returns on the second attempt")
    }

    /// Broadcasts and waits until the transaction is in a block (errors if it failed there).
    pub async fn send(
        &mut self,
        msgs: Vec<Any>,
        options: &SendTxOptions,
    ) -> Result<TxOutcome, ClientError> {
        let signed = self.broadcast(msgs, options).await?;
        self.client
            .wait_for_tx(signed.hash, options.timeout)
            .await
            .inspect_err(|_| {
                self.next_sequence = None;
            })
    }
}
