//! CosmWasm contracts: execute messages and smart queries, JSON in and out.

use cosmrs::proto::cosmwasm::wasm::v1::{
    MsgExecuteContract, QuerySmartContractStateRequest, QuerySmartContractStateResponse,
};
use cosmrs::Any;
use prost::Message;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{ChainClient, ClientError};
pub use crate::nesa_types::MarketContracts;
use crate::{Address, Coins, CoinsExt, ContractAddress, MARKET_CONTRACTS_PATH};

/// A `MsgExecuteContract` from `sender` calling `contract` with `msg` (serialised as JSON);
/// sent through [`super::TxSender::execute_contract`].
pub(crate) fn execute_msg(
    sender: &Address,
    contract: &ContractAddress,
    msg: &impl Serialize,
    funds: &Coins,
) -> Result<Any, ClientError> {
    let msg = serde_json::to_vec(msg).map_err(|e| ClientError::Decode {
        what: "contract message",
        reason: e.to_string(),
    })?;
    let execute = MsgExecuteContract {
        sender: sender.to_string(),
        contract: contract.to_string(),
        msg,
        funds: funds.to_proto(),
    };
    Ok(Any {
        type_url: "/cosmwasm.wasm.v1.MsgExecuteContract".into(),
        value: execute.encode_to_vec(),
    })
}

impl ChainClient {
    /// Asks `contract` a smart query and decodes its JSON answer.
    pub async fn query_contract<T: DeserializeOwned>(
        &self,
        contract: &ContractAddress,
        query: &impl Serialize,
    ) -> Result<T, ClientError> {
        let request = QuerySmartContractStateRequest {
            address: contract.to_string(),
            query_data: serde_json::to_vec(query).map_err(|e| ClientError::Decode {
                what: "contract query",
                reason: e.to_string(),
            })?,
        };
        let response: QuerySmartContractStateResponse = self
            .abci_query("/cosmwasm.wasm.v1.Query/SmartContractState", &request)
            .await?;
        serde_json::from_slice(&response.data).map_err(|e| ClientError::Decode {
            what: "contract answer",
            reason: format!("{contract}: {e}"),
        })
    }
}

impl ChainClient {
    /// The genesis market contracts, as the chain reports them.
    pub async fn market_contracts(&self) -> Result<MarketContracts, ClientError> {
        use tendermint_rpc::Client;
        let path = MARKET_CONTRACTS_PATH;
        let answer = self
            .rpc
            .abci_query(Some(path.to_owned()), vec![], None, false)
            .await
            .map_err(|e| self.rpc_error(e))?;
        if answer.code.is_err() {
            return Err(ClientError::QueryFailed {
                path: path.to_owned(),
                code: answer.code.value(),
                log: answer.log,
            });
        }
        serde_json::from_slice(&answer.value).map_err(|e| ClientError::Decode {
            what: "market contracts",
            reason: e.to_string(),
        })
    }
}
