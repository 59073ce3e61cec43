//! Sessions (KV states with their token histories), lent one per running
//! request like llama.cpp's slots, behind a bounded wait queue.
//!
//! At most `max_sessions` requests generate at once; up to `max_queue` more
//! wait (first come, first served) for at most `queue_timeout`. Which
//! session a request gets decides how much of its prompt is already in the
//! state: see [`pick`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use candle_coreml_llm::{Llm, Session, StopHandle};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// Sizes of the pool.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Requests generating at once (each with its own session).
    pub max_sessions: usize,
    /// Requests that may wait for a session; more get 429.
    pub max_queue: usize,
    /// Longest wait for a session; then 503.
    pub queue_timeout: Duration,
    /// `Retry-After` seconds of a 429 or 503.
    pub retry_after: u64,
}

/// The pool.
pub struct Pool {
    llm: Arc<Llm>,
    config: PoolConfig,
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    inner: Mutex<Inner>,
    active: Mutex<HashMap<u64, StopHandle>>,
    next_id: AtomicU64,
    closed: AtomicBool,
}

#[derive(Default)]
struct Inner {
    /// Sessions not in use, least recently used first, with the length of
    /// the last prompt each was given.
    idle: Vec<(Session, usize)>,
    /// Sessions made so far (idle and lent).
    created: usize,
}

/// Gauges of the pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// `max_sessions`.
    pub max_sessions: usize,
    /// Sessions made so far.
    pub created: usize,
    /// Sessions generating now.
    pub busy: usize,
    /// Requests waiting for a session.
    pub waiting: usize,
}

/// The right to generate, held from admission to the end of generation.
pub struct Admission {
    // Frees the place when dropped.
    _permit: OwnedSemaphorePermit,
}

/// What to do for a new prompt, given the idle sessions' cached tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Take idle session `i`.
    Reuse(usize),
    /// Make a new session.
    Create,
}

/// An idle session as [`pick`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct Cached<'a> {
    /// The tokens its state holds.
    pub tokens: &'a [u32],
    /// The length of the last prompt it was given (its answer followed).
    pub prompt_len: usize,
}

/// Chooses a session for `prompt` among the idle ones (least recently used
/// first).
///
/// A session whose common prefix with the prompt covers at least half of
/// the last prompt it was given is this prompt's conversation (llama.cpp's
/// slot similarity, measured against the prompt rather than prompt and
/// answer, since a chat template may render an earlier answer differently
/// when it comes back as history): the longest such prefix wins. Otherwise
/// an empty session, or a new one while there is room, keeping the others'
/// conversations; with no room, the longest common prefix wins, the least
/// recently used on ties.
pub fn pick(cached: &[Cached], prompt: &[u32], can_create: bool) -> Pick {
    let prefix: Vec<usize> = cached
        .iter()
        .map(|c| {
            c.tokens
                .iter()
                .zip(prompt)
                .take_while(|(a, b)| a == b)
                .count()
        })
        .collect();
    // The longest prefix among the sessions `ok` accepts, the least
    // recently used on ties.
    let longest = |ok: &dyn Fn(usize) -> bool| {
        (0..cached.len())
            .filter(|&i| ok(i))
            .max_by_key(|&i| (prefix[i], std::cmp::Reverse(i)))
    };
    let own = |i: usize| cached[i].prompt_len.min(cached[i].tokens.len());
    if let Some(i) = longest(&|i| prefix[i] > 0 && 2 * prefix[i] >= own(i)) {
        return Pick::Reuse(i);
    }
    if let Some(i) = cached.iter().position(|c| c.tokens.is_empty()) {
        return Pick::Reuse(i);
    }
    match longest(&|_| true) {
        Some(i) if !can_create => Pick::Reuse(i),
        _ => Pick::Create,
    }
}

