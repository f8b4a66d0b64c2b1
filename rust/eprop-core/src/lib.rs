//! eprop-core: state and math of eprop, online training of spiking neural
//! networks in memory that does not grow with sequence length.
//!
//! Names follow the e-prop paper (Bellec et al. 2020, Nat. Commun. 11:3625):
//! `v` membrane, `z` spikes, `psi` pseudo-derivative, `alpha` membrane decay,
//! `kappa` trace decay, `signal` the learning signal L_j, `elig` eligibility.
//! Times are in ms. No Python here: the binding crate `eprop-py` wraps it.

pub mod batch;
pub mod error;
pub mod kernels;
pub mod lif;
pub mod pool;
pub mod rng;
pub mod rsnn;
pub mod seed_eprop;
pub mod seed_online;
pub mod stream;

pub use error::{EpropError, Result};
