//! Credentials shared by identical decisions, and one STS call for a burst of them.
//!
//! [`Coalescer`] is generic: a map from a key (the hash of everything that shapes the
//! credentials) to either a value that is ready or a fetch in flight. The first caller
//! for a key fetches; callers arriving while it runs wait for the same result; callers
//! arriving later take the ready value while `fresh` says it is still good. Only
//! values the caller calls `cacheable` are kept; others are handed to the callers that
//! waited for them and then forgotten.
//!
//! It never holds its lock across an await, and a fetch that is cancelled leaves the
//! slot to the next caller instead of wedging it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

enum Slot<V> {
    Ready(Arc<V>),
    Pending(Arc<OnceCell<Arc<V>>>),
}

/// How a value was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Taken from the cache.
    Hit,
    /// This caller fetched it.
    Fetched,
    /// Another caller's fetch, which this one waited for.
    Joined,
}

pub struct Coalescer<V> {
    slots: Mutex<HashMap<String, Slot<V>>>,
}

impl<V> Default for Coalescer<V> {
    fn default() -> Self {
        Coalescer {
            slots: Mutex::new(HashMap::new()),
        }
    }
}

impl<V: Send + Sync + 'static> Coalescer<V> {
    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot<V>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value for `key`: a fresh cached one, the result of a fetch already in
    /// flight, or the result of `fetch`.
    pub async fn get<F, Fut>(
        &self,
        key: &str,
        fresh: impl Fn(&V) -> bool,
        cacheable: impl Fn(&V) -> bool,
        fetch: F,
    ) -> (Arc<V>, Source)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let cell = {
            let mut slots = self.slots();
            match slots.get(key) {
                Some(Slot::Ready(v)) if fresh(v) => return (Arc::clone(v), Source::Hit),
                Some(Slot::Pending(cell)) => Arc::clone(cell),
                _ => {
                    let cell = Arc::new(OnceCell::new());
                    slots.insert(key.to_string(), Slot::Pending(Arc::clone(&cell)));
                    cell
                }
            }
        };
        let mut ran = false;
        let v = cell
            .get_or_init(|| {
                ran = true;
                async { Arc::new(fetch().await) }
            })
            .await
            .clone();
        if ran {
            let mut slots = self.slots();
            // Only the slot this fetch filled is replaced: a reload may have removed it.
            if let Some(Slot::Pending(c)) = slots.get(key)
                && Arc::ptr_eq(c, &cell)
            {
                if cacheable(&v) {
                    slots.insert(key.to_string(), Slot::Ready(Arc::clone(&v)));
                } else {
                    slots.remove(key);
                }
            }
        }
        (v, if ran { Source::Fetched } else { Source::Joined })
    }

    /// Keeps only the ready entries `keep` says yes to (fetches in flight stay).
    pub fn retain(&self, keep: impl Fn(&str, &V) -> bool) -> usize {
        let mut slots = self.slots();
        let before = slots.len();
        slots.retain(|k, s| match s {
            Slot::Ready(v) => keep(k, v),
            Slot::Pending(_) => true,
        });
        before - slots.len()
    }

    /// Number of ready entries.
    pub fn len(&self) -> usize {
        self.slots()
            .values()
            .filter(|s| matches!(s, Slot::Ready(_)))
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_for_one_key_fetches_once_and_later_calls_hit() {
        let c = Arc::new(Coalescer::<usize>::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let c = Arc::clone(&c);
            let calls = Arc::clone(&calls);
            tasks.push(tokio::spawn(async move {
                c.get(
                    "k",
                    |_| true,
                    |_| true,
                    || async {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        calls.fetch_add(1, Ordering::SeqCst) + 100
                    },
                )
                .await
            }));
        }
        let mut sources = Vec::new();
        for t in tasks {
            let (v, s) = t.await.unwrap();
            assert_eq!(*v, 100);
            sources.push(s);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(sources.iter().filter(|s| **s == Source::Fetched).count(), 1);
        let (v, s) = c.get("k", |_| true, |_| true, || async { 7 }).await;
        assert_eq!((*v, s), (100, Source::Hit));
        // Stale: fetched again.
        let (v, s) = c.get("k", |_| false, |_| true, || async { 8 }).await;
        assert_eq!((*v, s), (8, Source::Fetched));
    }

    #[tokio::test]
    async fn values_that_are_not_cacheable_are_not_kept() {
        let c = Coalescer::<usize>::default();
        let (_, s) = c.get("k", |_| true, |_| false, || async { 1 }).await;
        assert_eq!(s, Source::Fetched);
        assert!(c.is_empty());
        let (v, s) = c.get("k", |_| true, |_| false, || async { 2 }).await;
        assert_eq!((*v, s), (2, Source::Fetched));
    }

    #[tokio::test]
    async fn retain_drops_what_it_is_told_to() {
        let c = Coalescer::<usize>::default();
        c.get("a", |_| true, |_| true, || async { 1 }).await;
        c.get("b", |_| true, |_| true, || async { 2 }).await;
        assert_eq!(c.retain(|k, _| k == "a"), 1);
        assert_eq!(c.len(), 1);
    }

    #[tokio::test]
    async fn a_cancelled_fetch_leaves_the_slot_to_the_next_caller() {
        let c = Arc::new(Coalescer::<usize>::default());
        let c2 = Arc::clone(&c);
        let t = tokio::spawn(async move {
            c2.get(
                "k",
                |_| true,
                |_| true,
                || async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    1
                },
            )
            .await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        t.abort();
        let _ = t.await;
        let (v, s) = c.get("k", |_| true, |_| true, || async { 2 }).await;
        assert_eq!((*v, s), (2, Source::Fetched));
    }
}
