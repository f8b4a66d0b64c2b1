//! Named state: what `state_dict()` returns and checkpoints store. A
//! [`StateDict`] is an ordered list of named values (integers, floats, text,
//! integer lists, float64 arrays); its typed getters check every value and
//! name the entry in their messages, so a model can load a state it did not
//! write (from a file, or built by hand) and refuse it cleanly.

use ndarray::{Array1, Array2, ArrayD, ArrayViewD, IxDyn};

use crate::check;
use crate::error::{fmt_float, fmt_shape, EpropError, Result};
use crate::real::Real;

/// One named value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Text(String),
    Ints(Vec<i64>),
    Array(ArrayD<f64>),
    /// Something that is none of the above (kept to be named in a message).
    Other(String),
}

impl Value {
    /// The value itself for sizes (an integer, a list), else its kind.
    pub fn kind_short(&self) -> String {
        match self {
            Value::Int(v) => v.to_string(),
            Value::Ints(v) => format!("{v:?}"),
            other => other.kind(),
        }
    }

    /// What the value is, for messages.
    pub fn kind(&self) -> String {
        match self {
            Value::Int(v) => format!("the integer {v}"),
            Value::Float(v) => format!("the float {v}"),
            Value::Text(s) => format!("the text '{s}'"),
            Value::Ints(v) => format!("a list of {} integers", v.len()),
            Value::Array(a) => format!("an array of shape {}", fmt_shape(a.shape())),
            Value::Other(s) => s.clone(),
        }
    }
}

/// Named values in a fixed order (keys unique).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StateDict {
    entries: Vec<(String, Value)>,
}

fn entry(key: &str) -> String {
    format!("state_dict['{key}']")
}

/// An error met while loading a state dict, naming its entry
/// (`state_dict['lr']`) where it named a bare hyperparameter (`lr`).
pub fn in_state(e: EpropError) -> EpropError {
    let named = |name: String| if name.starts_with("state_dict") { name } else { entry(&name) };
    match e {
        EpropError::Param { name, expected, got } => EpropError::Param { name: named(name), expected, got },
        EpropError::Shape { arg, expected, got } => EpropError::Shape { arg: named(arg), expected, got },
        EpropError::NonFinite { arg, index, value } => EpropError::NonFinite { arg: named(arg), index, value },
        other => other,
    }
}

impl StateDict {
    /// A state of `class` in layout `version` (the header every state carries).
    pub fn new(class: &str, version: i64) -> Self {
        let mut d = StateDict::default();
        d.put("format_version", Value::Int(version));
        d.put("class", Value::Text(class.to_string()));
        d
    }

