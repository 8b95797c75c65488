//! Node staking under cw-multi-test, next to a real kernel registry: bonding, profiles,
//! candidates, unbonding and claims, slashing (market only), jail and unjail.

use cosmwasm_std::{coin, coins, Addr, Decimal, Empty, HexBinary, Uint128};
use cw_multi_test::{App, AppResponse, Contract, ContractWrapper, Executor};

use nesa_market::devnet::{self, JAIL_BLOCKS, MIN_STAKE, UNBONDING_BLOCKS};
use nesa_market::registry::{self, Encryption, NewKernel, ShardRange};
use nesa_market::sortition::signer::TicketKey;
use nesa_market::DENOM;
use nesa_node_staking::contract::{execute, instantiate, migrate, query};
use nesa_node_staking::msg::{
    Candidate, CandidatesResponse, ConfigUpdate, ExecuteMsg, MigrateMsg, NodeProfile, NodeResponse,
    NodesResponse, QueryMsg, ServedKernel, SortitionEntry, SortitionKey, StakingConfig,
    UnbondingEntry,
};
use nesa_node_staking::ContractError;

fn staking_code() -> Box<dyn Contract<Empty>> {
    Box::new(ContractWrapper::new(execute, instantiate, query).with_migrate(migrate))
}

fn registry_code() -> Box<dyn Contract<Empty>> {
    use nesa_kernel_registry::contract as registry;
    Box::new(ContractWrapper::new(
        registry::execute,
        registry::instantiate,
        registry::query,
    ))
}

struct Staking {
    app: App,
    contract: Addr,
    admin: Addr,
    registry: Addr,
    market: Addr,
    treasury: Addr,
}

const NODES: [&str; 4] = ["node-a", "node-b", "node-c", "node-d"];

impl Staking {
    /// A registry with kernel 1 (30 layers) and kernel 2 (12 layers), and the staking
    /// contract whose market is the plain account `market`.
    fn new() -> Self {
        let api = *App::default().api();
        let mut app = App::new(|router, api, storage| {
            for name in NODES.iter().chain(&["stranger"]) {
                router
                    .bank
                    .init_balance(
                        storage,
                        &api.addr_make(name),
                        vec![coin(10 * MIN_STAKE, DENOM), coin(10 * MIN_STAKE, "other")],
                    )
                    .unwrap();
            }
        });
        let admin = api.addr_make("admin");
        let registry_id = app.store_code(registry_code());
        let registry = app
            .instantiate_contract(
                registry_id,
                admin.clone(),
                &registry::InstantiateMsg {},
                &[],
                "registry",
                Some(admin.to_string()),
            )
            .unwrap();
        for (name, layers) in [("smollm2", 30), ("tiny", 12)] {
            app.execute_contract(
                admin.clone(),
                registry.clone(),
                &registry::ExecuteMsg::Register(kernel(name, layers)),
                &[],
            )
            .unwrap();
        }
        let staking_id = app.store_code(staking_code());
        let market = api.addr_make("market");
        let treasury = api.addr_make("treasury");
        let contract = app
            .instantiate_contract(
                staking_id,
                admin.clone(),
                &devnet::staking_instantiate(
                    None,
                    registry.to_string(),
                    Some(market.to_string()),
                    treasury.to_string(),
                ),
                &[],
                "staking",
                Some(admin.to_string()),
            )
            .unwrap();
        Self {
            app,
            contract,
            admin,
            registry,
            market,
            treasury,
        }
    }

    fn addr(&self, name: &str) -> Addr {
        self.app.api().addr_make(name)
    }

    fn execute(
        &mut self,
        sender: &str,
        msg: &ExecuteMsg,
        funds: &[cosmwasm_std::Coin],
    ) -> Result<AppResponse, ContractError> {
        let sender = self.addr(sender);
        self.app
            .execute_contract(sender, self.contract.clone(), msg, funds)
            .map_err(|e| e.downcast().unwrap())
    }

    fn bond(
        &mut self,
        node: &str,
        amount: u128,
        served: &[(u64, u32, u32)],
    ) -> Result<AppResponse, ContractError> {
        self.execute(
            node,
            &ExecuteMsg::Bond {
                profile: Some(profile(served)),
            },
            &coins(amount, DENOM),
        )
    }

    fn slash(
        &mut self,
        sender: &Addr,
        node: &str,
        fraction: &str,
        jail: bool,
    ) -> anyhow::Result<AppResponse> {
        let msg = ExecuteMsg::Slash {
            node: self.addr(node).to_string(),
            fraction: fraction.parse().unwrap(),
            jail,
            reason: "no_commit".into(),
            query_id: 1,
        };
        self.app
            .execute_contract(sender.clone(), self.contract.clone(), &msg, &[])
    }

