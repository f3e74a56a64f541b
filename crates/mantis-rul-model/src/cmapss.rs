//! Reader of the NASA C-MAPSS turbofan files (`train_FD00x.txt`, `test_FD00x.txt`,
//! `RUL_FD00x.txt`): whitespace-separated, 26 columns per row (unit, cycle, 3 settings,
//! 21 sensors).

use std::path::{Path, PathBuf};

use crate::error::{Result, RulError};
use crate::{Cycle, N_SENSORS, N_SETTINGS};

/// Columns of a C-MAPSS row.
pub const N_COLUMNS: usize = 2 + N_SETTINGS + N_SENSORS;

/// One engine's record: its unit number and its cycles, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct Engine {
    /// The unit number of the file.
    pub unit: u32,
    /// The cycles, in file order (cycle numbers 1, 2, ...).
    pub cycles: Vec<Cycle>,
}

impl Engine {
    /// Cycles left until failure after row `i` of a run-to-failure record (train files):
    /// `len() - 1 - i`, `None` past the end.
    pub fn rul_at(&self, i: usize) -> Option<usize> {
        self.cycles.len().checked_sub(1)?.checked_sub(i)
    }
}

/// One C-MAPSS sub-dataset (`FD001`, ...): train engines, test engines, and the true RUL at the
/// last row of each test engine.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// `FD001`, ...
    pub name: String,
    /// Run-to-failure engines of `train_<name>.txt`.
    pub train: Vec<Engine>,
    /// Truncated engines of `test_<name>.txt`.
    pub test: Vec<Engine>,
    /// `RUL_<name>.txt`: true remaining cycles at the last row of each test engine, in order.
    pub test_rul: Vec<f64>,
}

impl Dataset {
    /// Reads `train_<name>.txt`, `test_<name>.txt` and `RUL_<name>.txt` from `dir`.
    pub fn load(dir: &Path, name: &str) -> Result<Self> {
        let train = read_engines(&dir.join(format!("train_{name}.txt")))?;
        let test = read_engines(&dir.join(format!("test_{name}.txt")))?;
        let test_rul = read_rul(&dir.join(format!("RUL_{name}.txt")))?;
        if test.len() != test_rul.len() {
            return Err(RulError::Data(format!(
                "{name}: {} test engines but {} RUL lines",
                test.len(),
                test_rul.len()
            )));
        }
        tracing::debug!(
            dataset = name,
            train = train.len(),
            test = test.len(),
            "C-MAPSS data set read"
        );
        Ok(Self {
            name: name.to_owned(),
            train,
            test,
            test_rul,
        })
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| RulError::Io {
        path: path.to_owned(),
        source,
    })
}

fn parse_err(path: &Path, line: usize, message: impl Into<String>) -> RulError {
    RulError::Parse {
        path: PathBuf::from(path),
        line,
        message: message.into(),
    }
}

/// Parses one C-MAPSS row: `(unit, cycle, values)`.
pub fn parse_row(text: &str) -> std::result::Result<(u32, u32, Cycle), String> {
    let mut v = [0.0_f64; N_COLUMNS];
    let mut n = 0;
    for tok in text.split_ascii_whitespace() {
        if n == N_COLUMNS {
            return Err(format!("more than {N_COLUMNS} columns"));
        }
        v[n] = tok
            .parse::<f64>()
            .map_err(|e| format!("column {}: {tok:?}: {e}", n + 1))?;
        if !v[n].is_finite() {
            return Err(format!("column {}: {tok:?} is not finite", n + 1));
        }
        n += 1;
    }
    if n != N_COLUMNS {
        return Err(format!("{n} columns, expected {N_COLUMNS}"));
    }
    let as_index = |x: f64, what: &str| {
        if x >= 1.0 && x.fract() == 0.0 && x <= f64::from(u32::MAX) {
            Ok(x as u32)
        } else {
            Err(format!("{what} {x} is not a positive integer"))
        }
    };
    let unit = as_index(v[0], "unit")?;
    let cycle = as_index(v[1], "cycle")?;
    let mut settings = [0.0; N_SETTINGS];
    settings.copy_from_slice(&v[2..2 + N_SETTINGS]);
    let mut sensors = [0.0; N_SENSORS];
    sensors.copy_from_slice(&v[2 + N_SETTINGS..]);
    Ok((unit, cycle, Cycle { settings, sensors }))
}

/// Reads a `train_*` or `test_*` file into engines. Units must be contiguous and each engine's
/// cycles must run 1, 2, 3, ...
pub fn read_engines(path: &Path) -> Result<Vec<Engine>> {
    let text = read(path)?;
    let mut engines: Vec<Engine> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (unit, cycle, values) = parse_row(line).map_err(|m| parse_err(path, i + 1, m))?;
        match engines.last_mut() {
            Some(e) if e.unit == unit => {
                let expected = e.cycles.len() + 1;
                if cycle as usize != expected {
                    return Err(parse_err(
                        path,
                        i + 1,
                        format!("unit {unit}: cycle {cycle}, expected {expected}"),
                    ));
                }
                e.cycles.push(values);
            }
            _ => {
                if engines.iter().any(|e| e.unit == unit) {
                    return Err(parse_err(
                        path,
                        i + 1,
                        format!("unit {unit} is not contiguous"),
                    ));
                }
                if cycle != 1 {
                    return Err(parse_err(
                        path,
                        i + 1,
                        format!("unit {unit} starts at cycle {cycle}, expected 1"),
                    ));
                }
                engines.push(Engine {
                    unit,
                    cycles: vec![values],
                });
            }
        }
    }
    if engines.is_empty() {
        return Err(RulError::Data(format!("{} has no rows", path.display())));
    }
    Ok(engines)
}

/// Reads a `RUL_*` file: one non-negative number per line.
pub fn read_rul(path: &Path) -> Result<Vec<f64>> {
    let text = read(path)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let v: f64 = t
            .parse()
            .map_err(|e| parse_err(path, i + 1, format!("{t:?}: {e}")))?;
        if !v.is_finite() || v < 0.0 {
            return Err(parse_err(
                path,
                i + 1,
                format!("RUL {v} is not a non-negative number"),
            ));
        }
        out.push(v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_row_with_trailing_spaces() {
        let line = "1 1 -0.0007 -0.0004 100.0 518.67 641.82 1589.70 1400.60 14.62 21.61 554.36 \
                    2388.06 9046.19 1.30 47.47 521.66 2388.02 8138.62 8.4195 0.03 392 2388 100.00 \
                    39.06 23.4190  ";
        let (unit, cycle, c) = parse_row(line).expect("valid row");
        assert_eq!((unit, cycle), (1, 1));
        assert_eq!(c.settings, [-0.0007, -0.0004, 100.0]);
        assert_eq!(c.sensors[0], 518.67);
        assert_eq!(c.sensors[20], 23.4190);
    }

    #[test]
    fn rejects_malformed_rows() {
        assert!(parse_row("1 1 0 0").is_err());
        assert!(parse_row(&"1 ".repeat(27)).is_err());
        let mut bad = "1 1 ".to_owned() + &"0 ".repeat(23) + "x";
        assert!(parse_row(&bad).is_err());
        bad = "0 1 ".to_owned() + &"0 ".repeat(24);
        assert!(parse_row(&bad).is_err(), "unit 0");
        bad = "1 1.5 ".to_owned() + &"0 ".repeat(24);
        assert!(parse_row(&bad).is_err(), "fractional cycle");
        bad = "1 1 ".to_owned() + &"0 ".repeat(23) + "NaN";
        assert!(parse_row(&bad).is_err(), "NaN");
    }
}