impl Pool {
    /// A pool over `llm`; sessions are made when first needed.
    pub fn new(llm: Arc<Llm>, config: PoolConfig) -> Arc<Pool> {
        Arc::new(Pool {
            permits: Arc::new(Semaphore::new(config.max_sessions.max(1))),
            llm,
            config,
            waiting: AtomicUsize::new(0),
            inner: Mutex::new(Inner::default()),
            active: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        })
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the list itself consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn active(&self) -> MutexGuard<'_, HashMap<u64, StopHandle>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a free session: 429 when the queue is full, 503 after the
    /// queue timeout or once the server is shutting down.
    pub async fn admit(&self) -> Result<Admission, ApiError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(ApiError::shutting_down());
        }
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(Admission { _permit: permit });
        }
        let queued = self.waiting.fetch_add(1, Ordering::SeqCst);
        // Leaves the queue however the wait ends (the future may be dropped).
        struct Leave<'a>(&'a AtomicUsize);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _leave = Leave(&self.waiting);
        if queued >= self.config.max_queue {
            return Err(ApiError::queue_full(self.config.retry_after));
        }
        let wait = self.permits.clone().acquire_owned();
        match tokio::time::timeout(self.config.queue_timeout, wait).await {
            Ok(Ok(permit)) => Ok(Admission { _permit: permit }),
            Ok(Err(_closed)) => Err(ApiError::shutting_down()),
            Err(_elapsed) => Err(ApiError::queue_timeout(self.config.retry_after)),
        }
    }

    /// Lends the session that suits `prompt` best (see [`pick`]); may make
    /// one (blocking: call from a blocking thread). `stop` is registered so
    /// that shutdown can cancel the generation.
    pub fn checkout(
        self: &Arc<Self>,
        admission: Admission,
        prompt: &[u32],
        stop: StopHandle,
    ) -> Result<Lease, ApiError> {
        let picked = {
            let mut inner = self.inner();
            let cached: Vec<Cached> = inner
                .idle
                .iter()
                .map(|(s, prompt_len)| Cached {
                    tokens: &s.tokens()[..s.fed()],
                    prompt_len: *prompt_len,
                })
                .collect();
            let can_create = inner.created < self.config.max_sessions;
            match pick(&cached, prompt, can_create) {
                Pick::Reuse(i) => Some(inner.idle.remove(i).0),
                Pick::Create => {
                    inner.created += 1;
                    None
                }
            }
        };
        let session = match picked {
            Some(s) => s,
            None => self.llm.session().map_err(|e| {
                self.inner().created -= 1;
                ApiError::internal(format!("making a session: {e}"))
            })?,
        };
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        self.active().insert(id, stop);
        Ok(Lease {
            pool: self.clone(),
            session: Some(session),
            prompt_len: prompt.len(),
            id,
            failed: false,
            _admission: admission,
        })
    }

    /// Refuses new and queued requests (503) from now on.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.permits.close();
    }

    /// True once [`Pool::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Stops every running generation; returns how many there were.
    pub fn cancel_all(&self) -> usize {
        let active = self.active();
        active.values().for_each(StopHandle::stop);
        active.len()
    }

    /// Gauges.
    pub fn status(&self) -> PoolStatus {
        let max = self.config.max_sessions;
        PoolStatus {
            max_sessions: max,
            created: self.inner().created,
            busy: self.active().len(),
            waiting: self.waiting.load(Ordering::SeqCst),
        }
    }
}

/// A lent session; dropping it gives the session back (reset when its
/// generation failed) and frees its place for the next request.
pub struct Lease {
    pool: Arc<Pool>,
    session: Option<Session>,
    prompt_len: usize,
    id: u64,
    failed: bool,
    // Dropped after `drop` has given the session back.
    _admission: Admission,
}

impl Lease {
    /// The session.
    pub fn session(&mut self) -> &mut Session {
        self.session
            .as_mut()
            .expect("a lease holds its session until dropped")
    }

    /// Marks the generation as failed: the session's state is not trusted again.
    pub fn fail(&mut self) {
        self.failed = true;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool.active().remove(&self.id);
        if let Some(mut s) = self.session.take() {
            if self.failed {
                s.reset();
            }
            self.pool.inner().idle.push((s, self.prompt_len));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(tokens: &[u32], prompt_len: usize) -> Cached<'_> {
        Cached { tokens, prompt_len }
    }

    #[test]
    fn pick_prefers_the_conversation_then_room_then_longest_prefix() {
        let a = c(&[1, 2, 3, 4], 4);
        let b = c(&[1, 2, 9, 9, 9, 9], 6);
        let d = c(&[7, 7], 2);
        // extends a: a
        assert_eq!(pick(&[b, a, d], &[1, 2, 3, 4, 5], true), Pick::Reuse(1));
        // shares 2 of b's 6 (under half) and 2 of a's 4 (half): a
        assert_eq!(pick(&[b, a, d], &[1, 2, 8], true), Pick::Reuse(1));
        // shares 2 of b's 6 only: a new session while there is room
        assert_eq!(pick(&[b, d], &[1, 2, 8], true), Pick::Create);
        // ... but 2 of a 3-token prompt whose answer was [9, 9, 9]: b
        let b3 = c(&[1, 2, 9, 9, 9, 9], 3);
        assert_eq!(pick(&[b3, d], &[1, 2, 8], true), Pick::Reuse(0));
        // no room: the longest prefix anyway
        assert_eq!(pick(&[d, b], &[1, 2, 8], false), Pick::Reuse(1));
        // nothing shared, no room: the least recently used
        assert_eq!(pick(&[d, b], &[5], false), Pick::Reuse(0));
        // an empty (reset) session before a new one
        assert_eq!(pick(&[d, c(&[], 0)], &[5], true), Pick::Reuse(1));
        assert_eq!(pick(&[b, c(&[], 0)], &[1, 2, 3, 4], true), Pick::Reuse(1));
        assert_eq!(pick(&[], &[5], false), Pick::Create);
    }
}