    fn unbond(&mut self, node: &str, amount: u128) -> Result<AppResponse, ContractError> {
        let msg = ExecuteMsg::Unbond {
            amount: Uint128::new(amount),
        };
        self.execute(node, &msg, &[])
    }

    fn claim(&mut self, node: &str) -> Result<AppResponse, ContractError> {
        self.execute(node, &ExecuteMsg::Claim {}, &[])
    }

    /// The market locks `query_id` on `nodes` until `until`.
    fn lock(&mut self, query_id: u64, nodes: &[&str], until: u64) -> anyhow::Result<AppResponse> {
        let msg = ExecuteMsg::Lock {
            query_id,
            nodes: nodes.iter().map(|n| self.addr(n).to_string()).collect(),
            until,
        };
        let market = self.market.clone();
        self.app
            .execute_contract(market, self.contract.clone(), &msg, &[])
    }

    fn unlock(&mut self, query_id: u64, nodes: &[&str]) -> anyhow::Result<AppResponse> {
        let msg = ExecuteMsg::Unlock {
            query_id,
            nodes: nodes.iter().map(|n| self.addr(n).to_string()).collect(),
        };
        let market = self.market.clone();
        self.app
            .execute_contract(market, self.contract.clone(), &msg, &[])
    }

    fn height(&self) -> u64 {
        self.app.block_info().height
    }

    fn node(&self, node: &str) -> NodeResponse {
        self.app
            .wrap()
            .query_wasm_smart(
                &self.contract,
                &QueryMsg::Node {
                    address: self.addr(node).to_string(),
                },
            )
            .unwrap()
    }

    fn candidates(&self, kernel_id: u64) -> Vec<Candidate> {
        let response: CandidatesResponse = self
            .app
            .wrap()
            .query_wasm_smart(
                &self.contract,
                &QueryMsg::Candidates {
                    kernel_id,
                    start_after: None,
                    limit: None,
                },
            )
            .unwrap();
        response.candidates
    }

    fn candidate_names(&self, kernel_id: u64) -> Vec<String> {
        let mut names: Vec<String> = self
            .candidates(kernel_id)
            .into_iter()
            .map(|c| {
                NODES
                    .iter()
                    .find(|n| self.addr(n) == c.address)
                    .unwrap()
                    .to_string()
            })
            .collect();
        names.sort();
        names
    }

    fn balance(&self, address: &Addr) -> u128 {
        self.app
            .wrap()
            .query_balance(address, DENOM)
            .unwrap()
            .amount
            .u128()
    }

    fn advance(&mut self, blocks: u64) {
        self.app.update_block(|b| {
            b.height += blocks;
            b.time = b.time.plus_seconds(blocks * 5);
        });
    }
}

fn kernel(name: &str, layer_count: u32) -> NewKernel {
    NewKernel {
        name: name.into(),
        weights_sha256: HexBinary::from(vec![1; 32]),
        tokenizer_sha256: HexBinary::from(vec![2; 32]),
        architecture: "llama".into(),
        layer_count,
        vocab_size: 49_152,
        context_length: 8192,
        shard_layout: vec![ShardRange {
            start_layer: 0,
            end_layer: layer_count,
            sha256: HexBinary::from(vec![3; 32]),
        }],
        encryption: Encryption::None,
        price_per_input_token: Uint128::new(1),
        price_per_output_token: Uint128::new(2),
        min_redundancy: 1,
        description: String::new(),
    }
}

fn profile(served: &[(u64, u32, u32)]) -> NodeProfile {
    NodeProfile {
        endpoint: "http://127.0.0.1:8700".into(),
        kernels: served
            .iter()
            .map(|&(kernel_id, start_layer, end_layer)| ServedKernel {
                kernel_id,
                start_layer,
                end_layer,
                block_micros: None,
            })
            .collect(),
        capacity: 1,
        sortition_key: None,
    }
}

#[test]
fn a_bonded_node_serving_all_layers_is_a_candidate_with_its_stake() {
    let mut staking = Staking::new();
    let response = staking
        .bond("node-a", 2 * MIN_STAKE, &[(1, 0, 30)])
        .unwrap();
    assert!(response.events.iter().any(|e| e.ty == "wasm-node_bonded"));
    assert_eq!(
        staking.candidates(1),
        vec![Candidate {
            address: staking.addr("node-a"),
            stake: Uint128::new(2 * MIN_STAKE),
            span: None,
        }]
    );
    assert!(staking.candidates(2).is_empty());
    let node = staking.node("node-a");
    assert!(node.eligible && !node.jailed);
    assert_eq!(staking.balance(&staking.contract), 2 * MIN_STAKE);
}

