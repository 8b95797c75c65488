//! `/cosmwasm.wasm.v1.Query/*` handlers, as CosmJS's `CosmWasmClient` calls them.

use std::sync::Arc;

use cosmrs::proto::cosmos::base::query::v1beta1::{PageRequest, PageResponse};
use cosmrs::proto::cosmwasm::wasm::v1 as proto;
use prost::Message;

use super::limits::QUERY_GAS_LIMIT;
use super::vm::{CallSite, WasmVm};
use super::{keys, store, WasmError};
use crate::modules::QueryError;
use crate::state::{GasMeter, Overlay, StateRead};
use nesa_types::Address;

/// `Query/CodeInfo` (wasmd ≥ 0.54); not in the generated protos we link, so declared here.
#[derive(Clone, PartialEq, Message)]
pub struct QueryCodeInfoRequest {
    #[prost(uint64, tag = "1")]
    pub code_id: u64,
}

/// Response of `Query/CodeInfo`.
#[derive(Clone, PartialEq, Message)]
pub struct QueryCodeInfoResponse {
    #[prost(uint64, tag = "1")]
    pub code_id: u64,
    #[prost(string, tag = "2")]
    pub creator: String,
    #[prost(bytes = "vec", tag = "3")]
    pub checksum: Vec<u8>,
    #[prost(message, optional, tag = "4")]
    pub instantiate_permission: Option<proto::AccessConfig>,
}

/// True for the wasm query paths this module serves.
pub fn serves(path: &str) -> bool {
    path.starts_with("/cosmwasm.wasm.v1.Query/")
}

impl From<WasmError> for QueryError {
    fn from(e: WasmError) -> Self {
        match e {
            WasmError::NoSuchCode(_) | WasmError::NoSuchContract(_) => {
                QueryError::NotFound(e.to_string())
            }
            WasmError::State(s) => QueryError::State(s),
            other => QueryError::InvalidRequest(other.to_string()),
        }
    }
}

fn everybody() -> Option<proto::AccessConfig> {
    // ACCESS_TYPE_EVERYBODY: uploads and instantiation are permissionless.
    Some(proto::AccessConfig {
        permission: 3,
        addresses: vec![],
    })
}

fn contract_info_proto(info: &store::ContractInfo) -> proto::ContractInfo {
    proto::ContractInfo {
        code_id: info.code_id,
        creator: info.creator.clone(),
        admin: info.admin.clone().unwrap_or_default(),
        label: info.label.clone(),
        created: Some(proto::AbsoluteTxPosition {
            block_height: info.created_height,
            tx_index: info.created_tx_index,
        }),
        ibc_port_id: String::new(),
        extension: None,
    }
}

fn page(pagination: Option<PageRequest>) -> (Vec<u8>, usize) {
    let request = pagination.unwrap_or_default();
    let limit = if request.limit == 0 {
        100
    } else {
        request.limit.min(1000) as usize
    };
    (request.key, limit)
}

