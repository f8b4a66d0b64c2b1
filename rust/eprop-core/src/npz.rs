//! Checkpoint files: a [`StateDict`] as a NumPy `.npz` archive (a zip of
//! `.npy` arrays, stored uncompressed), readable by `numpy.load` with
//! `allow_pickle=False`, and written atomically (to a temporary file in the
//! same folder, synced, then renamed over the target).
//!
//! Reading accepts archives written by this module and by `numpy.savez`
//! (stored members, zip64 records): integers, floats, booleans and text as
//! values. Anything else (compressed or encrypted members, object arrays,
//! which would need pickle, truncated or inconsistent records) is refused
//! with an error; sizes are checked against the file's length before any
//! allocation, so a hostile file cannot ask for unbounded memory.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use ndarray::{ArrayD, IxDyn};

use crate::error::{EpropError, Result};
use crate::state::{StateDict, Value};

// ------------------------------------------------------------------ CRC-32

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC_TABLE: [u32; 256] = crc_table();

/// CRC-32 (the zip format's) over consecutive pieces.
#[derive(Clone, Copy)]
struct Crc(u32);

impl Crc {
    fn new() -> Self {
        Crc(0xFFFF_FFFF)
    }
    fn update(&mut self, bytes: &[u8]) {
        let mut c = self.0;
        for &b in bytes {
            c = CRC_TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
        }
        self.0 = c;
    }
    fn value(self) -> u32 {
        self.0 ^ 0xFFFF_FFFF
    }
}

// ------------------------------------------------------------------ .npy members

