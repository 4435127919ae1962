//! Connections to PostgreSQL, each owned by a thread of its own.
//!
//! Most store calls are synchronous and made from tokio worker threads. The blocking
//! `postgres` client drives its connection on a runtime of its own and panics when used
//! inside another runtime, so no client ever runs on a caller's thread: each lives on a
//! dedicated thread that takes jobs (closures over the client) from a channel, and the
//! caller blocks on the reply, as it blocked on sled. A lease holds one connection for a
//! whole transaction; single statements lease one for the statement only.

use super::super::StoreError;
use postgres::types::ToSql;
use postgres::{Client, Row, Statement};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How long a caller waits for a free connection before the store call fails.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(30);

/// A database error as the store sees it: retryable (serialization failure, deadlock) or
/// not, with a message fit for logs (no connection parameters, so no password).
#[derive(Debug, Clone)]
pub(in crate::store) struct PgError {
    pub(in crate::store) retry: bool,
    pub(in crate::store) msg: String,
}

impl PgError {
    pub(super) fn new(msg: impl Into<String>) -> PgError {
        PgError {
            retry: false,
            msg: msg.into(),
        }
    }
}

impl From<postgres::Error> for PgError {
    fn from(e: postgres::Error) -> Self {
        use postgres::error::SqlState;
        let retry = matches!(
            e.code(),
            Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED
        );
        let msg = match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        };
        PgError { retry, msg }
    }
}

impl From<PgError> for StoreError {
    fn from(e: PgError) -> Self {
        StoreError::Io(format!("database: {}", e.msg))
    }
}

/// What this node asked of the database, counted on the client: a round trip is one
/// request and its answer (a prepared statement, a batch of simple statements, a prepare).
/// The cost model in docs/scaling.md and `bench/` read it from the debug log
/// (`legate::store::pg`).
#[derive(Default)]
pub(in crate::store) struct Counters {
    pub(in crate::store) round_trips: AtomicU64,
    /// Store transactions committed.
    pub(in crate::store) transactions: AtomicU64,
    /// Transaction attempts run again after a serialization failure or deadlock.
    pub(in crate::store) retries: AtomicU64,
}

impl Counters {
    fn trip(&self) {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
    }

    /// (round trips, transactions, retries).
    pub(in crate::store) fn read(&self) -> (u64, u64, u64) {
        (
            self.round_trips.load(Ordering::Relaxed),
            self.transactions.load(Ordering::Relaxed),
            self.retries.load(Ordering::Relaxed),
        )
    }
}

/// Opens a client; shared by every connection thread.
pub(super) type Connector = Arc<dyn Fn() -> Result<Client, PgError> + Send + Sync>;

/// A connected client with its prepared statements (prepared once per connection: a
/// statement by text costs a round trip to parse it each time).
pub(in crate::store) struct Conn {
    client: Client,
    stmts: HashMap<String, Statement>,
    /// Which connection of its thread this is: a transaction checks it on every statement,
    /// so a connection that broke and was replaced mid-transaction can never run the rest of
    /// that transaction's statements outside it.
    pub(in crate::store) generation: u64,
    counters: Arc<Counters>,
}

impl Conn {
    fn stmt(&mut self, sql: &str) -> Result<Statement, PgError> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(s.clone());
        }
        self.counters.trip();
        let s = self.client.prepare(sql)?;
        self.stmts.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    pub(in crate::store) fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, PgError> {
        let s = self.stmt(sql)?;
        self.counters.trip();
        Ok(self.client.query(&s, params)?)
    }

    pub(in crate::store) fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, PgError> {
        let s = self.stmt(sql)?;
        self.counters.trip();
        Ok(self.client.execute(&s, params)?)
    }

    /// Statements without parameters (BEGIN, COMMIT, DDL).
    pub(in crate::store) fn batch(&mut self, sql: &str) -> Result<(), PgError> {
        self.counters.trip();
        Ok(self.client.batch_execute(sql)?)
    }
}

type Job = Box<dyn FnOnce(Result<&mut Conn, PgError>) + Send>;

