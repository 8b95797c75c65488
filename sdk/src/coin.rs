//! Token amounts (`Coin`, `Coins`, from `nesa-types`) and their protobuf and cosmrs forms.

use cosmrs::proto::cosmos::base::v1beta1::Coin as ProtoCoin;

pub use nesa_types::{validate_denom, Coin, CoinError, Coins};

/// Conversions between a coin and its protobuf and cosmrs forms.
pub trait CoinExt: Sized {
    /// The protobuf form used in messages and query responses.
    fn to_proto(&self) -> ProtoCoin;
    /// Reads a protobuf coin as returned by bank queries.
    fn from_proto(proto: &ProtoCoin) -> Result<Self, CoinError>;
    /// The cosmrs form used by `cosmrs::bank::MsgSend` and `cosmrs::tx::Fee`.
    fn to_cosmrs(&self) -> cosmrs::Coin;
}

impl CoinExt for Coin {
    fn to_proto(&self) -> ProtoCoin {
        ProtoCoin {
            denom: self.denom.clone(),
            amount: self.amount.to_string(),
        }
    }

    fn from_proto(proto: &ProtoCoin) -> Result<Self, CoinError> {
        Coin::from_parts(&proto.amount, &proto.denom)
    }

    fn to_cosmrs(&self) -> cosmrs::Coin {
        cosmrs::Coin {
            amount: self.amount,
            // The denom was validated with the same rule cosmrs applies, so this cannot fail.
            denom: self.denom.parse().expect("denom validated on construction"),
        }
    }
}

/// Conversions of a coin list to its protobuf and cosmrs forms.
pub trait CoinsExt {
    /// The protobuf form, for messages such as `MsgExecuteContract`.
    fn to_proto(&self) -> Vec<ProtoCoin>;
    /// The cosmrs form, for messages and fees.
    fn to_cosmrs(&self) -> Vec<cosmrs::Coin>;
}

impl CoinsExt for Coins {
    fn to_proto(&self) -> Vec<ProtoCoin> {
        self.as_slice().iter().map(CoinExt::to_proto).collect()
    }

    fn to_cosmrs(&self) -> Vec<cosmrs::Coin> {
        self.as_slice().iter().map(CoinExt::to_cosmrs).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coin_converts_to_and_from_protobuf() {
        let coin = Coin::unes(123);
        assert_eq!(Coin::from_proto(&coin.to_proto()).unwrap(), coin);
        assert_eq!(coin.to_cosmrs().amount, 123);
    }

    #[test]
    fn a_protobuf_coin_without_a_number_is_rejected() {
        let proto = ProtoCoin {
            denom: "unes".into(),
            amount: "ten".into(),
        };
        assert_eq!(
            Coin::from_proto(&proto),
            Err(CoinError::MissingAmount("tenunes".into()))
        );
    }
}
