//! Events in the shape the Cosmos SDK emits them, so indexers and clients follow our chain
//! from `block_results` the way they follow any Cosmos chain.

use tendermint_proto::v0_38::abci::{Event, EventAttribute};

/// An event of `kind` with indexed string attributes.
pub fn event(kind: &str, attributes: &[(&str, &str)]) -> Event {
    Event {
        r#type: kind.to_string(),
        attributes: attributes
            .iter()
            .map(|(key, value)| EventAttribute {
                key: key.to_string(),
                value: value.to_string(),
                index: true,
            })
            .collect(),
    }
}

/// Adds `msg_index` to events emitted while executing message `index`, as the SDK does.
pub fn tag_message_index(events: &mut [Event], index: usize) {
    for event in events {
        event.attributes.push(EventAttribute {
            key: "msg_index".into(),
            value: index.to_string(),
            index: true,
        });
    }
}