    /// Sets `key` (replacing a value of the same name).
    pub fn put(&mut self, key: &str, value: Value) {
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key.to_string(), value)),
        }
    }

    pub fn put_int(&mut self, key: &str, v: i64) {
        self.put(key, Value::Int(v));
    }

    pub fn put_float(&mut self, key: &str, v: f64) {
        self.put(key, Value::Float(v));
    }

    pub fn put_text(&mut self, key: &str, v: &str) {
        self.put(key, Value::Text(v.to_string()));
    }

    /// Adds named arrays (see [`Stateful::arrays`]), copied.
    pub fn put_arrays<F: Real>(&mut self, arrays: Vec<(String, ArrayViewD<'_, F>)>) {
        for (k, a) in arrays {
            self.put(&k, Value::Array(a.mapv(F::f64)));
        }
    }

    pub fn put_vec(&mut self, key: &str, v: &[f64]) {
        self.put(key, Value::Array(ArrayD::from_shape_vec(IxDyn(&[v.len()]), v.to_vec()).expect("1-d")));
    }

    /// Entries in order.
    pub fn entries(&self) -> &[(String, Value)] {
        &self.entries
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k == key)
    }

    /// The value of `key`, or a message that it is missing.
    pub fn get(&self, key: &str) -> Result<&Value> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .ok_or_else(|| EpropError::Missing { what: "state_dict".into(), key: key.into() })
    }

    /// A float (an integer is accepted).
    pub fn float(&self, key: &str) -> Result<f64> {
        match self.get(key)? {
            Value::Float(v) => Ok(*v),
            Value::Int(v) => Ok(*v as f64),
            other => Err(EpropError::param(&entry(key), "a float", other.kind())),
        }
    }

    /// An integer.
    pub fn int(&self, key: &str) -> Result<i64> {
        match self.get(key)? {
            Value::Int(v) => Ok(*v),
            other => Err(EpropError::param(&entry(key), "an integer", other.kind())),
        }
    }

    /// An integer >= 0.
    pub fn count(&self, key: &str) -> Result<u64> {
        let v = self.int(key)?;
        u64::try_from(v).map_err(|_| EpropError::param(&entry(key), "an integer >= 0", v))
    }

    /// A text.
    pub fn text(&self, key: &str) -> Result<&str> {
        match self.get(key)? {
            Value::Text(s) => Ok(s),
            other => Err(EpropError::param(&entry(key), "a text", other.kind())),
        }
    }

    /// A list of integers (a 1-d array of whole numbers is accepted).
    pub fn ints(&self, key: &str) -> Result<Vec<i64>> {
        match self.get(key)? {
            Value::Ints(v) => Ok(v.clone()),
            Value::Array(a) if a.ndim() == 1 && a.iter().all(|x| x.fract() == 0.0 && x.abs() < 9e15) => {
                Ok(a.iter().map(|&x| x as i64).collect())
            }
            other => Err(EpropError::param(&entry(key), "a list of integers", other.kind())),
        }
    }

    /// An array of `shape`, finite and within the range of `F`, rounded to `F`.
    pub fn array<F: Real>(&self, key: &str, shape: &[usize]) -> Result<ArrayD<F>> {
        let name = entry(key);
        let a = match self.get(key)? {
            Value::Array(a) => a.clone(),
            Value::Ints(v) => {
                ArrayD::from_shape_vec(IxDyn(&[v.len()]), v.iter().map(|&x| x as f64).collect()).expect("1-d")
            }
            other => return Err(EpropError::param(&name, "a numeric array", other.kind())),
        };
        if a.shape() != shape {
            return Err(EpropError::shape(&name, fmt_shape(shape), fmt_shape(a.shape())));
        }
        let a = a.as_standard_layout().into_owned();
        check::finite(&name, a.as_slice().unwrap_or(&[]), shape)?;
        F::DTYPE.check_exact(&name, a.iter())?;
        Ok(a.mapv(F::of))
    }

    pub fn vector<F: Real>(&self, key: &str, n: usize) -> Result<Array1<F>> {
        Ok(self.array(key, &[n])?.into_dimensionality().expect("1-d"))
    }

    pub fn matrix<F: Real>(&self, key: &str, rows: usize, cols: usize) -> Result<Array2<F>> {
        Ok(self.array(key, &[rows, cols])?.into_dimensionality().expect("2-d"))
    }

    /// Whole-number counters (e.g. refractory steps left) stored as floats.
    pub fn counters(&self, key: &str, n: usize) -> Result<Vec<u32>> {
        let v = self.vector::<f64>(key, n)?;
        if let Some(bad) = v.iter().find(|&&r| r < 0.0 || r.fract() != 0.0 || r > u32::MAX as f64) {
            return Err(EpropError::param(&entry(key), "whole steps >= 0", bad));
        }
        Ok(v.iter().map(|&r| r as u32).collect())
    }

    /// The entries `ints`, `floats` and `texts`, read with their checks, as a
    /// new dict (the constructor arguments stored in a state).
    pub fn subset(&self, ints: &[&str], floats: &[&str], texts: &[&str]) -> Result<StateDict> {
        let mut out = StateDict::default();
        for &k in ints {
            out.put_int(k, self.int(k)?);
        }
        for &k in floats {
            out.put_float(k, self.float(k)?);
        }
        for &k in texts {
            out.put_text(k, self.text(k)?);
        }
        Ok(out)
    }

    /// Checks `class` and `format_version` (in that order).
    pub fn check_header(&self, class: &str, version: i64) -> Result<()> {
        let got = match self.get("class")? {
            Value::Text(s) => s.clone(),
            other => other.kind(),
        };
        if got != class {
            return Err(EpropError::param(&entry("class"), format!("'{class}'"), format!("'{got}'")));
        }
        let v = self.int("format_version")?;
        if v != version {
            return Err(EpropError::param(&entry("format_version"), format!("{version} for {class}"), v));
        }
        Ok(())
    }

    /// A size stored in the state equals this trainer's.
    /// Refuses an entry that `ours` (the state this object writes) does not
    /// have: a misspelt key, or a state of another layout, is an error, not
    /// something silently ignored.
    pub fn check_known_keys(&self, ours: &StateDict) -> Result<()> {
        match self.entries.iter().find(|(k, _)| !ours.contains(k)) {
            Some((k, v)) => Err(EpropError::param(
                &entry(k),
                "only entries this object's state_dict has",
                format!("an unknown entry ({})", v.kind_short()),
            )),
            None => Ok(()),
        }
    }

    pub fn check_size(&self, key: &str, expected: usize) -> Result<()> {
        let got = self.int(key)?;
        if got != expected as i64 {
            return Err(EpropError::param(&entry(key), format!("{expected} (this trainer's size)"), got));
        }
        Ok(())
    }

    /// A fixed hyperparameter stored in the state equals this network's (bitwise).
    pub fn check_same_float(&self, key: &str, ours: f64) -> Result<()> {
        let got = self.float(key)?;
        if got.to_bits() != ours.to_bits() {
            return Err(EpropError::param(
                &entry(key),
                format!("{} (this network's value)", fmt_float(ours)),
                fmt_float(got),
            ));
        }
        Ok(())
    }

    /// Every entry of `ours` (a [`Stateful::config`]) but the `free` ones has
    /// the same value in this state: sizes, floats (bitwise) and texts.
    pub fn check_same_config(&self, ours: &StateDict, free: &[&str]) -> Result<()> {
        for (k, v) in ours.entries().iter().filter(|(k, _)| !free.contains(&k.as_str())) {
            match v {
                Value::Int(n) => self.check_size(k, *n as usize)?,
                Value::Float(f) => self.check_same_float(k, *f)?,
                Value::Text(s) => self.check_same_text(k, s)?,
                Value::Ints(v) => {
                    let got = self.sizes(k)?;
                    if got != Value::Ints(v.clone()) {
                        return Err(EpropError::param(
                            &entry(k),
                            format!("{v:?} (this trainer's sizes)"),
                            got.kind_short(),
                        ));
                    }
                }
                _ => unreachable!("a configuration holds sizes, lists of sizes, floats and texts"),
            }
        }
        Ok(())
    }

    /// A size or a list of sizes (one per layer) as a configuration stores
    /// it: an integer, or a list of integers (a whole-number array is read
    /// as one), a list of one being the integer.
    pub fn sizes(&self, key: &str) -> Result<Value> {
        if let Value::Int(v) = self.get(key)? {
            return Ok(Value::Int(*v));
        }
        let v = self.ints(key)?;
        Ok(match v.as_slice() {
            [one] => Value::Int(*one),
            _ => Value::Ints(v),
        })
    }

    /// A fixed text hyperparameter stored in the state equals this network's.
    pub fn check_same_text(&self, key: &str, ours: &str) -> Result<()> {
        let got = match self.get(key)? {
            Value::Text(s) => s.clone(),
            Value::Int(v) => v.to_string(),
            other => other.kind(),
        };
        if got != ours {
            return Err(EpropError::param(&entry(key), format!("'{ours}' (this network's)"), format!("'{got}'")));
        }
        Ok(())
    }
}

