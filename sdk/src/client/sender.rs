//! The one sending path: every transaction of the sdk, the `nesa` CLI and the node runner is
//! signed, simulated, broadcast and confirmed here. The next sequence is tracked locally (so
//! back-to-back transactions of a long-running process do not wait for each other) and
//! re-read from the chain when the node says it is wrong.

use std::borrow::Borrow;

use cosmrs::crypto::secp256k1::SigningKey;
use cosmrs::Any;
use serde::Serialize;

use super::broadcast::Simulate;
use super::contracts::execute_msg;
use super::{ChainClient, ClientError, SendTxOptions, TxOutcome};
use crate::tx::SignedTx;
use crate::{Address, AddressExt, Coins, ContractAddress};

/// The SDK's "account sequence mismatch" code.
const WRONG_SEQUENCE: u32 = 32;

/// Submits transactions for one key (owned, or borrowed with `&SigningKey`), keeping its
/// sequence.
pub struct TxSender<'c, K: Borrow<SigningKey> = SigningKey> {
    client: &'c ChainClient,
    key: K,
    address: Address,
    account_number: Option<u64>,
    next_sequence: Option<u64>,
}

impl<'c, K: Borrow<SigningKey>> TxSender<'c, K> {
    /// A sender for `key` through `client`.
    pub fn new(client: &'c ChainClient, key: K) -> Result<Self, ClientError> {
        let address = Address::from_public_key(&key.borrow().public_key()).map_err(|e| {
            ClientError::Decode {
                what: "signer public key",
                reason: e.to_string(),
            }
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

    /// Signs, then broadcasts; a wrong-sequence rejection re-reads the account and retries once.
    async fn sign_and_broadcast(
        &mut self,
        msgs: Vec<Any>,
        options: &SendTxOptions,
        simulate: Simulate,
    ) -> Result<SignedTx, ClientError> {
        for attempt in 0..2 {
            let account = self.sync().await?;
            // A refused simulation leaves the tracked sequence alone: earlier transactions of
            // this signer may still wait in the mempool.
            let signed = self
                .client
                .sign_checked(self.key.borrow(), account, msgs.clone(), options, simulate)
                .await?;
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

    /// Waits until `signed` is in a block (errors if it failed there).
    async fn confirm(
        &mut self,
        signed: SignedTx,
        options: &SendTxOptions,
    ) -> Result<TxOutcome, ClientError> {
        self.client
            .wait_for_tx(signed.hash, options.timeout)
            .await
            .inspect_err(|_| {
                self.next_sequence = None;
            })
    }

    /// Signs and broadcasts `msgs`; returns the signed transaction once CheckTx accepted it.
    pub async fn broadcast(
        &mut self,
        msgs: Vec<Any>,
        options: &SendTxOptions,
    ) -> Result<SignedTx, ClientError> {
        self.sign_and_broadcast(msgs, options, Simulate::WhenAuto)
            .await
    }

    /// Broadcasts and waits until the transaction is in a block (errors if it failed there).
    pub async fn send(
        &mut self,
        msgs: Vec<Any>,
        options: &SendTxOptions,
    ) -> Result<TxOutcome, ClientError> {
        let signed = self.broadcast(msgs, options).await?;
        self.confirm(signed, options).await
    }

    /// Executes `msg` on `contract`, sending `funds` with it, and waits for the block. The call
    /// is always simulated first, so a call the contract refuses fails here with the contract's
    /// own error ([`ClientError::Simulation`]) before any fee is paid or any funds move.
    pub async fn execute_contract(
        &mut self,
        contract: &ContractAddress,
        msg: &impl Serialize,
        funds: &Coins,
        options: &SendTxOptions,
    ) -> Result<TxOutcome, ClientError> {
        let signed = self
            .broadcast_contract(contract, msg, funds, options)
            .await?;
        self.confirm(signed, options).await
    }

    /// [`Self::execute_contract`] without waiting: returns once CheckTx accepted the call, for
    /// loops that send several calls per block and read their effects from chain state.
    pub async fn broadcast_contract(
        &mut self,
        contract: &ContractAddress,
        msg: &impl Serialize,
        funds: &Coins,
        options: &SendTxOptions,
    ) -> Result<SignedTx, ClientError> {
        let msg = execute_msg(&self.address, contract, msg, funds)?;
        self.sign_and_broadcast(vec![msg], options, Simulate::Always)
            .await
    }
}

impl ChainClient {
    /// Executes `msg` on `contract` as `key`, sending `funds`: one-off form of
    /// [`TxSender::execute_contract`] (simulated first, then signed, broadcast and confirmed).
    pub async fn execute_contract(
        &self,
        key: &SigningKey,
        contract: &ContractAddress,
        msg: &impl Serialize,
        funds: &Coins,
        options: &SendTxOptions,
    ) -> Result<TxOutcome, ClientError> {
        TxSender::new(self, key)?
            .execute_contract(contract, msg, funds, options)
            .await
    }
}
