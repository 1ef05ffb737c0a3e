//! Class names from an ONNX file's own metadata: Ultralytics exports write
//! `names` into the model's metadata props as a Python dict literal,
//! `{0: 'person', 1: 'bicycle', ...}` (`str(dict)`), which is not JSON.

/// The names in class order, or why the text is not such a dict. The keys
/// must be 0..n, each once, in any order; values are Python string literals
/// (single or double quotes, backslash escapes).
pub fn parse_python_names(text: &str) -> Result<Vec<String>, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    p.expect(b'{')?;
    let mut entries: Vec<(usize, String)> = Vec::new();
    loop {
        p.skip_ws();
        if p.peek() == Some(b'}') {
            p.i += 1;
            break;
        }
        let key = p.int()?;
        p.expect(b':')?;
        let value = p.string()?;
        entries.push((key, value));
        p.skip_ws();
        match p.next() {
            Some(b',') => {}
            Some(b'}') => break,
            _ => return Err(p.fail("',' or '}'")),
        }
    }
    p.skip_ws();
    if p.i != p.s.len() {
        return Err(p.fail("the end after '}'"));
    }
    let mut names = vec![None; entries.len()];
    for (key, value) in entries {
        match names.get_mut(key) {
            Some(slot @ None) => *slot = Some(value),
            Some(Some(_)) => return Err(format!("class {key} is named twice")),
            None => {
                return Err(format!(
                    "class {key} is out of 0..{}: keys must be 0..n",
                    names.len()
                ));
            }
        }
    }
    Ok(names
        .into_iter()
        .map(|n| n.expect("keys 0..n, each once"))
        .collect())
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek();
        self.i += usize::from(c.is_some());
        c
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn fail(&self, want: &str) -> String {
        format!(
            "not a Python dict of names: expected {want} at byte {}",
            self.i
        )
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        self.skip_ws();
        if self.next() == Some(c) {
            Ok(())
        } else {
            Err(self.fail(&format!("'{}'", c as char)))
        }
    }

    fn int(&mut self) -> Result<usize, String> {
        self.skip_ws();
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| self.fail("a class number"))
    }

    fn string(&mut self) -> Result<String, String> {
        self.skip_ws();
        let quote = match self.next() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => return Err(self.fail("a quoted name")),
        };
        let mut out = Vec::new();
        loop {
            match self.next() {
                None => return Err(self.fail("a closing quote")),
                Some(c) if c == quote => break,
                Some(b'\\') => match self.next() {
                    Some(b'n') => out.push(b'\n'),
                    Some(b't') => out.push(b'\t'),
                    Some(c @ (b'\\' | b'\'' | b'"')) => out.push(c),
                    _ => return Err(self.fail("a known escape (\\\\, \\', \\\", \\n, \\t)")),
                },
                Some(c) => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| self.fail("UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_ultralytics_writes() {
        let names = parse_python_names("{0: 'person', 1: 'bicycle', 2: \"it's\", 3: 'a\\'b'}");
        assert_eq!(names.unwrap(), ["person", "bicycle", "it's", "a'b"]);
        assert_eq!(parse_python_names("{1: 'b', 0: 'a',}").unwrap(), ["a", "b"]);
        assert_eq!(parse_python_names(" {} ").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn refuses_what_is_not_a_dense_dict() {
        for bad in [
            "[0, 1]",
            "{0: 'a', 2: 'b'}",
            "{0: 'a', 0: 'b'}",
            "{0: a}",
            "{0: 'a'",
        ] {
            assert!(parse_python_names(bad).is_err(), "{bad}");
        }
    }
}