/// Answers a wasm query over `state` (latest or historical), running smart queries in the VM.
pub fn answer<S: StateRead>(
    path: &str,
    state: &S,
    vm: &Arc<WasmVm>,
    site: &CallSite,
    data: &[u8],
) -> Result<Vec<u8>, QueryError> {
    let method = path.trim_start_matches("/cosmwasm.wasm.v1.Query/");
    Ok(match method {
        "SmartContractState" => {
            let request = proto::QuerySmartContractStateRequest::decode(data)?;
            let contract: Address = request.address.parse()?;
            if serde_json::from_slice::<serde_json::Value>(&request.query_data).is_err() {
                return Err(QueryError::InvalidRequest(
                    "query data must be valid JSON".into(),
                ));
            }
            let meter = GasMeter::new(QUERY_GAS_LIMIT);
            let mut view = Overlay::new(state);
            let answer = vm
                .query(&mut view, &meter, site, &contract, &request.query_data)
                .map_err(|e| match e {
                    WasmError::NoSuchCode(_)
                    | WasmError::NoSuchContract(_)
                    | WasmError::State(_) => QueryError::from(e),
                    other => {
                        QueryError::InvalidRequest(format!("{}: query wasm contract failed", other))
                    }
                })?;
            proto::QuerySmartContractStateResponse {
                data: answer.to_vec(),
            }
            .encode_to_vec()
        }
        "RawContractState" => {
            let request = proto::QueryRawContractStateRequest::decode(data)?;
            let contract: Address = request.address.parse()?;
            store::contract(state, &contract)?;
            let key = [
                keys::contract_store(&contract).as_slice(),
                &request.query_data,
            ]
            .concat();
            proto::QueryRawContractStateResponse {
                data: state.get(&key)?.unwrap_or_default(),
            }
            .encode_to_vec()
        }
        "ContractInfo" => {
            let request = proto::QueryContractInfoRequest::decode(data)?;
            let contract: Address = request.address.parse()?;
            let info = store::contract(state, &contract)?;
            proto::QueryContractInfoResponse {
                address: contract.to_string(),
                contract_info: Some(contract_info_proto(&info)),
            }
            .encode_to_vec()
        }
        "ContractsByCode" => {
            let request = proto::QueryContractsByCodeRequest::decode(data)?;
            store::code(state, request.code_id)?;
            let all = store::contracts_by_code(state, request.code_id)?;
            let (start_key, limit) = page(request.pagination);
            let start = if start_key.is_empty() {
                0
            } else {
                all.iter()
                    .position(|a| a.as_bytes() == start_key.as_slice())
                    .unwrap_or(all.len())
            };
            let chosen: Vec<&Address> = all.iter().skip(start).take(limit).collect();
            let next_key = all
                .get(start + limit)
                .map(|a| a.as_bytes().to_vec())
                .unwrap_or_default();
            proto::QueryContractsByCodeResponse {
                contracts: chosen.iter().map(|a| a.to_string()).collect(),
                pagination: Some(PageResponse {
                    next_key,
                    total: all.len() as u64,
                }),
            }
            .encode_to_vec()
        }
        "Code" => {
            let request = proto::QueryCodeRequest::decode(data)?;
            let info = store::code(state, request.code_id)?;
            let wasm = store::code_bytes(state, request.code_id)?;
            proto::QueryCodeResponse {
                code_info: Some(proto::CodeInfoResponse {
                    code_id: request.code_id,
                    creator: info.creator.clone(),
                    data_hash: info.checksum_bytes().to_vec(),
                    instantiate_permission: everybody(),
                }),
                data: wasm,
            }
            .encode_to_vec()
        }
        "CodeInfo" => {
            let request = QueryCodeInfoRequest::decode(data)?;
            let info = store::code(state, request.code_id)?;
            QueryCodeInfoResponse {
                code_id: request.code_id,
                creator: info.creator.clone(),
                checksum: info.checksum_bytes().to_vec(),
                instantiate_permission: everybody(),
            }
            .encode_to_vec()
        }
        "Codes" => {
            let request = proto::QueryCodesRequest::decode(data)?;
            let (start_key, limit) = page(request.pagination);
            let start_id = if start_key.len() == 8 {
                u64::from_be_bytes(start_key.try_into().unwrap())
            } else {
                0
            };
            let all = store::codes(state)?;
            let chosen: Vec<_> = all
                .iter()
                .filter(|(id, _)| *id >= start_id)
                .take(limit + 1)
                .collect();
            let next_key = chosen
                .get(limit)
                .map(|(id, _)| id.to_be_bytes().to_vec())
                .unwrap_or_default();
            proto::QueryCodesResponse {
                code_infos: chosen
                    .iter()
                    .take(limit)
                    .map(|(id, info)| proto::CodeInfoResponse {
                        code_id: *id,
                        creator: info.creator.clone(),
                        data_hash: info.checksum_bytes().to_vec(),
                        instantiate_permission: everybody(),
                    })
                    .collect(),
                pagination: Some(PageResponse {
                    next_key,
                    total: all.len() as u64,
                }),
            }
            .encode_to_vec()
        }
        other => {
            return Err(QueryError::UnknownPath(format!(
                "/cosmwasm.wasm.v1.Query/{other}"
            )))
        }
    })
}
