//! Steps per second of the seed e-prop rule in pure Rust (no Python):
//! `cargo run --release -p eprop-core --example speed`.
use eprop_core::driver::{self, Trainer};
use eprop_core::models::seed_eprop::{SeedEpropConfig, SeedEpropNet};
use eprop_core::rng::LegacyRng;
use ndarray::Array2;
use std::time::Instant;

fn main() {
    for &(ni, nr, no, t) in &[(4, 16, 2, 200_000), (40, 100, 3, 20_000), (100, 256, 10, 4_000), (200, 1024, 10, 400)] {
        let mut rng = LegacyRng::new(1);
        let x = Array2::from_shape_simple_fn((t, ni), || if rng.next_f64() < 0.1 { 1.0 } else { 0.0 });
        let y = Array2::from_shape_simple_fn((t, no), || rng.next_normal());
        let cfg = SeedEpropConfig::new((ni as i64, nr as i64, no as i64), 20.0, 20.0, 1.0, 0.01, 1.0, 42).unwrap();
        let mut tr = Trainer::new(SeedEpropNet::<f64>::new(cfg));
        let start = Instant::now();
        driver::train_sequence(&mut tr, x.view(), y.view(), None, true).unwrap();
        let train = t as f64 / start.elapsed().as_secs_f64();
        let mut out = Array2::zeros((t, no));
        let start = Instant::now();
        driver::predict_sequence(&mut tr, x.view(), out.view_mut(), true).unwrap();
        let predict = t as f64 / start.elapsed().as_secs_f64();
        println!("({ni}, {nr}, {no}): train {train:.0} steps/s, predict {predict:.0} steps/s");
    }
}
