//! [`NodeRuntime`]: openraft's async runtime for Flotilla, tokio with a seedable RNG.
//!
//! openraft draws election timeouts and tick jitter from `AsyncRuntime::thread_rng()`. Tokio's
//! runtime answers with the OS-seeded `rand::rng()`, so a simulated run could never repeat. Here
//! the generator of each thread is seeded from [`set_seed`] when the simulator called it (every
//! simulated node runs on the simulator's one thread, so one sequence serves them all in a
//! deterministic order), and from the OS otherwise. Everything else is tokio's.
//!
//! (openraft's own `DeterministicRng` keeps its seed in a task-local that must be in scope for
//! every spawn and every draw; a call from outside openraft's tasks would panic in production.)

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use openraft::OptionalSend;
use openraft::rt::AsyncRuntime;
use openraft::rt::Select2;
use openraft::rt::Select3;
use openraft::rt::Select4;
use openraft_rt_tokio::TokioRuntime;
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::SmallRng;

/// The simulator's seed, when [`SEEDED`] says there is one; otherwise the OS seeds.
static SEED: AtomicU64 = AtomicU64::new(0);
static SEEDED: AtomicBool = AtomicBool::new(false);

thread_local! {
    static RNG: RefCell<Option<SmallRng>> = const { RefCell::new(None) };
}

/// Seed the generators of threads that have not drawn yet (the simulator calls this before it
/// starts any node; a node never does).
pub fn set_seed(seed: u64) {
    SEED.store(seed, Ordering::SeqCst);
    SEEDED.store(true, Ordering::SeqCst);
    RNG.with(|rng| *rng.borrow_mut() = None);
}

// Unseeded (a real node) draws from an OS-seeded generator on purpose: clippy.toml bans that
// everywhere but here, where a seed is taken whenever one was set (the simulator).
#[allow(clippy::disallowed_methods)]
fn draw() -> u64 {
    RNG.with(|rng| {
        let mut rng = rng.borrow_mut();
        let rng = rng.get_or_insert_with(|| {
            if SEEDED.load(Ordering::SeqCst) {
                SmallRng::seed_from_u64(SEED.load(Ordering::SeqCst))
            } else {
                rand::make_rng()
            }
        });
        rng.next_u64()
    })
}

/// Tokio, with [`AsyncRuntime::thread_rng`] drawn from a seedable per-thread generator.
#[derive(Debug)]
pub struct NodeRuntime {
    inner: TokioRuntime,
}

impl AsyncRuntime for NodeRuntime {
    type JoinError = <TokioRuntime as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <TokioRuntime as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <TokioRuntime as AsyncRuntime>::Sleep;
    type Instant = <TokioRuntime as AsyncRuntime>::Instant;
    type TimeoutError = <TokioRuntime as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = <TokioRuntime as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = SmallRng;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        TokioRuntime::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        TokioRuntime::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        TokioRuntime::sleep_until(deadline)
    }

    fn timeout<R, F>(duration: Duration, future: F) -> Self::Timeout<R, F>
    where
        F: Future<Output = R> + OptionalSend,
    {
        TokioRuntime::timeout(duration, future)
    }

    fn timeout_at<R, F>(deadline: Self::Instant, future: F) -> Self::Timeout<R, F>
    where
        F: Future<Output = R> + OptionalSend,
    {
        TokioRuntime::timeout_at(deadline, future)
    }

    fn select2<A, B>(a: A, b: B) -> impl Future<Output = Select2<A::Output, B::Output>> + OptionalSend
    where
        A: Future + OptionalSend,
        B: Future + OptionalSend,
    {
        TokioRuntime::select2(a, b)
    }

    fn select3<A, B, C>(
        a: A,
        b: B,
        c: C,
    ) -> impl Future<Output = Select3<A::Output, B::Output, C::Output>> + OptionalSend
    where
        A: Future + OptionalSend,
        B: Future + OptionalSend,
        C: Future + OptionalSend,
    {
        TokioRuntime::select3(a, b, c)
    }

    fn select4<A, B, C, D>(
        a: A,
        b: B,
        c: C,
        d: D,
    ) -> impl Future<Output = Select4<A::Output, B::Output, C::Output, D::Output>> + OptionalSend
    where
        A: Future + OptionalSend,
        B: Future + OptionalSend,
        C: Future + OptionalSend,
        D: Future + OptionalSend,
    {
        TokioRuntime::select4(a, b, c, d)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        TokioRuntime::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        SmallRng::seed_from_u64(draw())
    }

    type Mpsc = <TokioRuntime as AsyncRuntime>::Mpsc;
    type Watch = <TokioRuntime as AsyncRuntime>::Watch;
    type Oneshot = <TokioRuntime as AsyncRuntime>::Oneshot;
    type Mutex<T: OptionalSend + 'static> = <TokioRuntime as AsyncRuntime>::Mutex<T>;

    fn new(threads: usize) -> Self {
        Self {
            inner: TokioRuntime::new(threads),
        }
    }

    fn block_on<F, T>(&mut self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        self.inner.block_on(future)
    }

    fn spawn_blocking<F, T>(f: F) -> impl Future<Output = Result<T, io::Error>> + Send
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        TokioRuntime::spawn_blocking(f)
    }
}