/// One array as stored: dtype, shape and a way to produce its bytes.
enum Member<'a> {
    F64(&'a [f64], Vec<usize>),
    I64(Vec<i64>, Vec<usize>),
    Text(&'a str),
}

impl Member<'_> {
    fn of(v: &Value) -> Member<'_> {
        match v {
            Value::Int(i) => Member::I64(vec![*i], vec![]),
            Value::Float(f) => Member::F64(std::slice::from_ref(f), vec![]),
            Value::Text(s) => Member::Text(s),
            Value::Ints(v) => Member::I64(v.clone(), vec![v.len()]),
            Value::Array(a) => Member::F64(a.as_slice().expect("state arrays are standard layout"), a.shape().to_vec()),
            Value::Other(s) => Member::Text(s),
        }
    }

    fn header(&self) -> Vec<u8> {
        let (descr, shape) = match self {
            Member::F64(_, s) => ("<f8".to_string(), s.clone()),
            Member::I64(_, s) => ("<i8".to_string(), s.clone()),
            Member::Text(t) => (format!("<U{}", t.chars().count().max(1)), vec![]),
        };
        let shape = match shape.len() {
            0 => "()".to_string(),
            1 => format!("({},)", shape[0]),
            _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
        };
        let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        // magic (6) + version (2) + length (2) + dict + padding + '\n', 64-aligned
        let total = 10 + dict.len() + 1;
        let pad = (64 - total % 64) % 64;
        dict.push_str(&" ".repeat(pad));
        dict.push('\n');
        let mut h = b"\x93NUMPY\x01\x00".to_vec();
        h.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        h.extend_from_slice(dict.as_bytes());
        h
    }

    fn data_len(&self) -> u64 {
        match self {
            Member::F64(d, _) => 8 * d.len() as u64,
            Member::I64(d, _) => 8 * d.len() as u64,
            Member::Text(t) => 4 * t.chars().count().max(1) as u64,
        }
    }

    /// Feeds the data bytes to `sink` in pieces.
    fn data(&self, sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(64 * 1024);
        match self {
            Member::F64(d, _) => {
                for chunk in d.chunks(8192) {
                    buf.clear();
                    chunk.iter().for_each(|x| buf.extend_from_slice(&x.to_le_bytes()));
                    sink(&buf)?;
                }
            }
            Member::I64(d, _) => {
                for chunk in d.chunks(8192) {
                    buf.clear();
                    chunk.iter().for_each(|x| buf.extend_from_slice(&x.to_le_bytes()));
                    sink(&buf)?;
                }
            }
            Member::Text(t) => {
                buf.clear();
                t.chars().for_each(|c| buf.extend_from_slice(&(c as u32).to_le_bytes()));
                if t.is_empty() {
                    buf.extend_from_slice(&[0; 4]);
                }
                sink(&buf)?;
            }
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ writing

const ZIP64: u64 = 0xFFFF_FFFF;

struct Written {
    name: String,
    crc: u32,
    size: u64,
    offset: u64,
}

/// Writes the archive to `w` (positioned at 0).
fn write_archive(w: &mut impl Write, d: &StateDict) -> std::io::Result<()> {
    let mut pos = 0u64;
    let mut done: Vec<Written> = Vec::new();
    let emit = |w: &mut dyn Write, bytes: &[u8], pos: &mut u64| -> std::io::Result<()> {
        w.write_all(bytes)?;
        *pos += bytes.len() as u64;
        Ok(())
    };
    for (key, value) in d.entries() {
        let m = Member::of(value);
        let header = m.header();
        let size = header.len() as u64 + m.data_len();
        let mut crc = Crc::new();
        crc.update(&header);
        m.data(&mut |b| {
            crc.update(b);
            Ok(())
        })?;
        let name = format!("{key}.npy");
        let big = size >= ZIP64;
        let mut local = Vec::with_capacity(64 + name.len());
        local.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        local.extend_from_slice(&(if big { 45u16 } else { 20u16 }).to_le_bytes());
        local.extend_from_slice(&0u16.to_le_bytes()); // flags
        local.extend_from_slice(&0u16.to_le_bytes()); // stored
        local.extend_from_slice(&0u16.to_le_bytes()); // time
        local.extend_from_slice(&0x0021u16.to_le_bytes()); // date: 1980-01-01
        local.extend_from_slice(&crc.value().to_le_bytes());
        let s32 = if big { ZIP64 as u32 } else { size as u32 };
        local.extend_from_slice(&s32.to_le_bytes());
        local.extend_from_slice(&s32.to_le_bytes());
        local.extend_from_slice(&(name.len() as u16).to_le_bytes());
        local.extend_from_slice(&(if big { 20u16 } else { 0u16 }).to_le_bytes());
        local.extend_from_slice(name.as_bytes());
        if big {
            local.extend_from_slice(&1u16.to_le_bytes());
            local.extend_from_slice(&16u16.to_le_bytes());
            local.extend_from_slice(&size.to_le_bytes());
            local.extend_from_slice(&size.to_le_bytes());
        }
        let offset = pos;
        emit(w, &local, &mut pos)?;
        emit(w, &header, &mut pos)?;
        let mut data_pos = pos;
        m.data(&mut |b| {
            w.write_all(b)?;
            data_pos += b.len() as u64;
            Ok(())
        })?;
        pos = data_pos;
        done.push(Written { name, crc: crc.value(), size, offset });
    }
    let cd_start = pos;
    for e in &done {
        let mut extra = Vec::new();
        if e.size >= ZIP64 {
            extra.extend_from_slice(&e.size.to_le_bytes());
            extra.extend_from_slice(&e.size.to_le_bytes());
        }
        if e.offset >= ZIP64 {
            extra.extend_from_slice(&e.offset.to_le_bytes());
        }
        let mut c = Vec::with_capacity(80 + e.name.len());
        c.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        c.extend_from_slice(&45u16.to_le_bytes()); // made by
        c.extend_from_slice(&(if extra.is_empty() { 20u16 } else { 45u16 }).to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes());
        c.extend_from_slice(&0x0021u16.to_le_bytes());
        c.extend_from_slice(&e.crc.to_le_bytes());
        let s32 = e.size.min(ZIP64) as u32;
        c.extend_from_slice(&s32.to_le_bytes());
        c.extend_from_slice(&s32.to_le_bytes());
        c.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        let extra_len = if extra.is_empty() { 0 } else { extra.len() + 4 };
        c.extend_from_slice(&(extra_len as u16).to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes()); // comment
        c.extend_from_slice(&0u16.to_le_bytes()); // disk
        c.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        c.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        c.extend_from_slice(&(e.offset.min(ZIP64) as u32).to_le_bytes());
        c.extend_from_slice(e.name.as_bytes());
        if !extra.is_empty() {
            c.extend_from_slice(&1u16.to_le_bytes());
            c.extend_from_slice(&(extra.len() as u16).to_le_bytes());
            c.extend_from_slice(&extra);
        }
        emit(w, &c, &mut pos)?;
    }
    let cd_size = pos - cd_start;
    let n = done.len() as u64;
    let zip64 = n >= 0xFFFF || cd_size >= ZIP64 || cd_start >= ZIP64;
    if zip64 {
        let z64 = pos;
        let mut r = Vec::with_capacity(56 + 20);
        r.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
        r.extend_from_slice(&44u64.to_le_bytes());
        r.extend_from_slice(&45u16.to_le_bytes());
        r.extend_from_slice(&45u16.to_le_bytes());
        r.extend_from_slice(&0u32.to_le_bytes());
        r.extend_from_slice(&0u32.to_le_bytes());
        r.extend_from_slice(&n.to_le_bytes());
        r.extend_from_slice(&n.to_le_bytes());
        r.extend_from_slice(&cd_size.to_le_bytes());
        r.extend_from_slice(&cd_start.to_le_bytes());
        r.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
        r.extend_from_slice(&0u32.to_le_bytes());
        r.extend_from_slice(&z64.to_le_bytes());
        r.extend_from_slice(&1u32.to_le_bytes());
        emit(w, &r, &mut pos)?;
    }
    let mut e = Vec::with_capacity(22);
    e.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    e.extend_from_slice(&0u16.to_le_bytes());
    e.extend_from_slice(&0u16.to_le_bytes());
    let n16 = if zip64 { 0xFFFF } else { n as u16 };
    e.extend_from_slice(&n16.to_le_bytes());
    e.extend_from_slice(&n16.to_le_bytes());
    e.extend_from_slice(&(if zip64 { ZIP64 as u32 } else { cd_size as u32 }).to_le_bytes());
    e.extend_from_slice(&(if zip64 { ZIP64 as u32 } else { cd_start as u32 }).to_le_bytes());
    e.extend_from_slice(&0u16.to_le_bytes());
    emit(w, &e, &mut pos)?;
    Ok(())
}

/// Writes `d` to `path` atomically: to a temporary file in the same folder,
/// synced, then renamed over `path`. On any error the temporary file is
/// removed and an existing file at `path` is left as it was.
pub fn save(path: &Path, d: &StateDict) -> Result<()> {
    let shown = path.display().to_string();
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |t| t.as_nanos());
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let k = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = folder.join(format!(".eprop-{}-{stamp}-{k}.npz.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let file = File::options().write(true).create_new(true).open(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        write_archive(&mut w, d)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        if let Ok(dir) = File::open(&folder) {
            let _ = dir.sync_all(); // the rename itself, where the platform allows
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        EpropError::io(&shown, &e)
    })
}

// ------------------------------------------------------------------ reading

fn corrupt(path: &str, detail: impl std::fmt::Display) -> EpropError {
    EpropError::param("path", "an eprop checkpoint (.npz)", format!("a truncated or corrupt file '{path}' ({detail})"))
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    b.get(i..i + 2).map(|s| u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    b.get(i..i + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], i: usize) -> Option<u64> {
    b.get(i..i + 8).map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
}

struct Entry {
    name: String,
    crc: u32,
    size: u64,
    offset: u64,
}

/// The central directory of a zip archive of length `len`.
fn directory(f: &mut (impl Read + Seek), len: u64) -> std::result::Result<Vec<Entry>, String> {
    let tail_len = len.min(22 + 65535);
    let mut tail = vec![0u8; tail_len as usize];
    f.seek(SeekFrom::Start(len - tail_len)).map_err(|e| e.to_string())?;
    f.read_exact(&mut tail).map_err(|e| e.to_string())?;
    let eocd = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| u32_at(&tail, i) == Some(0x0605_4b50))
        .ok_or("no zip end-of-directory record")?;
    let bad = || "a damaged end-of-directory record".to_string();
    let mut n = u16_at(&tail, eocd + 10).ok_or_else(bad)? as u64;
    let mut cd_size = u32_at(&tail, eocd + 12).ok_or_else(bad)? as u64;
    let mut cd_start = u32_at(&tail, eocd + 16).ok_or_else(bad)? as u64;
    if n == 0xFFFF || cd_size == ZIP64 || cd_start == ZIP64 {
        let loc = eocd.checked_sub(20).ok_or("no zip64 locator")?;
        if u32_at(&tail, loc) != Some(0x0706_4b50) {
            return Err("no zip64 locator".into());
        }
        let z64 = u64_at(&tail, loc + 8).ok_or("a damaged zip64 locator")?;
        if z64 > len.saturating_sub(56) {
            return Err("a zip64 record outside the file".into());
        }
        let mut rec = [0u8; 56];
        f.seek(SeekFrom::Start(z64)).map_err(|e| e.to_string())?;
        f.read_exact(&mut rec).map_err(|e| e.to_string())?;
        if u32_at(&rec, 0) != Some(0x0606_4b50) {
            return Err("a damaged zip64 record".into());
        }
        n = u64_at(&rec, 32).ok_or("a damaged zip64 record")?;
        cd_size = u64_at(&rec, 40).ok_or("a damaged zip64 record")?;
        cd_start = u64_at(&rec, 48).ok_or("a damaged zip64 record")?;
    }
    if cd_start.checked_add(cd_size).is_none_or(|end| end > len) || n > cd_size / 46 + 1 {
        return Err("a central directory outside the file".into());
    }
    let mut cd = vec![0u8; cd_size as usize];
    f.seek(SeekFrom::Start(cd_start)).map_err(|e| e.to_string())?;
    f.read_exact(&mut cd).map_err(|e| e.to_string())?;
    let mut entries = Vec::new();
    let mut i = 0usize;
    for _ in 0..n {
        let bad = || "a damaged central directory".to_string();
        if u32_at(&cd, i) != Some(0x0201_4b50) {
            return Err(bad());
        }
        let flags = u16_at(&cd, i + 8).ok_or_else(bad)?;
        let method = u16_at(&cd, i + 10).ok_or_else(bad)?;
        let crc = u32_at(&cd, i + 16).ok_or_else(bad)?;
        let comp = u32_at(&cd, i + 20).ok_or_else(bad)? as u64;
        let mut size = u32_at(&cd, i + 24).ok_or_else(bad)? as u64;
        let name_len = u16_at(&cd, i + 28).ok_or_else(bad)? as usize;
        let extra_len = u16_at(&cd, i + 30).ok_or_else(bad)? as usize;
        let comment_len = u16_at(&cd, i + 32).ok_or_else(bad)? as usize;
        let mut offset = u32_at(&cd, i + 42).ok_or_else(bad)? as u64;
        let name = cd.get(i + 46..i + 46 + name_len).ok_or_else(bad)?;
        let name = String::from_utf8(name.to_vec()).map_err(|_| "a member name that is not UTF-8".to_string())?;
        let extra = cd.get(i + 46 + name_len..i + 46 + name_len + extra_len).ok_or_else(bad)?;
        if flags & 1 != 0 {
            return Err(format!("an encrypted member '{name}'"));
        }
        if method != 0 {
            return Err(format!("a compressed member '{name}' (method {method})"));
        }
        // zip64 extra field: the values that are 0xFFFFFFFF above, in order
        let mut j = 0;
        while j + 4 <= extra.len() {
            let id = u16_at(extra, j).ok_or_else(bad)?;
            let l = u16_at(extra, j + 2).ok_or_else(bad)? as usize;
            if id == 1 {
                let mut k = j + 4;
                if size == ZIP64 {
                    size = u64_at(extra, k).ok_or_else(bad)?;
                    k += 8;
                }
                if comp == ZIP64 {
                    k += 8;
                }
                if offset == ZIP64 {
                    offset = u64_at(extra, k).ok_or_else(bad)?;
                }
            }
            j += 4 + l;
        }
        if comp != ZIP64 && comp != size {
            return Err(format!("a member '{name}' whose sizes disagree"));
        }
        entries.push(Entry { name, crc, size, offset });
        i += 46 + name_len + extra_len + comment_len;
    }
    Ok(entries)
}

/// Parses one `.npy` member into a value.
fn npy_value(b: &[u8]) -> std::result::Result<Value, String> {
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        return Err("a member that is not a .npy array".into());
    }
    let (hlen, start) = match b[6] {
        1 => (u16_at(b, 8).ok_or("a damaged .npy header")? as usize, 10),
        2 | 3 => (u32_at(b, 8).ok_or("a damaged .npy header")? as usize, 12),
        v => return Err(format!("a .npy version {v}")),
    };
    let header = b.get(start..start + hlen).ok_or("a truncated .npy header")?;
    let header = std::str::from_utf8(header).map_err(|_| "a .npy header that is not text")?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}':"))? + key.len() + 3;
        Some(header[at..].trim_start())
    };
    let descr = field("descr").ok_or("a .npy header without descr")?;
    let descr =
        descr.strip_prefix('\'').and_then(|s| s.split('\'').next()).ok_or("a .npy header with a strange descr")?;
    let fortran = field("fortran_order").is_some_and(|s| s.starts_with("True"));
    let shape_text = field("shape").ok_or("a .npy header without shape")?;
    let shape_text =
        shape_text.strip_prefix('(').and_then(|s| s.split(')').next()).ok_or("a .npy header with a strange shape")?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| format!("a .npy shape ({shape_text})")))
        .collect::<std::result::Result<_, _>>()?;
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("a .npy shape too large")?;
    let data = &b[start + hlen..];
    let (order, kind, width) = {
        let mut c = descr.chars();
        let order = c.next().ok_or("an empty dtype")?;
        let kind = c.next().ok_or("an empty dtype")?;
        let width: usize = c.as_str().parse().map_err(|_| format!("the dtype '{descr}'"))?;
        (order, kind, width)
    };
    if kind == 'O' {
        return Err("an object array (pickled data is never read)".into());
    }
    let big = order == '>';
    let need = count.checked_mul(if kind == 'U' { 4 * width } else { width }).ok_or("a .npy shape too large")?;
    if data.len() != need {
        return Err(format!("a .npy array of {} bytes where its header needs {need}", data.len()));
    }
    let word = |i: usize, w: usize| -> [u8; 8] {
        let mut x = [0u8; 8];
        let s = &data[i * w..(i + 1) * w];
        if big {
            for (k, &v) in s.iter().rev().enumerate() {
                x[k] = v;
            }
        } else {
            x[..w].copy_from_slice(s);
        }
        x
    };
    let mut ints: Option<Vec<i64>> = None;
    let values: Vec<f64> = match (kind, width) {
        ('f', 8) => (0..count).map(|i| f64::from_le_bytes(word(i, 8))).collect(),
        ('f', 4) => (0..count).map(|i| f32::from_le_bytes(word(i, 4)[..4].try_into().expect("4")) as f64).collect(),
        ('i', 1 | 2 | 4 | 8) | ('u', 1 | 2 | 4 | 8) | ('b', 1) => {
            let shift = 64 - 8 * width as u32;
            let v: Vec<i64> = (0..count)
                .map(|i| {
                    let raw = i64::from_le_bytes(word(i, width));
                    if kind == 'i' {
                        Ok((raw << shift) >> shift) // sign-extend
                    } else if width == 8 && raw < 0 {
                        Err("an unsigned integer above 2**63".to_string())
                    } else {
                        Ok(raw)
                    }
                })
                .collect::<std::result::Result<_, _>>()?;
            let f = v.iter().map(|&x| x as f64).collect();
            ints = Some(v);
            f
        }
        ('U', _) => {
            if !shape.is_empty() {
                return Err("an array of text".into());
            }
            let mut s = String::new();
            for k in 0..width {
                let c = u32::from_le_bytes(data[4 * k..4 * k + 4].try_into().expect("4"));
                if c == 0 {
                    break;
                }
                s.push(char::from_u32(c).ok_or("text that is not Unicode")?);
            }
            return Ok(Value::Text(s));
        }
        _ => return Err(format!("the dtype '{descr}'")),
    };
    if shape.is_empty() {
        return Ok(match ints {
            Some(v) => Value::Int(v[0]),
            None => Value::Float(values[0]),
        });
    }
    if let (Some(v), 1) = (&ints, shape.len()) {
        return Ok(Value::Ints(v.clone()));
    }
    let a = if fortran {
        let rev: Vec<usize> = shape.iter().rev().copied().collect();
        ArrayD::from_shape_vec(IxDyn(&rev), values)
            .map_err(|e| e.to_string())?
            .reversed_axes()
            .as_standard_layout()
            .into_owned()
    } else {
        ArrayD::from_shape_vec(IxDyn(&shape), values).map_err(|e| e.to_string())?
    };
    Ok(Value::Array(a))
}

