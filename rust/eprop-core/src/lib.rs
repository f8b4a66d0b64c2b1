//! eprop-core: state and math of eprop, online training of spiking neural
//! networks in memory that does not grow with sequence length.
//!
//! One module per idea, used by every model:
//!
//! | module | idea |
//! |---|---|
//! | [`check`] | validation of everything that comes from outside |
//! | [`kernels`] | every hot loop (portable and AVX2 builds) |
//! | [`event`] | event-driven exact canonical e-prop (running sums per neuron) |
//! | [`neuron`] | neuron dynamics: the seed's LIF, canonical LIF/ALIF |
//! | [`readout`] | losses, errors, learning signals, evaluation |
//! | [`optim`] | SGD, Adam, no self-connections, Kolen-Pollack |
//! | [`driver`] | the model traits, the sequence/stream and batch drivers |
//! | [`state`], [`npz`] | named state (`state_dict`) and checkpoint files |
//! | [`pool`], [`rng`] | thread pools; NumPy's legacy random stream |
//! | [`real`] | the float type a network computes in (`f64`, `f32`) |
//! | [`models`] | configuration, weights and per-sequence state of each model |
//!
//! Names follow the e-prop paper (Bellec et al. 2020, Nat. Commun. 11:3625):
//! `v` membrane, `z` spikes, `psi` pseudo-derivative, `alpha` membrane decay,
//! `kappa` trace decay, `signal` the learning signal L_j, `elig` eligibility.
//! Times are in ms. No Python here: the binding crate `eprop-py` wraps it.

pub mod check;
pub mod driver;
pub mod error;
pub mod event;
pub mod kernels;
pub mod models;
pub mod neuron;
pub mod npz;
pub mod optim;
pub mod pool;
pub mod readout;
pub mod real;
pub mod rng;
pub mod state;

pub use error::{EpropError, Result};
