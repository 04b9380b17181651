//! The pinned wheels (`xtask/libtorch-pins.txt`) from which the CPU libtorch is assembled.

use std::collections::HashSet;
use std::fmt;

/// The pin table shipped in the repository, compiled into xtask so it cannot drift from the binary.
pub const PINS_TXT: &str = include_str!("../libtorch-pins.txt");

/// One pinned wheel: what to ask pip for, the exact file pip must produce, and its sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// pip requirement, e.g. `torch==2.11.0`.
    pub requirement: String,
    /// Exact wheel file name pip writes.
    pub file: String,
    /// Lower-case hex sha256 of the wheel.
    pub sha256: String,
}

/// A malformed line in the pin table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinError {
    /// 1-based line number in the pin table.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for PinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "xtask/libtorch-pins.txt line {}: {}",
            self.line, self.reason
        )
    }
}

impl std::error::Error for PinError {}

/// True for a 64-character lower-case hex string.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Parses the pin table: `requirement file sha256` per line, `#` comments and blank lines ignored.
pub fn parse_pins(text: &str) -> Result<Vec<Pin>, PinError> {
    let mut pins = Vec::new();
    let mut seen = HashSet::new();
    for (idx, raw) in text.lines().enumerate() {
        let line = idx + 1;
        let content = raw.trim();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let err = |reason: String| PinError { line, reason };
        let fields: Vec<&str> = content.split_whitespace().collect();
        let [requirement, file, sha256] = fields[..] else {
            return Err(err(format!(
                "expected 3 fields (requirement, wheel file, sha256), found {}: {content:?}",
                fields.len()
            )));
        };
        if !requirement.contains("==") {
            return Err(err(format!(
                "requirement {requirement:?} is not pinned with `==`"
            )));
        }
        if !file.ends_with(".whl") || file.contains('/') {
            return Err(err(format!("{file:?} is not a wheel file name")));
        }
        if !is_sha256_hex(sha256) {
            return Err(err(format!(
                "{sha256:?} is not a lower-case hex sha256 (64 characters)"
            )));
        }
        if !seen.insert(file.to_string()) {
            return Err(err(format!("wheel {file} is pinned twice")));
        }
        pins.push(Pin {
            requirement: requirement.to_string(),
            file: file.to_string(),
            sha256: sha256.to_string(),
        });
    }
    if pins.is_empty() {
        return Err(PinError {
            line: 0,
            reason: "no wheels are pinned".to_string(),
        });
    }
    Ok(pins)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH_A: &str = "7aa2f9bbc6d4595ba72138026b2074be1233186150e9292865e04b7a63b8c67a";

    #[test]
    fn parses_fields_and_skips_comments() {
        let text = format!("# header\n\n  torch==2.11.0   torch-2.11.0-x.whl  {HASH_A}  \n");
        let pins = parse_pins(&text).unwrap();
        assert_eq!(
            pins,
            vec![Pin {
                requirement: "torch==2.11.0".into(),
                file: "torch-2.11.0-x.whl".into(),
                sha256: HASH_A.into(),
            }]
        );
    }

    #[test]
    fn rejects_bad_lines_naming_the_line() {
        let upper = HASH_A.to_uppercase();
        let cases = [
            ("torch==2.11.0 a.whl\n".to_string(), 1, "expected 3 fields"),
            (format!("#c\ntorch a.whl {HASH_A}\n"), 2, "not pinned"),
            (format!("torch==1 a.zip {HASH_A}\n"), 1, "not a wheel"),
            (
                format!("torch==1 a.whl {upper}\n"),
                1,
                "not a lower-case hex",
            ),
            (
                format!("torch==1 a.whl {}\n", &HASH_A[1..]),
                1,
                "not a lower-case hex",
            ),
            (
                format!("a==1 a.whl {HASH_A}\nb==1 a.whl {HASH_A}\n"),
                2,
                "pinned twice",
            ),
            ("# only comments\n".to_string(), 0, "no wheels"),
        ];
        for (text, line, needle) in cases {
            let e = parse_pins(&text).unwrap_err();
            assert_eq!(e.line, line, "{text:?} -> {e}");
            assert!(e.reason.contains(needle), "{text:?} -> {e}");
        }
    }

    #[test]
    fn shipped_table_pins_the_three_wheels_of_this_libtorch() {
        let pins = parse_pins(PINS_TXT).unwrap();
        let reqs: Vec<&str> = pins.iter().map(|p| p.requirement.as_str()).collect();
        assert_eq!(
            reqs,
            [
                format!("torch=={}", crate::libtorch::LIBTORCH_VERSION).as_str(),
                "nvidia-cuda-runtime==13.0.96",
                "nvidia-cuda-cupti==13.0.85"
            ]
        );
        assert_eq!(pins[0].sha256, HASH_A);
        // The wheel name must carry the version pip is asked for, or pip would write a different file.
        for p in &pins {
            let version = p.requirement.split("==").nth(1).unwrap();
            assert!(p.file.contains(&format!("-{version}-")), "{p:?}");
        }
    }
}
