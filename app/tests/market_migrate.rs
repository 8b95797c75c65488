//! A live market upgraded on the real chain: the genesis market, deployed as `nesad init
//! --market-admin` deploys it (its admin is the contracts' x/wasm admin and their own admin),
//! settles a query; then the admin migrates each of the three contracts to a newly stored code
//! of itself. The state is kept (the settled query, the kernel, the bonded nodes), the new
//! codes answer (their cw2 version is read raw from storage), a stranger's migration is
//! refused, and a new query settles on the new codes.

mod support;

use nesa_genesis::market::{MarketWasm, MARKET_WASM, REGISTRY_WASM, STAKING_WASM};
use nesa_genesis::{AppState, GenesisCoin};
use nesa_market::market::{ExecuteMsg, QueryMsg, QueryResponse, QueryStatus};
use nesa_market::registry::{self, Kernel};
use nesa_market::staking::{self, NodeResponse};
use nesa_market::MigrateMsg;
use nesa_sdk::cosmrs::proto::cosmwasm::wasm::v1 as proto;
use nesa_sdk::cosmrs::Any;
use prost::Message;
use serde::de::DeserializeOwned;
use serde::Serialize;
use support::market::*;
use support::{TestAccount, TestChain};
use tendermint_proto::v0_38::abci::{ExecTxResult, RequestQuery};

/// Gas limit of every market transaction (generous: this test is about state, not gas).
const GAS: u64 = 5_000_000;
/// Uploads pay per byte of tx and of wasm compiled.
const UPLOAD_GAS: u64 = 20_000_000;
const FUNDS: u128 = 1_000_000_000_000;
const NODE_STAKE: u128 = 10_000_000;
/// More than the 3 × (4 × 3 + 48 × 7) = 1044 a query may cost.
const ESCROW: u128 = 1_100;

// Accounts, by index; the nodes follow.
const ADMIN: usize = 0;
const OWNER: usize = 1;
const USER: usize = 2;
const FIRST_NODE: usize = 3;
const NODES: usize = K as usize;

/// The genesis market's contract addresses, as the messages of this test take them.
struct Contracts {
    registry: String,
    staking: String,
    market: String,
}

/// The chain with the genesis market, a registered kernel and bonded nodes.
struct LiveMarket {
    chain: TestChain,
    accounts: Vec<TestAccount>,
    contracts: Contracts,
    kernel_id: u64,
}

impl LiveMarket {
    /// A fresh chain in a directory of its own (`name`: tests run side by side).
    fn start(name: &str) -> LiveMarket {
        let accounts: Vec<TestAccount> = (0..FIRST_NODE + NODES)
            .map(|i| TestAccount::from_seed(i as u8 + 1, i as u64))
            .collect();
        let mut app_state = AppState::default();
        for account in &accounts {
            let coins = GenesisCoin::parse_list(&format!("{FUNDS}unes")).unwrap();
            app_state
                .add_balance(&account.address.to_string(), coins)
                .unwrap();
        }
        let wasm = MarketWasm {
            registry: artifact(REGISTRY_WASM),
            staking: artifact(STAKING_WASM),
            market: artifact(MARKET_WASM),
        };
        let admin = accounts[ADMIN].address.to_string();
        let treasury = TestAccount::from_seed(200, 0).address.to_string();
        let contracts = nesa_genesis::market::deploy(
            &mut app_state,
            &wasm,
            &admin,
            Some(&admin),
            &treasury,
            nesa_app::modules::wasm::classic_address,
        )
        .unwrap();
        let contracts = Contracts {
            registry: contracts.registry.to_string(),
            staking: contracts.staking.to_string(),
            market: contracts.market.to_string(),
        };
        let chain = TestChain::from_app_state(&format!("market-migrate-{name}"), app_state);
        let mut m = LiveMarket {
            chain,
            accounts,
            contracts,
            kernel_id: 0,
        };

        let register = m.execute(
            OWNER,
            &m.contracts.registry.clone(),
            &registry::ExecuteMsg::Register(kernel()),
            0,
        );
        assert_ok(&register, "register kernel");
        m.kernel_id = attribute(&register, "wasm-kernel_registered", "kernel_id")
            .parse()
            .unwrap();
        let staking = m.contracts.staking.clone();
        let bonds: Vec<Vec<u8>> = (FIRST_NODE..FIRST_NODE + NODES)
            .map(|i| {
                let bond = staking::ExecuteMsg::Bond {
                    profile: Some(node_profile(&m.address(i), m.kernel_id)),
                };
                m.sign(
                    i,
                    execute_msg(&m.address(i), &staking, &bond, NODE_STAKE),
                    GAS,
                )
            })
            .collect();
        for result in m.chain.run_all(&bonds) {
            assert_ok(&result, "bond");
        }
        m
    }

