//! The task catalogue in the replicated state: [`Catalog`], the names `DeclareTasks` declares,
//! each with who declared it and the queue each declarer gave. Submits are checked against
//! it at the gRPC edge (`grpc/queue_service.rs`), on the node's own replica; `apply` itself
//! never looks at it for a submit (a submit's apply did not check names before the catalogue,
//! and the apply of an existing command never changes).
//!
//! Rules (deterministic, no time involved):
//! - `DeclareTasks { declarer, tasks }` is all or nothing: it is refused (and changes nothing)
//!   if the declarer's name, a task name or a queue name is empty or too long
//!   ([`MAX_CATALOG_NAME_LEN`]; an empty queue means [`DEFAULT_QUEUE`]), or if it would take
//!   the catalogue past [`MAX_TASK_NAMES`] names.
//! - Otherwise each `(name, queue)` in order: if `declarer` already declared `name` with that
//!   queue, nothing changes (re-declaring is idempotent); else the declaration is recorded
//!   (replacing the declarer's earlier queue) under the next sequence number, and counted in
//!   the answer. A name keeps at most [`MAX_DECLARERS_PER_NAME`] declarers: past it, the one
//!   with the oldest declaration is forgotten.
//! - A name's default queue is the queue of its latest declaration.
//! - Names are never removed: a name accepted once stays accepted, so a submit validated
//!   against an older replica is never made invalid by a later entry.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde::Deserialize;
use serde::Serialize;

use crate::queue::command::CatalogRefusal;
use crate::queue::command::DEFAULT_QUEUE;
use crate::queue::command::MAX_CATALOG_NAME_LEN;
use crate::queue::command::MAX_DECLARERS_PER_NAME;
use crate::queue::command::MAX_TASK_NAMES;
use crate::queue::command::TaskDecl;
use crate::queue::command::name_prefix;

/// One declarer's declaration of a name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Declaration {
    queue: String,
    /// Order of declarations (catalogue-wide, from 0): the latest gives the default queue,
    /// the oldest is forgotten first.
    seq: u64,
}

/// The task catalogue: name → declarer → declaration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    next_seq: u64,
    names: BTreeMap<String, BTreeMap<String, Declaration>>,
}

/// A declared queue as stored: empty means the default queue.
fn stored_queue(queue: &str) -> &str {
    if queue.is_empty() { DEFAULT_QUEUE } else { queue }
}

fn bad_len(s: &str) -> bool {
    s.is_empty() || s.len() > MAX_CATALOG_NAME_LEN
}

impl Catalog {
    /// Nothing was ever declared (the state still fits the snapshot format before it).
    pub fn is_pristine(&self) -> bool {
        self.next_seq == 0 && self.names.is_empty()
    }