/// The handle of one connection thread.
struct Worker {
    jobs: mpsc::Sender<Job>,
}

/// Connection threads, each leased to one caller at a time.
pub(in crate::store) struct Pool {
    idle: Mutex<Vec<Worker>>,
    freed: Condvar,
}

impl Pool {
    /// Starts `n` connection threads; each connects on its first job (and again after its
    /// connection broke), then runs `init` (session settings) once.
    pub(super) fn new(
        n: usize,
        name: &str,
        connect: &Connector,
        init: &'static str,
        counters: &Arc<Counters>,
    ) -> Result<Pool, StoreError> {
        let mut idle = Vec::with_capacity(n);
        for i in 0..n.max(1) {
            let (tx, rx) = mpsc::channel::<Job>();
            let connect = connect.clone();
            let counters = counters.clone();
            std::thread::Builder::new()
                .name(format!("legate-pg-{name}-{i}"))
                .spawn(move || serve(rx, connect, init, counters))
                .map_err(|e| StoreError::Io(format!("cannot start a database thread: {e}")))?;
            idle.push(Worker { jobs: tx });
        }
        Ok(Pool {
            idle: Mutex::new(idle),
            freed: Condvar::new(),
        })
    }

    /// A connection for this caller alone until the lease is dropped.
    pub(in crate::store) fn lease(&self) -> Result<Lease<'_>, StoreError> {
        let deadline = std::time::Instant::now() + CHECKOUT_TIMEOUT;
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(w) = idle.pop() {
                return Ok(Lease {
                    pool: self,
                    worker: Some(w),
                    in_tx: std::cell::Cell::new(false),
                });
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(StoreError::Io(
                    "database: no connection became free (storage.pool_size)".into(),
                ));
            }
            idle = self
                .freed
                .wait_timeout(idle, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Runs `f` on any free connection.
    pub(super) fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<R, PgError> + Send + 'static,
    ) -> Result<R, PgError> {
        self.lease()
            .map_err(|e| PgError::new(e.to_string()))?
            .run(f)
    }
}

/// One connection, leased.
pub(in crate::store) struct Lease<'a> {
    pool: &'a Pool,
    worker: Option<Worker>,
    /// A transaction is open on it (rolled back if the lease is dropped so).
    pub(super) in_tx: std::cell::Cell<bool>,
}

impl Lease<'_> {
    pub(in crate::store) fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<R, PgError> + Send + 'static,
    ) -> Result<R, PgError> {
        let Some(w) = &self.worker else {
            return Err(PgError::new("connection lease already returned"));
        };
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |conn| {
            let _ = tx.send(conn.and_then(f));
        });
        w.jobs
            .send(job)
            .map_err(|_| PgError::new("the database connection thread has stopped"))?;
        rx.recv()
            .map_err(|_| PgError::new("the database connection thread has stopped"))?
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if self.in_tx.get() {
            // A transaction body that panicked: end its transaction before reuse.
            let _ = self.run(|c| c.batch("ROLLBACK"));
        }
        if let Some(w) = self.worker.take() {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(w);
            self.pool.freed.notify_one();
        }
    }
}

/// A connection thread: connects when needed, runs jobs in order, ends with its pool.
fn serve(rx: mpsc::Receiver<Job>, connect: Connector, init: &str, counters: Arc<Counters>) {
    let mut conn: Option<Conn> = None;
    let mut generation = 0u64;
    while let Ok(job) = rx.recv() {
        if conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            conn = None;
        }
        if conn.is_none() {
            match connect().and_then(|mut client| {
                if !init.is_empty() {
                    client.batch_execute(init)?;
                }
                Ok(client)
            }) {
                Ok(client) => {
                    generation += 1;
                    conn = Some(Conn {
                        client,
                        stmts: HashMap::new(),
                        generation,
                        counters: counters.clone(),
                    })
                }
                Err(e) => {
                    job(Err(e));
                    continue;
                }
            }
        }
        match conn.as_mut() {
            Some(c) => job(Ok(c)),
            None => job(Err(PgError::new("not connected"))),
        }
    }
}
