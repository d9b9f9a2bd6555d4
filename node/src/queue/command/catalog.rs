//! The data of the task catalogue as the log carries it: a declared name with its default
//! queue ([`TaskDecl`]), why a declaration is refused ([`CatalogRefusal`]), the limits that
//! refuse it, and the view `flotilla tasks` shows ([`TaskNameInfo`]).
//!
//! The rules live in `state/catalog.rs`; these types are here because `DeclareTasks` and its
//! response are stored in the log and sent between nodes (append-only variants).

use serde::Deserialize;
use serde::Serialize;

/// Longest task name, queue name or declarer name a declaration may hold (the API's limit of
/// a submitted task's name and queue).
pub const MAX_CATALOG_NAME_LEN: usize = 256;

/// Most task names the catalogue holds. A declaration that would add more is refused whole.
pub const MAX_TASK_NAMES: usize = 10_000;

/// Most declarers remembered per task name: beyond it the oldest declaration is forgotten (a
/// fleet of workers with fresh names on every start must not grow the catalogue without end).
pub const MAX_DECLARERS_PER_NAME: usize = 16;

/// Prefix of a node's declarer name: its built-in registry is declared as `node:<id>`.
pub const NODE_DECLARER_PREFIX: &str = "node:";

/// The declarer name of node `id`'s built-in registry.
pub fn node_declarer(id: u64) -> String {
    format!("{NODE_DECLARER_PREFIX}{id}")
}

/// One declared task name and the queue a submit of it goes to when it names none.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskDecl {
    pub name: String,
    /// Empty means [`super::DEFAULT_QUEUE`].
    pub queue: String,
}

/// Why a `DeclareTasks` changed nothing. Stored in responses (append variants at the end).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CatalogRefusal {
    /// The declarer's name is empty or longer than [`MAX_CATALOG_NAME_LEN`].
    #[error("a declarer name must be 1 to {MAX_CATALOG_NAME_LEN} bytes (got {len})")]
    BadDeclarer { len: usize },
    /// A task name is empty or longer than [`MAX_CATALOG_NAME_LEN`] (`name`: its first 64 bytes).
    #[error("task name '{name}' must be 1 to {MAX_CATALOG_NAME_LEN} bytes (got {len})")]
    BadName { name: String, len: usize },
    /// A queue name is longer than [`MAX_CATALOG_NAME_LEN`].
    #[error("the queue of task '{name}' is over {MAX_CATALOG_NAME_LEN} bytes (got {len})")]
    BadQueue { name: String, len: usize },
    /// The catalogue would hold more than [`MAX_TASK_NAMES`] names (`name`: the first new one).
    #[error(
        "the task catalogue is full ({MAX_TASK_NAMES} names): task '{name}' and {more} more new \
         names were not declared"
    )]
    Full { name: String, more: usize },
}

/// One name of the catalogue as `ListTaskNames` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskNameInfo {
    pub name: String,
    /// Where a submit of the name goes when it names no queue: the queue of its latest
    /// declaration.
    pub default_queue: String,
    /// Who declared it (latest first), each with the queue it declared.
    pub declarers: Vec<(String, String)>,
    /// Tasks of this name the queue holds, in any state (final ones until their result
    /// expires).
    pub held: u64,
}

/// The first 64 bytes of `s` (at a char boundary), for messages about a name.
pub fn name_prefix(s: &str) -> &str {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