    /// Number of names declared.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no name is declared.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Whether `name` is declared.
    pub fn contains(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    /// The queue a submit of `name` goes to when it names none, if `name` is declared.
    pub fn default_queue(&self, name: &str) -> Option<&str> {
        let declarers = self.names.get(name)?;
        declarers.values().max_by_key(|d| d.seq).map(|d| d.queue.as_str())
    }

    /// The declarations of `tasks` that `declarer` has not made (with that queue): what a
    /// `DeclareTasks` of them would change. Empty when it would change nothing.
    pub fn missing(&self, declarer: &str, tasks: &[TaskDecl]) -> Vec<TaskDecl> {
        let mut seen = BTreeSet::new();
        tasks
            .iter()
            .filter(|t| {
                let declared = self
                    .names
                    .get(&t.name)
                    .and_then(|d| d.get(declarer))
                    .is_some_and(|d| d.queue == stored_queue(&t.queue));
                !declared && seen.insert((t.name.as_str(), stored_queue(&t.queue)))
            })
            .cloned()
            .collect()
    }

    /// Why `DeclareTasks { declarer, tasks }` would be refused, if it would.
    pub fn check_declaration(&self, declarer: &str, tasks: &[TaskDecl]) -> Result<(), CatalogRefusal> {
        if bad_len(declarer) {
            return Err(CatalogRefusal::BadDeclarer { len: declarer.len() });
        }
        for t in tasks {
            if bad_len(&t.name) {
                return Err(CatalogRefusal::BadName {
                    name: name_prefix(&t.name).to_string(),
                    len: t.name.len(),
                });
            }
            if t.queue.len() > MAX_CATALOG_NAME_LEN {
                return Err(CatalogRefusal::BadQueue {
                    name: name_prefix(&t.name).to_string(),
                    len: t.queue.len(),
                });
            }
        }
        let new: BTreeSet<&str> = tasks
            .iter()
            .map(|t| t.name.as_str())
            .filter(|n| !self.names.contains_key(*n))
            .collect();
        let room = MAX_TASK_NAMES.saturating_sub(self.names.len());
        if new.len() > room {
            let first = new.iter().nth(room).copied().unwrap_or_default();
            return Err(CatalogRefusal::Full {
                name: name_prefix(first).to_string(),
                more: new.len() - room - 1,
            });
        }
        Ok(())
    }

    /// Apply `DeclareTasks` (see the module docs): how many declarations it recorded.
    pub(super) fn declare(&mut self, declarer: &str, tasks: &[TaskDecl]) -> Result<u32, CatalogRefusal> {
        self.check_declaration(declarer, tasks)?;
        let mut changed = 0u32;
        for t in tasks {
            let queue = stored_queue(&t.queue);
            let declarers = self.names.entry(t.name.clone()).or_default();
            if declarers.get(declarer).is_some_and(|d| d.queue == queue) {
                continue;
            }
            let seq = self.next_seq;
            // Unreachable in practice (2^64 declarations); saturating keeps apply total.
            self.next_seq = self.next_seq.saturating_add(1);
            declarers.insert(
                declarer.to_string(),
                Declaration {
                    queue: queue.to_string(),
                    seq,
                },
            );
            if declarers.len() > MAX_DECLARERS_PER_NAME
                && let Some(oldest) = declarers
                    .iter()
                    .min_by_key(|(_, d)| d.seq)
                    .map(|(who, _)| who.clone())
            {
                declarers.remove(&oldest);
            }
            changed = changed.saturating_add(1);
        }
        Ok(changed)
    }

    /// Every name with its default queue and its declarers (latest first, with their queue).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, Vec<(&str, &str)>)> {
        self.names.iter().map(|(name, declarers)| {
            let mut by_seq: Vec<(&String, &Declaration)> = declarers.iter().collect();
            by_seq.sort_by_key(|(_, d)| std::cmp::Reverse(d.seq));
            let default = by_seq.first().map_or(DEFAULT_QUEUE, |(_, d)| d.queue.as_str());
            let list = by_seq
                .into_iter()
                .map(|(who, d)| (who.as_str(), d.queue.as_str()))
                .collect();
            (name.as_str(), default, list)
        })
    }

    /// What every declaration obeys: limits, at least one declarer per name, sequence numbers
    /// unique and below `next_seq`.
    pub(super) fn check(&self) -> Result<(), String> {
        if self.names.len() > MAX_TASK_NAMES {
            return Err(format!("catalogue holds {} names", self.names.len()));
        }
        let mut seqs = BTreeSet::new();
        for (name, declarers) in &self.names {
            if bad_len(name) {
                return Err(format!("catalogue name of {} bytes", name.len()));
            }
            if declarers.is_empty() || declarers.len() > MAX_DECLARERS_PER_NAME {
                return Err(format!("task '{name}' has {} declarers", declarers.len()));
            }
            for (who, d) in declarers {
                if bad_len(who) || bad_len(&d.queue) {
                    return Err(format!("task '{name}': a declarer or queue of a bad length"));
                }
                if d.seq >= self.next_seq || !seqs.insert(d.seq) {
                    return Err(format!("task '{name}': declaration {} out of order", d.seq));
                }
            }
        }
        Ok(())
    }
}