/// Reads an archive from any seekable source of length `len`.
fn read_archive(f: &mut (impl Read + Seek), len: u64) -> std::result::Result<StateDict, String> {
    let entries = directory(f, len)?;
    let mut d = StateDict::default();
    for e in entries {
        let key = e
            .name
            .strip_suffix(".npy")
            .ok_or_else(|| format!("a member '{}' that is not a .npy array", e.name))?
            .to_string();
        let mut local = [0u8; 30];
        if e.offset.checked_add(30).is_none_or(|end| end > len) {
            return Err(format!("a member '{}' outside the file", e.name));
        }
        f.seek(SeekFrom::Start(e.offset)).map_err(|x| x.to_string())?;
        f.read_exact(&mut local).map_err(|x| x.to_string())?;
        if u32_at(&local, 0) != Some(0x0403_4b50) {
            return Err(format!("a damaged header of member '{}'", e.name));
        }
        let skip = 30 + u16_at(&local, 26).unwrap_or(0) as u64 + u16_at(&local, 28).unwrap_or(0) as u64;
        let start = e.offset + skip;
        if start.checked_add(e.size).is_none_or(|end| end > len) {
            return Err(format!("a member '{}' that runs past the end of the file", e.name));
        }
        let mut data = vec![0u8; e.size as usize];
        f.seek(SeekFrom::Start(start)).map_err(|x| x.to_string())?;
        f.read_exact(&mut data).map_err(|x| x.to_string())?;
        let mut crc = Crc::new();
        crc.update(&data);
        if crc.value() != e.crc {
            return Err(format!("member '{}' fails its checksum", e.name));
        }
        let v = npy_value(&data).map_err(|m| format!("member '{}': {m}", e.name))?;
        if d.contains(&key) {
            return Err(format!("member '{key}' twice"));
        }
        d.put(&key, v);
    }
    Ok(d)
}