#[test]
fn candidates_come_in_address_order_and_page_by_address() {
    let mut staking = Staking::new();
    for node in NODES {
        staking.bond(node, MIN_STAKE, &[(1, 0, 30)]).unwrap();
    }
    let all = staking.candidates(1);
    assert_eq!(all.len(), 4);
    assert!(all.windows(2).all(|w| w[0].address < w[1].address));
    let rest: CandidatesResponse = staking
        .app
        .wrap()
        .query_wasm_smart(
            &staking.contract,
            &QueryMsg::Candidates {
                kernel_id: 1,
                start_after: Some(all[1].address.to_string()),
                limit: Some(1),
            },
        )
        .unwrap();
    assert_eq!(rest.candidates, vec![all[2].clone()]);
}

#[test]
fn a_node_serving_part_of_the_layers_is_not_a_candidate() {
    let mut staking = Staking::new();
    staking.bond("node-a", MIN_STAKE, &[(1, 0, 15)]).unwrap();
    staking.bond("node-b", MIN_STAKE, &[(1, 15, 30)]).unwrap();
    staking
        .bond("node-c", MIN_STAKE, &[(1, 0, 15), (1, 15, 30), (2, 0, 12)])
        .unwrap();
    assert_eq!(staking.candidate_names(1), vec!["node-c"]);
    assert_eq!(staking.candidate_names(2), vec!["node-c"]);
}

#[test]
fn a_first_bond_needs_a_profile_and_the_minimum_stake_in_the_stake_denom() {
    let mut staking = Staking::new();
    assert_eq!(
        staking
            .bond("node-a", MIN_STAKE - 1, &[(1, 0, 30)])
            .unwrap_err(),
        ContractError::BelowMinStake {
            amount: Uint128::new(MIN_STAKE - 1),
            min_stake: Uint128::new(MIN_STAKE)
        }
    );
    assert_eq!(
        staking
            .execute(
                "node-a",
                &ExecuteMsg::Bond { profile: None },
                &coins(MIN_STAKE, DENOM)
            )
            .unwrap_err(),
        ContractError::MissingProfile {}
    );
    let err = staking
        .execute(
            "node-a",
            &ExecuteMsg::Bond {
                profile: Some(profile(&[(1, 0, 30)])),
            },
            &coins(MIN_STAKE, "other"),
        )
        .unwrap_err();
    assert!(matches!(err, ContractError::Payment(_)), "{err}");
    // Later bonds top up any amount without a profile.
    staking.bond("node-a", MIN_STAKE, &[(1, 0, 30)]).unwrap();
    staking
        .execute(
            "node-a",
            &ExecuteMsg::Bond { profile: None },
            &coins(5, DENOM),
        )
        .unwrap();
    assert_eq!(staking.node("node-a").bonded, Uint128::new(MIN_STAKE + 5));
}

#[test]
fn profiles_are_checked_against_the_registry() {
    let mut staking = Staking::new();
    let err = staking
        .bond("node-a", MIN_STAKE, &[(9, 0, 30)])
        .unwrap_err();
    assert!(
        matches!(err, ContractError::UnknownKernel { kernel_id: 9, .. }),
        "{err}"
    );
    assert_eq!(
        staking
            .bond("node-a", MIN_STAKE, &[(2, 0, 13)])
            .unwrap_err(),
        ContractError::InvalidLayerRange {
            kernel_id: 2,
            start_layer: 0,
            end_layer: 13,
            layer_count: 12
        }
    );
    assert!(matches!(
        staking.bond("node-a", MIN_STAKE, &[(2, 5, 5)]).unwrap_err(),
        ContractError::InvalidLayerRange { .. }
    ));
    let mut bad = profile(&[(1, 0, 30)]);
    bad.endpoint = "ftp://node".into();
    assert!(matches!(
        staking
            .execute(
                "node-a",
                &ExecuteMsg::Bond { profile: Some(bad) },
                &coins(MIN_STAKE, DENOM)
            )
            .unwrap_err(),
        ContractError::InvalidEndpoint { .. }
    ));
    assert_eq!(
        staking.balance(&staking.contract),
        0,
        "no failed bond kept funds"
    );
}

