//! Batch driver: B = 1 equals the single-sequence rule bitwise, results do not
//! depend on the thread count, and sequence mode leaves weights fixed inside
//! the batch.

use eprop_core::driver::{self, predict_batch, train_batch, Trainer, Update};
use eprop_core::models::seed_eprop::{SeedEpropConfig, SeedEpropNet};
use eprop_core::models::seed_online::{SeedOnline, SeedOnlineConfig};
use eprop_core::pool::run_in_pool;
use eprop_core::rng::LegacyRng;
use ndarray::{Array2, Array3};

fn spikes(rng: &mut LegacyRng, shape: (usize, usize, usize), p: f64) -> Array3<f64> {
    Array3::from_shape_simple_fn(shape, || if rng.next_f64() < p { 1.0 } else { 0.0 })
}

fn normals(rng: &mut LegacyRng, shape: (usize, usize, usize)) -> Array3<f64> {
    Array3::from_shape_simple_fn(shape, || rng.next_normal())
}

fn cfg() -> SeedEpropConfig {
    SeedEpropConfig::new((6, 12, 2), 20.0, 15.0, 0.5, 0.01, 1.0, 42).unwrap()
}

#[test]
fn seed_eprop_batch_of_one_is_train_sequence() {
    let mut rng = LegacyRng::new(3);
    let x = spikes(&mut rng, (1, 200, 6), 0.3);
    let y = normals(&mut rng, (1, 200, 2));
    let mut single = Trainer::new(SeedEpropNet::<f64>::new(cfg()));
    let loss = driver::train_sequence(
        &mut single,
        x.index_axis(ndarray::Axis(0), 0),
        y.index_axis(ndarray::Axis(0), 0),
        None,
        true,
    )
    .unwrap();
    let mut batched = SeedEpropNet::<f64>::new(cfg());
    let losses =
        run_in_pool(Some(1), || train_batch(&mut batched, x.view(), y.view(), None, Update::Step)).unwrap().unwrap();
    assert_eq!(losses, vec![loss]);
    assert_eq!(batched, single.model);
}

#[test]
fn seed_eprop_batch_identical_for_any_thread_count() {
    let mut rng = LegacyRng::new(5);
    let x = spikes(&mut rng, (7, 120, 6), 0.2);
    let y = normals(&mut rng, (7, 120, 2));
    for update in [Update::Step, Update::Sequence] {
        let mut reference: Option<(SeedEpropNet, Vec<f64>)> = None;
        for threads in [Some(1), Some(2), Some(3), Some(8), None] {
            let mut net = SeedEpropNet::<f64>::new(cfg());
            let losses =
                run_in_pool(threads, || train_batch(&mut net, x.view(), y.view(), None, update)).unwrap().unwrap();
            match &reference {
                None => reference = Some((net, losses)),
                Some((n, l)) => {
                    assert_eq!(&net, n, "{update:?} {threads:?}");
                    assert_eq!(&losses, l);
                }
            }
        }
    }
}

#[test]
fn sequence_mode_moves_weights_once_from_fixed_weights() {
    let mut rng = LegacyRng::new(9);
    let x = spikes(&mut rng, (2, 50, 6), 0.3);
    let y = normals(&mut rng, (2, 50, 2));
    let mut net = SeedEpropNet::<f64>::new(cfg());
    let start = net.clone();
    let losses = train_batch(&mut net, x.view(), y.view(), None, Update::Sequence).unwrap();
    // The loss of each sequence equals its loss with learning switched off.
    let mut frozen = start.clone();
    frozen.cfg.lr = 0.0;
    let frozen_losses = train_batch(&mut frozen, x.view(), y.view(), None, Update::Sequence).unwrap();
    assert_eq!(losses, frozen_losses);
    assert_ne!(net.w_in, start.w_in);
    assert!(net.w_rec.diag().iter().all(|&d| d == 0.0));
}

#[test]
fn predict_batch_rows_equal_predict_sequence() {
    let mut rng = LegacyRng::new(11);
    let x = spikes(&mut rng, (3, 80, 6), 0.3);
    let mut t = Trainer::new(SeedEpropNet::<f64>::new(cfg()));
    let mut out = Array3::zeros((3, 80, 2));
    run_in_pool(Some(2), || predict_batch(&t.model, x.view(), out.view_mut())).unwrap().unwrap();
    for b in 0..3 {
        let mut single = Array2::zeros((80, 2));
        driver::predict_sequence(&mut t, x.index_axis(ndarray::Axis(0), b), single.view_mut(), true).unwrap();
        assert_eq!(out.index_axis(ndarray::Axis(0), b), single);
    }
}

#[test]
fn online_batch_of_one_is_train_sequence_and_thread_independent() {
    let c = SeedOnlineConfig::new(&[5, 9, 7, 3], 20.0, 0.4, 0.01, 42).unwrap();
    let mut rng = LegacyRng::new(13);
    let x = spikes(&mut rng, (1, 150, 5), 0.4);
    let y = spikes(&mut rng, (1, 150, 3), 0.2);
    let mut single = Trainer::new(SeedOnline::<f64>::new(c.clone()));
    let loss = driver::train_sequence(
        &mut single,
        x.index_axis(ndarray::Axis(0), 0),
        y.index_axis(ndarray::Axis(0), 0),
        None,
        true,
    )
    .unwrap();
    let mut batched = SeedOnline::<f64>::new(c.clone());
    let losses = train_batch(&mut batched, x.view(), y.view(), None, Update::Step).unwrap();
    assert_eq!(losses, vec![loss]);
    for (a, b) in single.model.layers.iter().zip(&batched.layers) {
        assert_eq!(a.w, b.w);
    }
    let xb = spikes(&mut rng, (5, 60, 5), 0.4);
    let yb = spikes(&mut rng, (5, 60, 3), 0.2);
    for update in [Update::Step, Update::Sequence] {
        let mut one = SeedOnline::<f64>::new(c.clone());
        let mut two = SeedOnline::<f64>::new(c.clone());
        let l1 = run_in_pool(Some(1), || train_batch(&mut one, xb.view(), yb.view(), None, update)).unwrap().unwrap();
        let l2 = run_in_pool(Some(3), || train_batch(&mut two, xb.view(), yb.view(), None, update)).unwrap().unwrap();
        assert_eq!(l1, l2);
        for (a, b) in one.layers.iter().zip(&two.layers) {
            assert_eq!(a.w, b.w);
        }
    }
}

#[test]
fn bad_batches_are_rejected() {
    let mut net = SeedEpropNet::<f64>::new(cfg());
    let before = net.clone();
    let x = Array3::zeros((2, 10, 6));
    let y = Array3::zeros((2, 9, 2));
    assert!(train_batch(&mut net, x.view(), y.view(), None, Update::Step).is_err());
    let empty = Array3::zeros((0, 10, 6));
    let ey = Array3::zeros((0, 10, 2));
    assert!(train_batch(&mut net, empty.view(), ey.view(), None, Update::Step).is_err());
    assert_eq!(net, before);
    assert!(Update::parse_batch("epoch").is_err());
    assert!(run_in_pool(Some(0), || ()).is_err());
}
