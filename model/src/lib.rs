//! # Switchyard model
//!
//! The vocabulary every layer of the switch shares, with the rules that need nothing
//! but the values themselves: carrier objects and their validation, media settings
//! (one codec and one DTMF vocabulary), dial-plan number rules, identity settings,
//! the call and the decisions made on it, call records and money. No I/O: it builds for `wasm32-wasip2` too, and the guest
//! SDK uses its number rules. Because it cannot name the host, nothing here can
//! depend on storage, SIP or the policy engine.

pub mod address;
pub mod call;
pub mod call_record;
pub mod carrier;
pub mod credentials;
pub mod gateway;
pub mod lists;
pub mod media;
pub mod money;
pub mod numbers;

pub use address::Transport;
pub use call_record::{AttemptRecord, CallCharges, CallRecord, CallResult, EndReason};
pub use carrier::{Account, GatewayGroup, MappingGateway, Permission, Phone, RoutingGateway};
pub use gateway::{
    CallerPool, CallerSource, ExtraHeaders, ExtraHeadersMode, IdentityMode, PoolSelection,
    PrivacyMode, RouteBy,
};
pub use lists::{AddressList, ListHit, ListKind, ListScope, NumberList, NumberSide};
pub use media::{Codec, CodecMode, DtmfReceive, DtmfSend, G729Mode, MediaProxy, MediaSettings};
pub use money::Money;
pub use numbers::{apply_number_rules, NumberRule, RuleAction};