#[test]
fn updating_a_profile_moves_the_node_between_kernels() {
    let mut staking = Staking::new();
    staking.bond("node-a", MIN_STAKE, &[(1, 0, 30)]).unwrap();
    let response = staking
        .execute(
            "node-a",
            &ExecuteMsg::UpdateProfile {
                profile: profile(&[(2, 0, 12)]),
            },
            &[],
        )
        .unwrap();
    assert!(response
        .events
        .iter()
        .any(|e| e.ty == "wasm-node_profile_updated"));
    assert!(staking.candidates(1).is_empty());
    assert_eq!(staking.candidate_names(2), vec!["node-a"]);
    assert_eq!(
        staking
            .execute(
                "stranger",
                &ExecuteMsg::UpdateProfile {
                    profile: profile(&[])
                },
                &[]
            )
            .unwrap_err(),
        ContractError::NotBonded {
            node: staking.addr("stranger")
        }
    );
}

#[test]
fn unbonding_below_the_minimum_ends_eligibility_and_pays_after_the_period() {
    let mut staking = Staking::new();
    staking
        .bond("node-a", 2 * MIN_STAKE, &[(1, 0, 30)])
        .unwrap();
    let node = staking.addr("node-a");
    let before = staking.balance(&node);
    assert_eq!(
        staking
            .execute(
                "node-a",
                &ExecuteMsg::Unbond {
                    amount: Uint128::new(3 * MIN_STAKE)
                },
                &[]
            )
            .unwrap_err(),
        ContractError::InsufficientBond {
            requested: Uint128::new(3 * MIN_STAKE),
            bonded: Uint128::new(2 * MIN_STAKE)
        }
    );
    staking
        .execute(
            "node-a",
            &ExecuteMsg::Unbond {
                amount: Uint128::new(MIN_STAKE + 1),
            },
            &[],
        )
        .unwrap();
    assert!(
        staking.candidates(1).is_empty(),
        "bonded is now below min_stake"
    );
    assert!(!staking.node("node-a").eligible);

    let release_height = staking.app.block_info().height + UNBONDING_BLOCKS;
    staking.advance(UNBONDING_BLOCKS - 1);
    assert_eq!(
        staking.claim("node-a").unwrap_err(),
        ContractError::NothingToClaim {
            next_release: Some(release_height)
        }
    );
    staking.advance(1);
    let response = staking.claim("node-a").unwrap();
    assert!(response.events.iter().any(|e| e.ty == "wasm-node_claimed"));
    assert_eq!(staking.balance(&node), before + MIN_STAKE + 1);
    assert!(staking.node("node-a").unbonding.is_empty());
}

#[test]
fn only_the_market_may_slash() {
    let mut staking = Staking::new();
    staking.bond("node-a", MIN_STAKE, &[(1, 0, 30)]).unwrap();
    let stranger = staking.addr("stranger");
    let err = staking.slash(&stranger, "node-a", "0.5", true).unwrap_err();
    assert_eq!(
        err.downcast::<ContractError>().unwrap(),
        ContractError::NotMarket {
            market: Some(staking.market.clone())
        }
    );
    let node = staking.node("node-a");
    assert_eq!(node.bonded, Uint128::new(MIN_STAKE));
    assert!(!node.jailed);
}

#[test]
fn a_slash_takes_the_fraction_of_bonded_and_unbonding_stake_for_the_treasury() {
    let mut staking = Staking::new();
    staking
        .bond("node-a", 3 * MIN_STAKE, &[(1, 0, 30)])
        .unwrap();
    staking.unbond("node-a", MIN_STAKE).unwrap();
    let market = staking.market.clone();
    let response = staking.slash(&market, "node-a", "0.1", false).unwrap();
    let event = response
        .events
        .iter()
        .find(|e| e.ty == "wasm-stake_slashed")
        .unwrap();
    assert!(event
        .attributes
        .iter()
        .any(|a| a.key == "amount" && a.value == "300000"));
    let node = staking.node("node-a");
    assert_eq!(node.bonded, Uint128::new(1_800_000));
    assert_eq!(
        node.unbonding,
        vec![UnbondingEntry {
            amount: Uint128::new(900_000),
            release_height: staking.app.block_info().height + UNBONDING_BLOCKS,
            unbonded_height: staking.app.block_info().height,
        }]
    );
    assert_eq!(node.slashed, Uint128::new(300_000));
    assert!(!node.jailed);
    let treasury = staking.treasury.clone();
    assert_eq!(staking.balance(&treasury), 300_000);
    assert_eq!(staking.balance(&staking.contract), 2_700_000);
}

