//! Contract addresses, derived exactly as wasmd derives them.

use cosmwasm_std::{instantiate2_address, CanonicalAddr};
use nesa_types::{Address, ContractAddress};
use sha2::{Digest, Sha256};

/// wasmd's `BuildContractAddressClassic`: the SDK's `address.Module("wasm", code_id ‖ instance_id)`
/// = sha256(sha256("module") ‖ "wasm" ‖ 0x00 ‖ code_id (BE) ‖ instance_id (BE)), 32 bytes.
pub fn classic(code_id: u64, instance_id: u64) -> ContractAddress {
    let type_hash = Sha256::digest(b"module");
    let mut hasher = Sha256::new();
    hasher.update(type_hash);
    hasher.update(b"wasm\0");
    hasher.update(code_id.to_be_bytes());
    hasher.update(instance_id.to_be_bytes());
    ContractAddress::from_bytes(hasher.finalize().into())
}

/// wasmd's `BuildContractAddressPredictable` (instantiate2): cosmwasm-std's
/// `instantiate2_address` of the code checksum, the creator and the salt.
pub fn predictable(
    checksum: &[u8; 32],
    creator: &Address,
    salt: &[u8],
) -> Result<ContractAddress, String> {
    let canonical = instantiate2_address(checksum, &CanonicalAddr::from(creator.as_bytes()), salt)
        .map_err(|e| e.to_string())?;
    let bytes = canonical
        .as_slice()
        .try_into()
        .map_err(|_| format!("instantiate2 gave {} bytes, not 32", canonical.len()))?;
    Ok(ContractAddress::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_classic_address_matches_wasmd() {
        // wasmd's first contract (code 1, instance 1) on any chain with prefix `wasm`.
        let (_, expected) =
            bech32::decode("wasm14hj2tavq8fpesdwxxcu44rty3hh90vhujrvcmstl4zr3txmfvw9s0phg4d")
                .unwrap();
        assert_eq!(classic(1, 1).as_bytes(), expected.as_slice());
    }

    #[test]
    fn predictable_addresses_depend_on_the_salt() {
        let creator = Address::from_bytes([9; 20]);
        let a = predictable(&[1; 32], &creator, b"one").unwrap();
        let b = predictable(&[1; 32], &creator, b"two").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_bytes().len(), 32);
    }
}
