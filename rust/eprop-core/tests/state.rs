//! State of every model: `state()` then `load_state()` into another trainer
//! restores weights and dynamic state exactly, so that both run on bitwise
//! alike; a checkpoint file round-trips the state; a refused state changes
//! nothing.

use eprop_core::driver::{self, Model, Trainer, Update};
use eprop_core::event::Kernel;
use eprop_core::models::rsnn::{Feedback, PerLayer, RsnnConfig, RsnnNet, RsnnSpec};
use eprop_core::models::seed_eprop::{SeedEpropConfig, SeedEpropNet};
use eprop_core::models::seed_online::{SeedOnline, SeedOnlineConfig};
use eprop_core::npz;
use eprop_core::optim::Optimizer;
use eprop_core::readout::Loss;
use eprop_core::rng::LegacyRng;
use eprop_core::state::{StateDict, Stateful, Value};
use ndarray::{Array2, ArrayD, IxDyn};

fn data(seed: u32, t: usize, (ni, no): (usize, usize)) -> (Array2<f64>, Array2<f64>) {
    let mut rng = LegacyRng::new(seed);
    let x = Array2::from_shape_simple_fn((t, ni), || if rng.next_f64() < 0.3 { 2.0 } else { 0.0 });
    let y = Array2::from_shape_simple_fn((t, no), || rng.next_f64());
    (x, y)
}

/// Trains one sequence, then stops 25 steps into another: traces, eligibilities
/// and (for per-sequence updates) pending gradients are non-zero.
fn warm<M: Model<F = f64>>(t: &mut Trainer<M>, widths: (usize, usize)) {
    let (x, y) = data(1, 80, widths);
    driver::train_sequence(t, x.view(), y.view(), None, true).unwrap();
    let (x, y) = data(2, 25, widths);
    for (xr, yr) in x.rows().into_iter().zip(y.rows()) {
        t.step(xr.as_slice().unwrap(), Some(yr.as_slice().unwrap()), true);
    }
}

/// The outputs and losses of `steps` further learning steps.
fn run_on<M: Model<F = f64>>(t: &mut Trainer<M>, widths: (usize, usize)) -> Vec<f64> {
    let (x, y) = data(3, 60, widths);
    let mut out = Vec::new();
    for (xr, yr) in x.rows().into_iter().zip(y.rows()) {
        out.push(t.step(xr.as_slice().unwrap(), Some(yr.as_slice().unwrap()), true));
        out.extend_from_slice(t.output());
    }
    out
}

fn arrays<M: Model>(t: &Trainer<M>) -> Vec<(String, ArrayD<f64>)>
where
    Trainer<M>: Stateful,
{
    t.arrays().into_iter().map(|(k, a)| (k, a.mapv(eprop_core::real::Real::f64))).collect()
}

/// `a` is warmed up, its state loaded into `b` (built with another seed) and
/// written to a file and read back; then both learn on the same data.
fn round_trip<M: Model<F = f64>>(mut a: Trainer<M>, mut b: Trainer<M>, widths: (usize, usize))
where
    Trainer<M>: Stateful,
{
    warm(&mut a, widths);
    assert_ne!(arrays(&a), arrays(&b), "the trainers must differ before the load");
    let d = a.state();
    assert_eq!(d.int("format_version").unwrap(), <Trainer<M> as Stateful>::VERSION);
    assert_eq!(d.text("class").unwrap(), <Trainer<M> as Stateful>::CLASS);

    // a refused state (one array of the wrong shape) changes nothing
    let before = b.state();
    let (name, first) = a.arrays().into_iter().next().map(|(k, v)| (k, v.to_owned())).unwrap();
    let mut bad = d.clone();
    let wrong = ArrayD::zeros(IxDyn(&[first.len() + 1]));
    bad.put(&name, Value::Array(wrong));
    assert!(b.load_state(&bad).is_err(), "{name} of the wrong shape was accepted");
    assert_eq!(b.state(), before, "a refused state changed the trainer");

    b.load_state(&d).unwrap();
    assert_eq!(arrays(&b), arrays(&a));

    let dir =
        std::env::temp_dir().join(format!("eprop-state-test-{}-{}", std::process::id(), d.text("class").unwrap()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.npz");
    npz::save(&path, &d).unwrap();
    let read: StateDict = npz::load(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(read, d);

    let (ra, rb) = (run_on(&mut a, widths), run_on(&mut b, widths));
    assert_eq!(ra.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), rb.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    assert_eq!(arrays(&b), arrays(&a));
}

#[test]
fn seed_eprop_state_round_trip() {
    let make = |seed| {
        Trainer::new(SeedEpropNet::<f64>::new(
            SeedEpropConfig::new((6, 12, 2), 20.0, 15.0, 0.5, 0.01, 1.0, seed).unwrap(),
        ))
    };
    round_trip(make(42), make(7), (6, 2));
}

#[test]
fn seed_online_state_round_trip() {
    let make = |seed| Trainer::new(SeedOnline::new(SeedOnlineConfig::new(&[5, 8, 3], 20.0, 0.5, 0.01, seed).unwrap()));
    round_trip(make(42), make(7), (5, 3));
}

#[test]
fn rsnn_state_round_trip() {
    let make = |seed, (update, kernel)| {
        let spec = RsnnSpec {
            n_inputs: 5,
            n_neurons: vec![10],
            n_outputs: 3,
            n_adaptive: PerLayer::Each(4),
            tau_mem: 20.0,
            tau_adapt: 200.0,
            beta: None,
            threshold: 0.4,
            refractory: 3.0,
            dt: 1.0,
            tau_out: 20.0,
            loss: Loss::parse("mse").unwrap(),
            feedback: Feedback::parse("adaptive").unwrap(),
            feedback_decay: 0.01,
            surrogate_height: 0.3,
            reg_rate: 0.5,
            target_rate: 10.0,
            tau_reg: 100.0,
            optimizer: Optimizer::parse("adam").unwrap(),
            lr: 1e-3,
            update,
            seed,
            kernel,
            dtype: eprop_core::real::Dtype::F64,
        };
        Trainer::new(RsnnNet::new(RsnnConfig::new(&spec).unwrap()))
    };
    for update in [Update::Sequence, Update::Step, Update::every(7).unwrap()] {
        for kernel in [Kernel::Dense, Kernel::Event] {
            round_trip(make(3, (update, kernel)), make(4, (update, kernel)), (5, 3));
        }
    }
}