#[test]
fn a_jailed_node_is_no_candidate_until_it_unjails_after_the_jail_time() {
    let mut staking = Staking::new();
    staking.bond("node-a", MIN_STAKE, &[(1, 0, 30)]).unwrap();
    staking.bond("node-b", MIN_STAKE, &[(1, 0, 30)]).unwrap();
    let market = staking.market.clone();
    staking.slash(&market, "node-a", "0", true).unwrap();
    assert_eq!(staking.candidate_names(1), vec!["node-b"]);
    let jailed_until = staking.app.block_info().height + JAIL_BLOCKS;
    assert_eq!(staking.node("node-a").jailed_until, Some(jailed_until));

    staking.advance(JAIL_BLOCKS - 1);
    assert_eq!(
        staking
            .execute("node-a", &ExecuteMsg::Unjail {}, &[])
            .unwrap_err(),
        ContractError::JailNotOver { jailed_until }
    );
    staking.advance(1);
    staking
        .execute("node-a", &ExecuteMsg::Unjail {}, &[])
        .unwrap();
    assert_eq!(staking.candidate_names(1), vec!["node-a", "node-b"]);
    assert_eq!(
        staking
            .execute("node-a", &ExecuteMsg::Unjail {}, &[])
            .unwrap_err(),
        ContractError::NotJailed {
            node: staking.addr("node-a")
        }
    );
}

#[test]
fn slashing_a_node_without_stake_changes_nothing_and_does_not_fail() {
    let mut staking = Staking::new();
    let market = staking.market.clone();
    staking.slash(&market, "stranger", "0.3", true).unwrap();
    let nodes: NodesResponse = staking
        .app
        .wrap()
        .query_wasm_smart(
            &staking.contract,
            &QueryMsg::Nodes {
                start_after: None,
                limit: None,
            },
        )
        .unwrap();
    assert!(nodes.nodes.is_empty());
    let err = staking.slash(&market, "stranger", "1.5", true).unwrap_err();
    assert_eq!(
        err.downcast::<ContractError>().unwrap(),
        ContractError::InvalidFraction {
            fraction: Decimal::percent(150)
        }
    );
}

#[test]
fn the_admin_sets_the_market_later_and_nobody_else_may() {
    let mut staking = Staking::new();
    let new_market = staking.addr("new-market").to_string();
    let update = ConfigUpdate {
        market: Some(new_market.clone()),
        ..ConfigUpdate::default()
    };
    assert!(matches!(
        staking
            .execute("stranger", &ExecuteMsg::UpdateConfig(update.clone()), &[])
            .unwrap_err(),
        ContractError::NotAdmin { .. }
    ));
    staking
        .execute("admin", &ExecuteMsg::UpdateConfig(update), &[])
        .unwrap();
    let config: StakingConfig = staking
        .app
        .wrap()
        .query_wasm_smart(&staking.contract, &QueryMsg::Config {})
        .unwrap();
    assert_eq!(config.market.unwrap().as_str(), new_market);
    let zero = ConfigUpdate {
        min_stake: Some(Uint128::zero()),
        ..ConfigUpdate::default()
    };
    assert!(matches!(
        staking
            .execute("admin", &ExecuteMsg::UpdateConfig(zero), &[])
            .unwrap_err(),
        ContractError::InvalidConfig { .. }
    ));
}

#[test]
fn a_new_code_of_staking_takes_over_its_state_and_another_contracts_code_is_refused() {
    let mut s = Staking::new();
    s.bond("node-a", 2 * MIN_STAKE, &[(1, 0, 30)]).unwrap();
    let new_code = s.app.store_code(staking_code());
    s.app
        .migrate_contract(
            s.admin.clone(),
            s.contract.clone(),
            &MigrateMsg {},
            new_code,
        )
        .unwrap();
    assert_eq!(s.node("node-a").bonded, Uint128::new(2 * MIN_STAKE));
    let version = s
        .app
        .wrap()
        .query_wasm_raw(s.contract.clone(), b"contract_info".as_slice())
        .unwrap()
        .expect("a cw2 version");
    let version: serde_json::Value = serde_json::from_slice(&version).unwrap();
    assert_eq!(version["contract"], "nesa-node-staking");
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));

    // The registry's state under staking's code would be garbage: refused by name.
    let error = s
        .app
        .migrate_contract(
            s.admin.clone(),
            s.registry.clone(),
            &MigrateMsg {},
            new_code,
        )
        .unwrap_err();
    assert!(
        format!("{error:#}").contains("holds the state of nesa-kernel-registry"),
        "{error:#}"
    );
}

