//! What the validation of a write compiles from a schema's text (CEL rules, patterns), kept
//! so that each text is compiled once per thread: compiling again on every write was a third
//! of the test server's CPU in bench runs.

use std::collections::HashMap;
use std::rc::Rc;

/// More texts than any set of CRDs has; past it the memo starts afresh.
const LIMIT: usize = 4096;

/// Compiled forms by their text.
pub(crate) struct Memo<T>(HashMap<String, Rc<T>>);

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Self(HashMap::new())
    }
}

impl<T> Memo<T> {
    /// The compiled form of `text`, compiling it with `compile` the first time.
    pub(crate) fn get(&mut self, text: &str, compile: impl FnOnce(&str) -> T) -> Rc<T> {
        if let Some(compiled) = self.0.get(text) {
            return compiled.clone();
        }
        if self.0.len() >= LIMIT {
            self.0.clear();
        }
        let compiled = Rc::new(compile(text));
        self.0.insert(text.to_owned(), compiled.clone());
        compiled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_each_text_once() {
        let mut memo = Memo::default();
        let mut calls = 0;
        let mut get = |text: &str| {
            *memo.get(text, |t| {
                calls += 1;
                t.len()
            })
        };
        assert_eq!((get("ab"), get("ab"), get("abc")), (2, 2, 3));
        assert_eq!(calls, 2);
    }
}
