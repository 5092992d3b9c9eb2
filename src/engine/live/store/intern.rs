//! One shared copy of each distinct value the samples in the window hold: answers (what came
//! back, without its timing), page sketches, connection traits and errors. A sample keeps a
//! reference to the shared copy and its own timing, so that a target answering the same page
//! to every probe costs one copy of its strings, not one per sample.
//!
//! Bounded: at most `cap` values are shared; beyond, a new value is kept by its sample alone
//! (still correct, just not shared). Values no sample refers to any more are dropped by
//! `sweep`, which the store calls when samples leave the window. A reference stays valid
//! for as long as a sample holds it, swept or not (it is an `Arc`).

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Distinct values shared at most, per interner.
pub(super) const MAX_INTERNED: usize = 1 << 16;

/// An `Arc` hashed and compared by its value (so that a set of them can be searched by value).
#[derive(Debug)]
struct ByValue<T>(Arc<T>);

impl<T: Hash> Hash for ByValue<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (*self.0).hash(state);
    }
}

impl<T: PartialEq> PartialEq for ByValue<T> {
    fn eq(&self, other: &Self) -> bool {
        *self.0 == *other.0
    }
}

impl<T: Eq> Eq for ByValue<T> {}

impl<T> Borrow<T> for ByValue<T> {
    fn borrow(&self) -> &T {
        &self.0
    }
}

#[derive(Debug)]
pub(super) struct Interner<T> {
    set: HashSet<ByValue<T>>,
    cap: usize,
}

impl<T: Hash + Eq> Interner<T> {
    pub(super) fn new(cap: usize) -> Interner<T> {
        Interner {
            set: HashSet::new(),
            cap,
        }
    }

    /// The shared copy of `value` (made the shared copy when there is none and room for it).
    pub(super) fn intern(&mut self, value: T) -> Arc<T> {
        if let Some(shared) = self.set.get(&value) {
            return shared.0.clone();
        }
        self.share(Arc::new(value))
    }

    /// `intern` for a value already behind an `Arc`: the shared copy when there is one,
    /// else `value` itself (made the shared copy when there is room).
    pub(super) fn intern_arc(&mut self, value: Arc<T>) -> Arc<T> {
        if let Some(shared) = self.set.get(&*value) {
            return shared.0.clone();
        }
        self.share(value)
    }

    fn share(&mut self, value: Arc<T>) -> Arc<T> {
        if self.set.len() < self.cap {
            self.set.insert(ByValue(value.clone()));
        }
        value
    }

    /// Drop the shared copies nothing else refers to.
    pub(super) fn sweep(&mut self) {
        self.set.retain(|v| Arc::strong_count(&v.0) > 1);
    }

    /// Values shared now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.set.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_share_one_copy_and_unused_ones_are_swept() {
        let mut i: Interner<String> = Interner::new(8);
        let a = i.intern("a".to_string());
        let a2 = i.intern("a".to_string());
        let b = i.intern_arc(Arc::new("b".to_string()));
        assert!(Arc::ptr_eq(&a, &a2));
        assert!(Arc::ptr_eq(&b, &i.intern("b".to_string())));
        assert_eq!(i.len(), 2);
        drop(b);
        i.sweep();
        // "a" is still held by the samples: shared and valid; "b" is gone.
        assert_eq!(i.len(), 1);
        assert!(Arc::ptr_eq(&a, &i.intern("a".to_string())));
        assert_eq!(*a2, "a");
    }

    #[test]
    fn the_interner_is_bounded_and_values_beyond_stay_valid() {
        let mut i: Interner<u32> = Interner::new(4);
        let held: Vec<Arc<u32>> = (0..10).map(|n| i.intern(n)).collect();
        assert_eq!(i.len(), 4);
        // Beyond the bound a value is its sample's own, with the right value.
        assert_eq!(
            held.iter().map(|a| **a).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        assert!(!Arc::ptr_eq(&held[9], &i.intern(9)));
        assert!(Arc::ptr_eq(&held[3], &i.intern(3)));
        // Room made by the samples that left: new values are shared again.
        drop(held);
        i.sweep();
        assert_eq!(i.len(), 0);
        let x = i.intern(42);
        assert!(Arc::ptr_eq(&x, &i.intern(42)));
    }
}