fn staking_error(error: anyhow::Error) -> ContractError {
    error.downcast().unwrap()
}

/// node-a bonded 3 × MIN_STAKE, assigned query 7 (reveal deadline returned), then unbonds
/// MIN_STAKE.
fn assigned_then_unbonding() -> (Staking, u64) {
    let mut staking = Staking::new();
    staking
        .bond("node-a", 3 * MIN_STAKE, &[(1, 0, 30)])
        .unwrap();
    let until = staking.height() + 25;
    staking.lock(7, &["node-a"], until).unwrap();
    staking.unbond("node-a", MIN_STAKE).unwrap();
    (staking, until)
}

#[test]
fn an_unbonded_entry_is_not_paid_while_a_query_assigned_before_the_unbond_is_open() {
    let (mut staking, until) = assigned_then_unbonding();
    assert_eq!(staking.node("node-a").open_assignments, 1);
    // The release height passes while query 7 is still open: nothing is paid.
    staking.advance(UNBONDING_BLOCKS);
    let expires_height = until + UNBONDING_BLOCKS;
    assert_eq!(
        staking.claim("node-a").unwrap_err(),
        ContractError::StakeLocked {
            query_id: 7,
            expires_height
        }
    );
    // Still slashable for it.
    let market = staking.market.clone();
    staking.slash(&market, "node-a", "0.5", false).unwrap();
    assert_eq!(
        staking.node("node-a").unbonding[0].amount,
        Uint128::new(MIN_STAKE / 2)
    );
    // Once the query ends the rest is paid.
    staking.unlock(7, &["node-a"]).unwrap();
    assert_eq!(staking.node("node-a").open_assignments, 0);
    let node_a = staking.addr("node-a");
    let before = staking.balance(&node_a);
    staking.claim("node-a").unwrap();
    assert_eq!(staking.balance(&node_a), before + MIN_STAKE / 2);
}

#[test]
fn queries_assigned_after_an_unbond_do_not_hold_it_so_a_flood_cannot_trap_stake() {
    let mut staking = Staking::new();
    staking
        .bond("node-a", 3 * MIN_STAKE, &[(1, 0, 30)])
        .unwrap();
    staking.unbond("node-a", MIN_STAKE).unwrap();
    // Still eligible with 2 × MIN_STAKE bonded: queries keep coming, one at a time.
    let mut query_id = 1;
    for _ in 0..UNBONDING_BLOCKS {
        staking.advance(1);
        let until = staking.height() + 25;
        staking.unlock(query_id, &["node-a"]).unwrap();
        query_id += 1;
        staking.lock(query_id, &["node-a"], until).unwrap();
    }
    assert_eq!(staking.node("node-a").open_assignments, 1);
    let node_a = staking.addr("node-a");
    let before = staking.balance(&node_a);
    staking.claim("node-a").unwrap();
    assert_eq!(staking.balance(&node_a), before + MIN_STAKE);
}

#[test]
fn a_lock_the_market_never_closes_lapses_after_the_unbonding_period() {
    let (mut staking, until) = assigned_then_unbonding();
    // The market is replaced and never unlocks query 7.
    let update = ConfigUpdate {
        market: Some(staking.addr("new-market").to_string()),
        ..ConfigUpdate::default()
    };
    staking
        .execute("admin", &ExecuteMsg::UpdateConfig(update), &[])
        .unwrap();
    staking.advance(until + UNBONDING_BLOCKS - staking.height());
    assert!(matches!(
        staking.claim("node-a"),
        Err(ContractError::StakeLocked { query_id: 7, .. })
    ));
    staking.advance(1);
    assert_eq!(staking.node("node-a").open_assignments, 0);
    staking.claim("node-a").unwrap();
    assert_eq!(staking.candidate_names(1), vec!["node-a"]);
}