/// Read back only what [`Catalog::check`] accepts (a snapshot comes from disk or a peer).
pub(super) fn checked(catalog: Catalog) -> Result<Catalog, String> {
    catalog.check().map(|()| catalog)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(name: &str, queue: &str) -> TaskDecl {
        TaskDecl {
            name: name.into(),
            queue: queue.into(),
        }
    }

    #[test]
    fn declares_idempotently_and_the_latest_declaration_gives_the_default_queue() {
        let mut c = Catalog::default();
        assert!(c.is_pristine());
        let node = [decl("noop", ""), decl("echo", "default")];
        assert_eq!(c.missing("node:1", &node), node.to_vec());
        assert_eq!(c.declare("node:1", &node), Ok(2));
        assert!(!c.is_pristine());
        assert_eq!(c.missing("node:1", &node), vec![]);
        // The same again: nothing changes, not even the order of declarations.
        let before = c.clone();
        assert_eq!(c.declare("node:1", &node), Ok(0));
        assert_eq!(c, before);
        assert_eq!(c.default_queue("noop"), Some(DEFAULT_QUEUE));
        // A worker declares noop on its own queue: the latest declaration wins.
        assert_eq!(c.declare("py-1", &[decl("noop", "images")]), Ok(1));
        assert_eq!(c.default_queue("noop"), Some("images"));
        assert_eq!(c.default_queue("echo"), Some(DEFAULT_QUEUE));
        assert_eq!(c.default_queue("nope"), None);
        // Re-declaring by the node (same queue) does not take it back.
        assert_eq!(c.declare("node:1", &node), Ok(0));
        assert_eq!(c.default_queue("noop"), Some("images"));
        let listed: Vec<_> = c.iter().collect();
        assert_eq!(
            listed,
            vec![
                ("echo", "default", vec![("node:1", "default")]),
                ("noop", "images", vec![("py-1", "images"), ("node:1", "default")]),
            ]
        );
        c.check().unwrap();
    }

    #[test]
    fn refuses_bad_names_whole_and_changes_nothing() {
        let mut c = Catalog::default();
        let long = "x".repeat(MAX_CATALOG_NAME_LEN + 1);
        let cases = [
            ("", vec![decl("a", "")]),
            (long.as_str(), vec![decl("a", "")]),
            ("w", vec![decl("a", ""), decl("", "")]),
            ("w", vec![decl("a", ""), decl(&long, "")]),
            ("w", vec![decl("a", ""), decl("b", &long)]),
        ];
        for (declarer, tasks) in cases {
            let err = c.declare(declarer, &tasks).unwrap_err();
            assert!(c.is_pristine(), "{err}");
        }
        let err = c.declare("w", &[decl(&long, "")]).unwrap_err().to_string();
        assert!(err.contains(&"x".repeat(64)) && !err.contains(&long), "{err}");
    }

    #[test]
    fn is_bounded_in_names_and_declarers() {
        let mut c = Catalog::default();
        let names: Vec<TaskDecl> = (0..MAX_TASK_NAMES)
            .map(|i| decl(&format!("t{i:05}"), ""))
            .collect();
        assert_eq!(c.declare("node:1", &names[..10]), Ok(10));
        // One more than fits: refused whole, naming the first name that did not fit.
        let mut over = names.clone();
        over.push(decl("z-last", ""));
        over.push(decl("z-later", ""));
        let err = c.declare("w", &over).unwrap_err();
        assert_eq!(
            err,
            CatalogRefusal::Full {
                name: "z-last".into(),
                more: 1
            }
        );
        assert!(err.to_string().contains("task 'z-last'"), "{err}");
        assert_eq!(c.len(), 10);
        // Exactly full is fine; names already declared take no room.
        assert_eq!(c.declare("w", &names), Ok(MAX_TASK_NAMES as u32));
        assert_eq!(c.len(), MAX_TASK_NAMES);
        assert_eq!(c.declare("w2", &names[..3]), Ok(3));
        assert!(c.declare("w", &[decl("new", "")]).is_err());
        c.check().unwrap();

        // Declarers per name: the oldest declaration is forgotten.
        let mut c = Catalog::default();
        for w in 0..MAX_DECLARERS_PER_NAME + 2 {
            c.declare(&format!("w{w}"), &[decl("t", "")]).unwrap();
        }
        let (_, _, declarers) = c.iter().next().unwrap();
        assert_eq!(declarers.len(), MAX_DECLARERS_PER_NAME);
        assert!(!declarers.iter().any(|(w, _)| *w == "w0" || *w == "w1"));
        assert_eq!(declarers[0].0, format!("w{}", MAX_DECLARERS_PER_NAME + 1));
        c.check().unwrap();
    }

    #[test]
    fn round_trips_and_refuses_a_bad_catalogue() {
        let mut c = Catalog::default();
        c.declare("node:1", &[decl("a", ""), decl("b", "q")]).unwrap();
        let bytes = crate::encoding::encode(&c).unwrap();
        let back: Catalog = crate::encoding::decode(&bytes).unwrap();
        assert_eq!(checked(back).unwrap(), c);
        let mut bad = c.clone();
        bad.next_seq = 1;
        assert!(checked(bad).unwrap_err().contains("out of order"));
        let mut bad = c;
        bad.names.get_mut("a").unwrap().clear();
        assert!(checked(bad).unwrap_err().contains("0 declarers"));
    }
}