/// Named array views with owned names.
pub fn named<'a, F: Real>(items: &[(&str, ArrayViewD<'a, F>)]) -> Vec<(String, ArrayViewD<'a, F>)> {
    items.iter().map(|(k, a)| (k.to_string(), a.clone())).collect()
}

/// The error for a name that is not a settable array.
pub fn not_settable(name: &str, settable: &[&str]) -> EpropError {
    EpropError::param("name", format!("one of {settable:?}"), format!("{name:?}"))
}

/// Something whose full state can be written to and read from a [`StateDict`].
pub trait Stateful {
    /// The Python class name stored in the state.
    const CLASS: &'static str;
    /// The layout version of the state.
    const VERSION: i64;
    /// The header and the hyperparameters (the constructor arguments, named
    /// as the Python configuration's fields, with their current values).
    fn config(&self) -> StateDict;
    /// The float type of the arrays.
    type F: Real;
    /// The float arrays of the state (weights and dynamic state), by name.
    fn arrays(&self) -> Vec<(String, ArrayViewD<'_, Self::F>)>;
    /// Adds what is neither configuration nor float array (step counters).
    fn put_counters(&self, _d: &mut StateDict) {}
    /// Hyperparameters, weights and the full dynamic state.
    fn state(&self) -> StateDict {
        let mut d = self.config();
        d.put_arrays(self.arrays());
        self.put_counters(&mut d);
        d
    }
    /// One named array of the state, copied as float64 (None for an unknown name).
    fn array(&self, name: &str) -> Option<ArrayD<f64>> {
        self.arrays().into_iter().find(|(k, _)| k == name).map(|(_, a)| a.mapv(<Self::F as Real>::f64))
    }
    /// Replaces the weight array `name` by `a` (same shape, finite), with the
    /// model's rules (no self-connections in `W_rec`); refused names and
    /// arrays change nothing.
    fn set_array(&mut self, name: &str, a: ArrayD<f64>) -> Result<()>;
    /// Replaces weights and state by those of `d` (which must fit this
    /// object's sizes); checks everything first, so that a refused state
    /// changes nothing.
    fn load_state(&mut self, d: &StateDict) -> Result<()>;
    /// The constructor arguments stored in `d` (its header checked first),
    /// named as the Python configuration's fields.
    fn config_of_state(d: &StateDict) -> Result<StateDict>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_access_names_the_entry() {
        let mut d = StateDict::new("X", 1);
        d.put_int("n", 3);
        d.put_float("lr", 0.5);
        d.put_vec("v", &[1.0, f64::NAN]);
        assert_eq!(d.int("n").unwrap(), 3);
        assert_eq!(d.float("n").unwrap(), 3.0);
        assert_eq!(d.int("lr").unwrap_err().to_string(), "state_dict['lr']: expected an integer, got the float 0.5");
        assert_eq!(d.get("w").unwrap_err().to_string(), "state_dict: expected key 'w', it is missing");
        assert_eq!(
            d.vector::<f64>("v", 3).unwrap_err().to_string(),
            "state_dict['v']: expected shape (3,), got shape (2,)"
        );
        assert!(d.vector::<f64>("v", 2).unwrap_err().to_string().contains("finite"));
        assert!(d.check_header("X", 1).is_ok());
        assert!(d.check_header("Y", 1).unwrap_err().to_string().contains("class"));
        assert!(d.check_header("X", 2).unwrap_err().to_string().contains("format_version"));
    }
}
