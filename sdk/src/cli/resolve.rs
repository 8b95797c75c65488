//! Turning what the user typed into an address: a bech32 address or the name of a local key.

use nesa_sdk::Address;

use super::GlobalArgs;

/// `input` as an address, or the address of the local key with that name.
pub fn address_or_key_name(input: &str, global: &GlobalArgs) -> anyhow::Result<Address> {
    let parse_error = match input.parse::<Address>() {
        Ok(address) => return Ok(address),
        Err(error) => error,
    };
    let keyring = global.open_keyring()?;
    if let Ok(entry) = keyring.show(input) {
        return Ok(entry.address);
    }
    // Input shaped like bech32 was meant as an address, so the parse error is the useful one.
    if input.contains('1') {
        return Err(parse_error.into());
    }
    anyhow::bail!(
        "'{input}' is neither a nesa1… address nor a key in {}: pass an address or a name from `nesa keys list`",
        keyring.path().display()
    )
}
