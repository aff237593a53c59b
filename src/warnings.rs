//! Warnings the library hands up instead of printing: a damaged index set
//! aside, objects found or lost by recovery. The library never writes to
//! stderr; the command line takes them (`take`) and prints each as
//! `warning: ...`.

use std::sync::{Arc, Mutex};

/// A shared list of warnings: clones push to and take from the same list,
/// from any thread.
#[derive(Clone, Debug, Default)]
pub struct Warnings(Arc<Mutex<Vec<String>>>);

impl Warnings {
    pub fn push(&self, message: String) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(message);
    }

    /// The warnings pushed so far, oldest first; the list is left empty.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_list_and_take_empties_it() {
        let w = Warnings::default();
        w.clone().push("a".into());
        w.push("b".into());
        assert_eq!(w.take(), ["a", "b"]);
        assert!(w.take().is_empty());
    }
}