/// Reads a checkpoint file (no code is run, nothing is unpickled).
pub fn load(path: &Path) -> Result<StateDict> {
    let shown = path.display().to_string();
    let mut f = File::open(path).map_err(|e| EpropError::io(&shown, &e))?;
    let len = f.metadata().map_err(|e| EpropError::io(&shown, &e))?.len();
    if len < 22 {
        return Err(corrupt(&shown, "too short to be a zip archive"));
    }
    read_archive(&mut f, len).map_err(|m| corrupt(&shown, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The archive's bytes.
    fn to_bytes(d: &StateDict) -> Vec<u8> {
        let mut v = Vec::new();
        write_archive(&mut v, d).expect("writing to memory does not fail");
        v
    }

    /// Reads an archive held in memory.
    fn from_bytes(bytes: &[u8]) -> Result<StateDict> {
        if bytes.len() < 22 {
            return Err(corrupt("<bytes>", "too short to be a zip archive"));
        }
        let mut c = std::io::Cursor::new(bytes);
        read_archive(&mut c, bytes.len() as u64).map_err(|m| corrupt("<bytes>", m))
    }

    fn sample() -> StateDict {
        let mut d = StateDict::new("EpropTrainer", 1);
        d.put_int("n_inputs", 3);
        d.put_float("lr", 0.01);
        d.put("layer_sizes", Value::Ints(vec![4, 10, 3]));
        d.put("W", Value::Array(ndarray::array![[1.0, -2.5, 3.0], [4.0, 5.0, f64::MIN_POSITIVE]].into_dyn()));
        d.put_vec("empty", &[]);
        d.put_text("update", "sequence");
        d
    }

    #[test]
    fn round_trip_in_memory_and_on_disk() {
        let d = sample();
        let bytes = to_bytes(&d);
        assert_eq!(from_bytes(&bytes).unwrap(), d);
        assert_eq!(to_bytes(&d), bytes, "deterministic");
        let dir = std::env::temp_dir().join(format!("eprop-npz-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.npz");
        save(&p, &d).unwrap();
        assert_eq!(load(&p).unwrap(), d);
        assert!(save(&dir.join("missing").join("x.npz"), &d).is_err());
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn truncated_and_flipped_bytes_are_refused_without_panic() {
        let bytes = to_bytes(&sample());
        for cut in [0, 10, 21, 22, 100, bytes.len() / 2, bytes.len() - 1] {
            assert!(from_bytes(&bytes[..cut]).is_err(), "cut {cut}");
        }
        for i in (0..bytes.len()).step_by(7) {
            let mut b = bytes.clone();
            b[i] ^= 0x5A;
            // either refused or, if the flip hit an unused byte, read; never a panic
            let _ = from_bytes(&b);
        }
        let mut b = bytes.clone();
        let at = b.len() / 2;
        b[at] ^= 1;
        assert!(from_bytes(&b).is_err(), "a flipped data byte fails the checksum");
    }

    // ------------------------------------------------ fuzzing (proptest)

    /// Counts the bytes each thread has allocated and not freed, and the
    /// most it held since [`alloc_mark`]: tests run on parallel threads, so
    /// only this thread's allocations count.
    struct Tracking;

    thread_local! {
        static HELD: std::cell::Cell<(usize, usize)> = const { std::cell::Cell::new((0, 0)) };
    }

    fn held(delta: isize) {
        let _ = HELD.try_with(|h| {
            let (now, peak) = h.get();
            let now = now.saturating_add_signed(delta);
            h.set((now, peak.max(now)));
        });
    }

    // SAFETY: every call is passed on to the system allocator unchanged; the
    // bookkeeping touches a thread-local Cell only (no allocation).
    unsafe impl std::alloc::GlobalAlloc for Tracking {
        unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
            held(l.size() as isize);
            unsafe { std::alloc::System.alloc(l) }
        }
        unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
            held(-(l.size() as isize));
            unsafe { std::alloc::System.dealloc(p, l) }
        }
        unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, n: usize) -> *mut u8 {
            held(n as isize - l.size() as isize);
            unsafe { std::alloc::System.realloc(p, l, n) }
        }
    }

    #[global_allocator]
    static ALLOCATOR: Tracking = Tracking;

    /// Starts counting this thread's peak from what it holds now.
    fn alloc_mark() -> usize {
        HELD.with(|h| {
            let (now, _) = h.get();
            h.set((now, now));
            now
        })
    }

    /// The most this thread held above `base` since [`alloc_mark`].
    fn alloc_peak(base: usize) -> usize {
        HELD.with(|h| h.get().1.saturating_sub(base))
    }

    /// A checkpoint of every kind of member: a matrix, a scalar of each type,
    /// a list of ints, text, an empty array.
    fn fuzz_sample() -> StateDict {
        let mut d = sample();
        d.put(
            "W_rec",
            Value::Array(ndarray::Array2::from_shape_fn((12, 12), |(i, j)| i as f64 - 0.5 * j as f64).into_dyn()),
        );
        d.put_float("tau_mem", 20.0);
        d
    }

    /// One .npy member's bytes.
    fn npy_bytes(v: &Value) -> Vec<u8> {
        let m = Member::of(v);
        let mut b = m.header();
        m.data(&mut |chunk| {
            b.extend_from_slice(chunk);
            Ok(())
        })
        .unwrap();
        b
    }

    /// A change to a file: flip a byte, overwrite 4 bytes with a value a
    /// parser could trust too much (a size, an offset, a count), cut the end,
    /// insert bytes, or rewrite digits (shapes and dtype widths in a header).
    #[derive(Debug, Clone)]
    enum Edit {
        Flip(usize, u8),
        Word(usize, u32),
        Cut(usize),
        Insert(usize, Vec<u8>),
        Digits(usize, u64),
    }

    fn edits() -> impl proptest::strategy::Strategy<Value = Vec<Edit>> {
        use proptest::prelude::*;
        let word = prop_oneof![Just(0u32), Just(u32::MAX), Just(0xFFFF), Just(1 << 31), any::<u32>()];
        let edit = prop_oneof![
            (any::<usize>(), 1u8..=255).prop_map(|(i, x)| Edit::Flip(i, x)),
            (any::<usize>(), word).prop_map(|(i, w)| Edit::Word(i, w)),
            any::<usize>().prop_map(Edit::Cut),
            (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, v)| Edit::Insert(i, v)),
            (any::<usize>(), prop_oneof![Just(0u64), Just(u64::MAX), Just(1 << 40), any::<u64>()])
                .prop_map(|(i, n)| Edit::Digits(i, n)),
        ];
        proptest::collection::vec(edit, 1..6)
    }

    fn apply(bytes: &mut Vec<u8>, edits: &[Edit]) {
        for e in edits {
            let n = bytes.len().max(1);
            match e {
                Edit::Flip(i, x) => {
                    if let Some(b) = bytes.get_mut(i % n) {
                        *b ^= x;
                    }
                }
                Edit::Word(i, w) => {
                    let at = i % n;
                    for (k, v) in w.to_le_bytes().iter().enumerate() {
                        if let Some(b) = bytes.get_mut(at + k) {
                            *b = *v;
                        }
                    }
                }
                Edit::Cut(i) => bytes.truncate(i % n),
                Edit::Insert(i, v) => {
                    let at = i % n;
                    bytes.splice(at..at, v.iter().copied());
                }
                Edit::Digits(i, x) => {
                    // the first run of ASCII digits at or after i, replaced by x
                    let start = (i % n..bytes.len()).find(|&k| bytes[k].is_ascii_digit());
                    if let Some(s) = start {
                        let end = (s..bytes.len()).find(|&k| !bytes[k].is_ascii_digit()).unwrap_or(bytes.len());
                        bytes.splice(s..end, x.to_string().into_bytes());
                    }
                }
            }
        }
    }

    /// Runs `f` catching a panic; with the most bytes this thread held
    /// above what it held before.
    fn guarded<R>(f: impl FnOnce() -> R) -> (std::thread::Result<R>, usize) {
        let base = alloc_mark();
        let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        (got, alloc_peak(base))
    }

    /// Bytes a reader may hold for an input of `len` bytes: its copies of
    /// the data (raw, values, the array) and small bookkeeping, never more.
    fn allowed(len: usize) -> usize {
        8 * len + (256 << 10)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        /// Damaged archives: refused with an error or read, never a panic,
        /// never more memory than a few copies of the file.
        #[test]
        fn damaged_archives_are_refused_without_panic_or_unbounded_memory(edits in edits()) {
            let mut bytes = to_bytes(&fuzz_sample());
            apply(&mut bytes, &edits);
            let (got, peak) = guarded(|| from_bytes(&bytes));
            proptest::prop_assert!(got.is_ok(), "panicked on {:?}", edits);
            proptest::prop_assert!(peak <= allowed(bytes.len()), "held {} bytes for a file of {}", peak, bytes.len());
            if let Ok(Err(e)) = got {
                proptest::prop_assert!(e.to_string().contains("<bytes>"), "the error names the file: {}", e);
            }
        }

        /// Damaged .npy members whose checksum would pass (the archive's CRC
        /// is recomputed by whoever damaged them): never a panic, never more
        /// memory than a few copies of the member, whatever shape or dtype
        /// the header claims.
        #[test]
        fn damaged_members_are_refused_without_panic_or_unbounded_memory(which in 0usize..8, edits in edits()) {
            let d = fuzz_sample();
            let values: Vec<&Value> = d.entries().iter().map(|(_, v)| v).collect();
            let mut bytes = npy_bytes(values[which % values.len()]);
            apply(&mut bytes, &edits);
            let (got, peak) = guarded(|| npy_value(&bytes));
            proptest::prop_assert!(got.is_ok(), "panicked on {:?}", edits);
            proptest::prop_assert!(peak <= allowed(bytes.len()), "held {} bytes for a member of {}", peak, bytes.len());
        }
    }
}