    fn address(&self, who: usize) -> String {
        self.accounts[who].address.to_string()
    }

    fn sign(&mut self, who: usize, msg: Any, gas: u64) -> Vec<u8> {
        self.accounts[who].sign_with_gas(vec![msg], gas)
    }

    /// `who` executes `msg` on `contract` in a block of its own.
    fn execute(
        &mut self,
        who: usize,
        contract: &str,
        msg: &impl Serialize,
        funds: u128,
    ) -> ExecTxResult {
        let msg = execute_msg(&self.address(who), contract, msg, funds);
        let tx = self.sign(who, msg, GAS);
        self.chain.run(&tx)
    }

    fn query<T: DeserializeOwned>(&self, contract: &str, msg: &impl Serialize) -> T {
        smart_query(&self.chain, contract, msg)
    }

    fn inference(&self, id: u64) -> QueryResponse {
        self.query(&self.contracts.market, &QueryMsg::Query { id })
    }

    /// A query from submission to settlement with every node honest; returns its id.
    fn settled_round(&mut self) -> u64 {
        let market = self.contracts.market.clone();
        let submitted = self.execute(USER, &market, &submit_msg(self.kernel_id, &INPUT), ESCROW);
        assert_ok(&submitted, "submit_query");
        let draw = Submitted::from_result(&submitted);
        let tickets: Vec<Vec<u8>> = (FIRST_NODE..FIRST_NODE + NODES)
            .map(|i| {
                let msg = draw.ticket_msg(&self.address(i));
                let tx = execute_msg(&self.address(i), &market, &msg, 0);
                self.sign(i, tx, GAS)
            })
            .collect();
        for entered in self.chain.run_all(&tickets) {
            assert_ok(&entered, "submit_ticket");
        }
        while self.chain.height() <= draw.draw_deadline {
            self.chain.run_all(&[]);
        }
        let drawn = self.execute(
            USER,
            &market,
            &ExecuteMsg::Draw {
                query_id: draw.query_id,
            },
            0,
        );
        assert_ok(&drawn, "draw");
        let assigned = Assigned::from_result(&drawn);
        let results: Vec<(usize, NodeResult)> = assigned
            .nodes
            .iter()
            .map(|node| {
                let who = (FIRST_NODE..FIRST_NODE + NODES)
                    .find(|&i| self.address(i) == *node)
                    .expect("one of our nodes");
                (who, NodeResult::compute(node, &assigned, 0))
            })
            .collect();
        let commits: Vec<Vec<u8>> = results
            .iter()
            .map(|(who, result)| {
                let commit = result.commit_msg(&self.address(*who), assigned.query_id);
                let msg = execute_msg(&self.address(*who), &market, &commit, 0);
                self.sign(*who, msg, GAS)
            })
            .collect();
        for result in self.chain.run_all(&commits) {
            assert_ok(&result, "commit");
        }
        let reveals: Vec<Vec<u8>> = results
            .iter()
            .map(|(who, result)| {
                let reveal = result.reveal_msg(assigned.query_id);
                let msg = execute_msg(&self.address(*who), &market, &reveal, 0);
                self.sign(*who, msg, GAS)
            })
            .collect();
        for result in self.chain.run_all(&reveals) {
            assert_ok(&result, "reveal");
        }
        let settle = ExecuteMsg::Settle {
            query_id: assigned.query_id,
        };
        assert_ok(&self.execute(USER, &market, &settle, 0), "settle");
        let state = self.inference(assigned.query_id);
        assert_eq!(state.query.status, QueryStatus::Settled);
        assert_eq!(
            state.query.settlement.as_ref().unwrap().winners.len(),
            NODES
        );
        assigned.query_id
    }

    /// `who` stores `wasm` as a new code; returns its id.
    fn store(&mut self, who: usize, wasm: Vec<u8>) -> u64 {
        let store = proto::MsgStoreCode {
            sender: self.address(who),
            wasm_byte_code: wasm,
            instantiate_permission: None,
        };
        let tx = self.sign(
            who,
            any("/cosmwasm.wasm.v1.MsgStoreCode", store),
            UPLOAD_GAS,
        );
        let result = self.chain.run(&tx);
        assert_ok(&result, "store code");
        attribute(&result, "store_code", "code_id").parse().unwrap()
    }

    /// `who` migrates `contract` to `code_id`.
    fn migrate(&mut self, who: usize, contract: &str, code_id: u64) -> ExecTxResult {
        let migrate = proto::MsgMigrateContract {
            sender: self.address(who),
            contract: contract.into(),
            code_id,
            msg: serde_json::to_vec(&MigrateMsg {}).unwrap(),
        };
        let tx = self.sign(
            who,
            any("/cosmwasm.wasm.v1.MsgMigrateContract", migrate),
            GAS,
        );
        self.chain.run(&tx)
    }