#[test]
fn a_node_at_capacity_is_no_candidate_and_cannot_be_locked_again() {
    let mut staking = Staking::new();
    let mut two = profile(&[(1, 0, 30)]);
    two.capacity = 2;
    staking
        .execute(
            "node-a",
            &ExecuteMsg::Bond { profile: Some(two) },
            &coins(MIN_STAKE, DENOM),
        )
        .unwrap();
    staking.bond("node-b", MIN_STAKE, &[(1, 0, 30)]).unwrap();
    let until = staking.height() + 25;
    staking.lock(1, &["node-a", "node-b"], until).unwrap();
    assert_eq!(staking.candidate_names(1), vec!["node-a"]);
    assert!(matches!(
        staking_error(staking.lock(2, &["node-b"], until).unwrap_err()),
        ContractError::AtCapacity { capacity: 1, .. }
    ));
    assert!(matches!(
        staking_error(staking.lock(1, &["node-a"], until).unwrap_err()),
        ContractError::AlreadyLocked { query_id: 1, .. }
    ));
    staking.lock(2, &["node-a"], until).unwrap();
    let node = staking.node("node-a");
    assert_eq!(node.open_assignments, 2);
    assert_eq!(
        node.assignments
            .iter()
            .map(|a| a.query_id)
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(staking.candidate_names(1).is_empty());
    staking.unlock(1, &["node-a", "node-b"]).unwrap();
    assert_eq!(staking.candidate_names(1), vec!["node-a", "node-b"]);
}

#[test]
fn only_the_market_locks_and_unlocks() {
    let mut staking = Staking::new();
    staking.bond("node-a", MIN_STAKE, &[(1, 0, 30)]).unwrap();
    let node_a = staking.addr("node-a").to_string();
    for msg in [
        ExecuteMsg::Lock {
            query_id: 1,
            nodes: vec![node_a.clone()],
            until: 100,
        },
        ExecuteMsg::Unlock {
            query_id: 1,
            nodes: vec![node_a.clone()],
        },
    ] {
        assert!(matches!(
            staking.execute("node-a", &msg, &[]).unwrap_err(),
            ContractError::NotMarket { .. }
        ));
    }
    assert_eq!(staking.node("node-a").open_assignments, 0);
}

#[test]
fn capacity_is_one_to_64_and_one_when_a_profile_leaves_it_out() {
    let mut staking = Staking::new();
    for capacity in [0, 65] {
        let mut bad = profile(&[(1, 0, 30)]);
        bad.capacity = capacity;
        assert_eq!(
            staking
                .execute(
                    "node-a",
                    &ExecuteMsg::Bond { profile: Some(bad) },
                    &coins(MIN_STAKE, DENOM),
                )
                .unwrap_err(),
            ContractError::InvalidCapacity { capacity }
        );
    }
    let json = serde_json::json!({"bond": {"profile": {
        "endpoint": "http://127.0.0.1:8700",
        "kernels": [{"kernel_id": 1, "start_layer": 0, "end_layer": 30}]}}});
    let node_a = staking.addr("node-a");
    staking
        .app
        .execute(
            node_a,
            cosmwasm_std::WasmMsg::Execute {
                contract_addr: staking.contract.to_string(),
                msg: cosmwasm_std::to_json_binary(&json).unwrap(),
                funds: coins(MIN_STAKE, DENOM),
            }
            .into(),
        )
        .unwrap();
    assert_eq!(staking.node("node-a").profile.capacity, 1);
}

#[test]
fn unbonding_and_jail_periods_are_bounded() {
    let mut staking = Staking::new();
    for update in [
        ConfigUpdate {
            unbonding_blocks: Some(u64::MAX),
            ..ConfigUpdate::default()
        },
        ConfigUpdate {
            jail_blocks: Some(u64::MAX),
            ..ConfigUpdate::default()
        },
    ] {
        assert!(matches!(
            staking
                .execute("admin", &ExecuteMsg::UpdateConfig(update), &[])
                .unwrap_err(),
            ContractError::InvalidConfig { .. }
        ));
    }
    staking
        .execute(
            "admin",
            &ExecuteMsg::UpdateConfig(ConfigUpdate {
                unbonding_blocks: Some(nesa_market::staking::MAX_STAKING_BLOCKS),
                jail_blocks: Some(nesa_market::staking::MAX_STAKING_BLOCKS),
                ..ConfigUpdate::default()
            }),
            &[],
        )
        .unwrap();
}

/// A profile serving kernel 1 with `key`, its proof of possession made for `proof_for`.
fn keyed_profile(key: &TicketKey, proof_for: &str) -> NodeProfile {
    NodeProfile {
        sortition_key: Some(SortitionKey {
            public_key: HexBinary::from(key.public_key().to_vec()),
            proof: HexBinary::from(key.proof_of_possession(proof_for).to_vec()),
        }),
        ..profile(&[(1, 0, 30)])
    }
}

#[test]
fn a_sortition_key_needs_its_nodes_proof_of_possession_and_a_real_point() {
    let mut staking = Staking::new();
    let node = staking.addr("node-a");
    let key = TicketKey::from_seed(b"node-a");
    let bond = |profile: NodeProfile| ExecuteMsg::Bond {
        profile: Some(profile),
    };
    let stake = coins(MIN_STAKE, DENOM);
    // A proof made for another address: someone copying node-b's registered key.
    let copied = keyed_profile(&key, staking.addr("node-b").as_str());
    assert!(matches!(
        staking.execute("node-a", &bond(copied), &stake),
        Err(ContractError::InvalidSortitionKey { .. })
    ));
    // The identity point, under which every signature verifies; and wrong lengths.
    let mut identity = keyed_profile(&key, node.as_str());
    identity.sortition_key.as_mut().unwrap().public_key =
        HexBinary::from(nesa_market::sortition::IDENTITY_PUBLIC_KEY.to_vec());
    let mut short = keyed_profile(&key, node.as_str());
    short.sortition_key.as_mut().unwrap().proof = HexBinary::from(vec![1; 95]);
    for bad in [identity, short] {
        assert!(matches!(
            staking.execute("node-a", &bond(bad), &stake),
            Err(ContractError::InvalidSortitionKey { .. })
        ));
    }
    staking
        .execute("node-a", &bond(keyed_profile(&key, node.as_str())), &stake)
        .unwrap();
}

#[test]
fn the_sortition_entry_gives_the_key_the_drawable_stake_and_when_either_last_changed() {
    let mut staking = Staking::new();
    let node = staking.addr("node-a");
    let key = TicketKey::from_seed(b"node-a");
    let entry = |staking: &Staking, kernel_id| -> SortitionEntry {
        staking
            .app
            .wrap()
            .query_wasm_smart(
                &staking.contract,
                &QueryMsg::Sortition {
                    node: staking.addr("node-a").to_string(),
                    kernel_id,
                },
            )
            .unwrap()
    };
    let bonded_at = staking.app.block_info().height;
    staking
        .execute(
            "node-a",
            &ExecuteMsg::Bond {
                profile: Some(keyed_profile(&key, node.as_str())),
            },
            &coins(2 * MIN_STAKE, DENOM),
        )
        .unwrap();
    let first = entry(&staking, 1);
    assert_eq!(first.weight, Uint128::new(2 * MIN_STAKE));
    assert_eq!(first.public_key.unwrap().as_slice(), key.public_key());
    assert_eq!(first.ticket_since, bonded_at);
    // Kernel 2 is not served: no weight there.
    assert!(entry(&staking, 2).weight.is_zero());

    // Unbonding lowers the weight at once and does not move `ticket_since`; more stake does.
    staking.app.update_block(|b| b.height += 10);
    staking
        .execute(
            "node-a",
            &ExecuteMsg::Unbond {
                amount: Uint128::new(MIN_STAKE / 2),
            },
            &[],
        )
        .unwrap();
    let unbonded = entry(&staking, 1);
    assert_eq!(unbonded.weight, Uint128::new(2 * MIN_STAKE - MIN_STAKE / 2));
    assert_eq!(unbonded.ticket_since, bonded_at);
    staking
        .execute(
            "node-a",
            &ExecuteMsg::Bond { profile: None },
            &coins(1, DENOM),
        )
        .unwrap();
    assert_eq!(entry(&staking, 1).ticket_since, bonded_at + 10);

    // A profile update keeping the key leaves it; a new key moves it.
    staking.app.update_block(|b| b.height += 5);
    staking
        .execute(
            "node-a",
            &ExecuteMsg::UpdateProfile {
                profile: keyed_profile(&key, node.as_str()),
            },
            &[],
        )
        .unwrap();
    assert_eq!(entry(&staking, 1).ticket_since, bonded_at + 10);
    let other = TicketKey::from_seed(b"another key");
    staking
        .execute(
            "node-a",
            &ExecuteMsg::UpdateProfile {
                profile: keyed_profile(&other, node.as_str()),
            },
            &[],
        )
        .unwrap();
    assert_eq!(entry(&staking, 1).ticket_since, bonded_at + 15);
    // A stranger has no entry to speak of.
    let stranger: SortitionEntry = staking
        .app
        .wrap()
        .query_wasm_smart(
            &staking.contract,
            &QueryMsg::Sortition {
                node: staking.addr("stranger").to_string(),
                kernel_id: 1,
            },
        )
        .unwrap();
    assert!(stranger.weight.is_zero() && stranger.public_key.is_none());
}
