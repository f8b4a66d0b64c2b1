//! The models: each holds its configuration, its weights and the state of a
//! sequence in flight, and composes the shared modules into its step.
//!
//! - [`seed_eprop`]: the seed's `EpropTrainer` rule, reproduced exactly;
//! - [`seed_online`]: the seed's `OnlineLIFLayer` and `OnlineTrainer`;
//! - [`rsnn`]: canonical e-prop, `RecurrentNetwork`.

pub mod rsnn;
pub mod seed_eprop;
pub mod seed_online;