    /// The code a contract runs, from the `ContractInfo` query clients use.
    fn code_id(&self, contract: &str) -> u64 {
        let request = proto::QueryContractInfoRequest {
            address: contract.into(),
        };
        let response = self.abci_query("/cosmwasm.wasm.v1.Query/ContractInfo", request);
        proto::QueryContractInfoResponse::decode(response.as_slice())
            .unwrap()
            .contract_info
            .unwrap()
            .code_id
    }

    /// The cw2 `{contract, version}` a contract recorded, read raw from its storage.
    fn cw2_version(&self, contract: &str) -> serde_json::Value {
        let request = proto::QueryRawContractStateRequest {
            address: contract.into(),
            query_data: b"contract_info".to_vec(),
        };
        let response = self.abci_query("/cosmwasm.wasm.v1.Query/RawContractState", request);
        let data = proto::QueryRawContractStateResponse::decode(response.as_slice())
            .unwrap()
            .data;
        serde_json::from_slice(&data).expect("a cw2 version is recorded")
    }

    fn abci_query(&self, path: &str, request: impl Message) -> Vec<u8> {
        let response = self.chain.app.query(RequestQuery {
            path: path.into(),
            data: request.encode_to_vec().into(),
            height: 0,
            prove: false,
        });
        assert_eq!(response.code, 0, "{path}: {}", response.log);
        response.value.to_vec()
    }
}

#[test]
fn the_admin_migrates_a_live_market_to_new_codes_and_it_keeps_its_state_and_settles_queries() {
    let mut m = LiveMarket::start("upgrade");
    let first = m.settled_round();
    let settled = m.inference(first);
    let kernel: Kernel = m.query(
        &m.contracts.registry,
        &registry::QueryMsg::Kernel { id: m.kernel_id },
    );
    let node = m.address(FIRST_NODE);
    let bonded: NodeResponse = m.query(
        &m.contracts.staking,
        &staking::QueryMsg::Node {
            address: node.clone(),
        },
    );

    let contracts = [
        (
            m.contracts.registry.clone(),
            REGISTRY_WASM,
            "nesa-kernel-registry",
        ),
        (
            m.contracts.staking.clone(),
            STAKING_WASM,
            "nesa-node-staking",
        ),
        (
            m.contracts.market.clone(),
            MARKET_WASM,
            "nesa-inference-market",
        ),
    ];
    for (contract, wasm, name) in &contracts {
        let version = m.cw2_version(contract);
        assert_eq!(version["contract"], *name, "recorded at instantiate");
        let old_code = m.code_id(contract);
        let new_code = m.store(ADMIN, artifact(wasm));

        let refused = m.migrate(USER, contract, new_code);
        assert_ne!(refused.code, 0, "a stranger may not migrate {name}");
        assert!(
            refused.log.contains("caller is not the admin"),
            "{}",
            refused.log
        );
        assert_eq!(
            m.code_id(contract),
            old_code,
            "the refused migration changed nothing"
        );

        let migrated = m.migrate(ADMIN, contract, new_code);
        assert_ok(&migrated, "migrate");
        assert_eq!(attribute(&migrated, "wasm", "contract"), *name);
        assert_eq!(
            attribute(&migrated, "wasm", "from_version"),
            version["version"]
        );
        assert_eq!(m.code_id(contract), new_code, "{name} runs the new code");
        let now = m.cw2_version(contract);
        assert_eq!(now["contract"], *name);
        assert_eq!(
            now["version"],
            attribute(&migrated, "wasm", "to_version").as_str()
        );
    }

    // The state is kept, and the new codes answer from it.
    assert_eq!(m.inference(first), settled, "the settled query is kept");
    let kernel_after: Kernel = m.query(
        &m.contracts.registry,
        &registry::QueryMsg::Kernel { id: m.kernel_id },
    );
    assert_eq!(kernel_after, kernel);
    let bonded_after: NodeResponse = m.query(
        &m.contracts.staking,
        &staking::QueryMsg::Node { address: node },
    );
    assert_eq!(bonded_after.bonded, bonded.bonded);
    assert!(bonded_after.eligible);

    let second = m.settled_round();
    assert_eq!(second, first + 1);
}

#[test]
fn a_contract_is_never_migrated_onto_another_contracts_state() {
    let mut m = LiveMarket::start("wrong-contract");
    let market_code = m.store(ADMIN, artifact(MARKET_WASM));
    let staking = m.contracts.staking.clone();
    let refused = m.migrate(ADMIN, &staking, market_code);
    assert_ne!(refused.code, 0);
    assert!(
        refused.log.contains("holds the state of nesa-node-staking"),
        "{}",
        refused.log
    );
    let version = m.cw2_version(&staking);
    assert_eq!(version["contract"], "nesa-node-staking");
}
