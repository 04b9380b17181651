//! Finds the line and column of a dotted key path (`model.dropout`, `variants[1].name`) in YAML
//! text, so validation errors raised after parsing can still point into the file. Handles block
//! mappings and sequences; inside flow collections (`{...}`) it falls back to the enclosing key.

/// (line, column), both 1-based, of the deepest prefix of `path` found in `text`.
pub fn find_key(text: &str, path: &str) -> Option<(usize, usize)> {
    let target = segments(path);
    if target.is_empty() {
        return None;
    }
    // Stack of (indent, segment); sequence items are segments like "[2]".
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut seq_counts: Vec<(usize, String, usize)> = Vec::new();
    let mut best: Option<(usize, (usize, usize))> = None;
    for (lineno, raw_line) in text.lines().enumerate() {
        let line = strip_comment(raw_line);
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with("---") {
            continue;
        }
        let mut indent = line.len() - trimmed.len();
        let mut rest = trimmed;
        if rest == "-" || rest.starts_with("- ") {
            while stack.last().is_some_and(|(i, _)| *i >= indent) {
                stack.pop();
            }
            let parent = join(&stack);
            let idx = match seq_counts
                .iter_mut()
                .find(|(i, p, _)| *i == indent && *p == parent)
            {
                Some(entry) => {
                    entry.2 += 1;
                    entry.2
                }
                None => {
                    seq_counts.push((indent, parent, 0));
                    0
                }
            };
            stack.push((indent, format!("[{idx}]")));
            record(&stack, &target, lineno, indent, &mut best);
            rest = rest[1..].trim_start();
            indent = line.len() - rest.len();
        }
        if let Some(key) = mapping_key(rest) {
            while stack.last().is_some_and(|(i, _)| *i >= indent) {
                stack.pop();
            }
            stack.push((indent, key));
            record(&stack, &target, lineno, indent, &mut best);
        }
    }
    best.map(|(_, loc)| loc)
}

fn record(
    stack: &[(usize, String)],
    target: &[String],
    lineno: usize,
    col: usize,
    best: &mut Option<(usize, (usize, usize))>,
) {
    // Keys may themselves be dotted (`set: {model.dropout: 0.2}`): compare flattened paths.
    let segs = segments(
        &stack
            .iter()
            .map(|(_, s)| s.as_str())
            .collect::<Vec<_>>()
            .join("."),
    );
    if segs.len() > target.len() || segs.iter().zip(target).any(|(a, b)| a != b) {
        return;
    }
    let depth = segs.len();
    if best.is_none_or(|(d, _)| depth > d) {
        *best = Some((depth, (lineno + 1, col + 1)));
    }
}

fn join(stack: &[(usize, String)]) -> String {
    stack
        .iter()
        .map(|(_, s)| s.as_str())
        .collect::<Vec<_>>()
        .join("/")
}

/// `a.b[2].c` -> ["a", "b", "[2]", "c"]
fn segments(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            if i > 0 {
                out.push(rest[..i].to_string());
            }
            rest = &rest[i..];
            while let Some(end) = rest.find(']') {
                out.push(rest[..=end].to_string());
                rest = &rest[end + 1..];
            }
        } else {
            out.push(rest.to_string());
        }
    }
    out
}

fn strip_comment(line: &str) -> &str {
    let mut in_single = false;
    let mut in_double = false;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !in_double => in_single = !in_single,
            '"' if !in_single => in_double = !in_double,
            '#' if !in_single && !in_double && prev.is_whitespace() => return &line[..i],
            _ => {}
        }
        prev = c;
    }
    line
}

/// The key of a `key: value` or `key:` line (plain or quoted keys).
fn mapping_key(s: &str) -> Option<String> {
    if s.starts_with(['{', '[']) {
        return None;
    }
    let (key, _) = if let Some(q) = s.strip_prefix('"') {
        let end = q.find('"')?;
        let after = &q[end + 1..];
        after.trim_start().strip_prefix(':')?;
        return Some(q[..end].to_string());
    } else {
        let i = s.find(':')?;
        let after = &s[i + 1..];
        if !(after.is_empty() || after.starts_with(' ')) {
            return None;
        }
        (s[..i].trim_end(), after)
    };
    Some(key.to_string())
}

#[cfg(test)]
mod tests {
    use super::find_key;

    const DOC: &str = "study: co2\nmodel:\n  hidden: [8, 8]\n  dropout: 0.1   # rate\ntrainer:\n  schedule:\n    kind: inv\nvariants:\n  - name: a\n    set:\n      model.dropout: 0.2\n  - name: b\n";

    #[test]
    fn finds_nested_keys_and_sequence_items() {
        assert_eq!(find_key(DOC, "model.dropout"), Some((4, 3)));
        assert_eq!(find_key(DOC, "trainer.schedule.kind"), Some((7, 5)));
        assert_eq!(find_key(DOC, "variants[1].name"), Some((12, 5)));
        assert_eq!(
            find_key(DOC, "variants[0].set.model.dropout"),
            Some((11, 7))
        );
        // Missing leaf: the deepest existing prefix.
        assert_eq!(find_key(DOC, "model.activation"), Some((2, 1)));
        assert_eq!(find_key(DOC, "nothing.here"), None);
    }
}
