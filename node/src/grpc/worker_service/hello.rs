//! A worker's first message: what makes a Hello acceptable (worker.proto, "Errors").

use flotilla_proto::v1 as pb;
use tonic::Code;

use crate::queue::DEFAULT_QUEUE;
use crate::queue::LeaseRef;
use crate::queue::name::check_queue_name;
use crate::worker::Prefetch;
use crate::worker::remote::Hello;
use crate::worker::remote::PROTOCOL_VERSION;

/// Longest worker or task name.
const MAX_NAME_LEN: usize = 256;
/// Most tasks one worker holds at once.
pub const MAX_CONCURRENCY: u32 = 10_000;
/// Most task names one worker declares.
const MAX_TASKS: usize = 10_000;

/// Why a Hello is refused: the status code and the message (sent as a `WorkerError` too).
pub type Refusal = (Code, String);

/// The Hello, validated, and the task names it declares.
pub fn validate(hello: pb::Hello) -> Result<(Hello, Vec<pb::TaskDecl>), Refusal> {
    let bad = |why: String| Err((Code::InvalidArgument, why));
    if hello.protocol_version > PROTOCOL_VERSION {
        return Err((
            Code::FailedPrecondition,
            format!(
                "protocol version {} is newer than this node's ({PROTOCOL_VERSION})",
                hello.protocol_version
            ),
        ));
    }
    if let Err(why) = check_name("worker name", &hello.name) {
        return bad(why);
    }
    if is_node_pool_name(&hello.name) {
        return bad(format!(
            "worker name '{}' is reserved for the nodes' own pools",
            hello.name
        ));
    }
    for q in &hello.queues {
        if let Err(e) = check_queue_name(q) {
            return bad(e.to_string());
        }
    }
    let resume_only = hello.concurrency == 0 && !hello.resume.is_empty();
    if hello.concurrency == 0 && !resume_only {
        return bad("concurrency must be at least 1 (0 only with leases to resume)".into());
    }
    if hello.concurrency > MAX_CONCURRENCY {
        return bad(format!(
            "concurrency {} is over the limit of {MAX_CONCURRENCY}",
            hello.concurrency
        ));
    }
    if hello.prefetch.is_some_and(|n| n > MAX_CONCURRENCY) {
        return bad(format!("prefetch is over the limit of {MAX_CONCURRENCY}"));
    }
    if hello.queue_ahead > MAX_CONCURRENCY {
        return bad(format!("queue_ahead is over the limit of {MAX_CONCURRENCY}"));
    }
    if hello.tasks.is_empty() && !resume_only {
        return bad("the Hello declares no task".into());
    }
    if hello.tasks.len() > MAX_TASKS {
        return bad(format!("more than {MAX_TASKS} tasks declared"));
    }
    for t in &hello.tasks {
        if let Err(why) = check_name("task name", &t.name) {
            return bad(why);
        }
        // An empty queue is the default one.
        if let Err(e) = Some(&t.queue)
            .filter(|q| !q.is_empty())
            .map_or(Ok(()), |q| check_queue_name(q))
        {
            return bad(format!("task '{}': {e}", cut(&t.name)));
        }
    }
    let queues = if hello.queues.is_empty() {
        vec![DEFAULT_QUEUE.to_string()]
    } else {
        hello.queues
    };
    let resume = hello
        .resume
        .iter()
        .map(|l| LeaseRef {
            task: l.task_id,
            attempt: l.attempt,
        })
        .collect();
    let validated = Hello {
        name: hello.name,
        queues,
        concurrency: hello.concurrency,
        resume,
        prefetch: hello.prefetch.map(Prefetch::Fixed),
        queue_ahead: hello.queue_ahead,
    };
    Ok((validated, hello.tasks))
}

/// A worker or task name: 1-256 bytes, no control characters.
fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("the {what} is empty"));
    }
    if name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(format!(
            "{what} '{}' is not 1-{MAX_NAME_LEN} bytes without control characters",
            cut(name)
        ));
    }
    Ok(())
}

/// `node-<id>`: the name of a node's own pool (`leader::pool_name`).
fn is_node_pool_name(name: &str) -> bool {
    name.strip_prefix("node-")
        .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

fn cut(s: &str) -> String {
    s.chars().take(64).filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> pb::Hello {
        pb::Hello {
            name: "host-1@billing".into(),
            queues: vec![],
            tasks: vec![pb::TaskDecl {
                name: "tasks.add".into(),
                queue: String::new(),
            }],
            concurrency: 4,
            resume: vec![],
            protocol_version: 1,
            agent: "test".into(),
            prefetch: None,
            queue_ahead: 0,
        }
    }

    fn refused(h: pb::Hello) -> String {
        let (code, why) = validate(h).unwrap_err();
        assert_eq!(code, Code::InvalidArgument, "{why}");
        why
    }

    #[test]
    fn a_good_hello_takes_the_default_queue() {
        let (h, tasks) = validate(hello()).unwrap();
        assert_eq!(h.queues, vec!["default".to_string()]);
        assert_eq!(
            (h.name.as_str(), h.concurrency, tasks.len()),
            ("host-1@billing", 4, 1)
        );
    }

    #[test]
    fn bad_hellos_say_why() {
        assert!(
            refused(pb::Hello {
                name: String::new(),
                ..hello()
            })
            .contains("worker name is empty")
        );
        assert!(
            refused(pb::Hello {
                name: "node-3".into(),
                ..hello()
            })
            .contains("reserved")
        );
        assert!(
            validate(pb::Hello {
                name: "node-x".into(),
                ..hello()
            })
            .is_ok()
        );
        let queues = vec!["ok".into(), "not ok".into()];
        assert!(refused(pb::Hello { queues, ..hello() }).contains("'not ok' is not a queue name"));
        assert!(
            refused(pb::Hello {
                tasks: vec![],
                ..hello()
            })
            .contains("declares no task")
        );
        assert!(
            refused(pb::Hello {
                concurrency: 0,
                ..hello()
            })
            .contains("at least 1")
        );
        assert!(
            refused(pb::Hello {
                concurrency: MAX_CONCURRENCY + 1,
                ..hello()
            })
            .contains("over the limit")
        );
        assert!(
            refused(pb::Hello {
                prefetch: Some(MAX_CONCURRENCY + 1),
                ..hello()
            })
            .contains("prefetch is over the limit")
        );
        let (code, _) = validate(pb::Hello {
            protocol_version: 2,
            ..hello()
        })
        .unwrap_err();
        assert_eq!(code, Code::FailedPrecondition);
    }

    #[test]
    fn a_resume_only_session_needs_no_concurrency_nor_tasks() {
        let resume = vec![pb::LeaseId {
            task_id: 7,
            attempt: 2,
        }];
        let (h, _) = validate(pb::Hello {
            concurrency: 0,
            tasks: vec![],
            resume,
            ..hello()
        })
        .unwrap();
        assert_eq!(h.resume, vec![LeaseRef { task: 7, attempt: 2 }]);
    }

    #[test]
    fn a_prefetch_is_the_workers_or_else_the_nodes() {
        let (h, _) = validate(hello()).unwrap();
        assert_eq!(h.prefetch, None);
        let (h, _) = validate(pb::Hello {
            prefetch: Some(0),
            ..hello()
        })
        .unwrap();
        assert_eq!(h.prefetch, Some(Prefetch::Fixed(0)));
    }

    #[test]
    fn a_worker_may_say_it_queues_within_the_limit() {
        let (h, _) = validate(hello()).unwrap();
        assert_eq!(
            h.queue_ahead, 0,
            "an older worker says nothing: it does not queue"
        );
        let (h, _) = validate(pb::Hello {
            queue_ahead: 32,
            ..hello()
        })
        .unwrap();
        assert_eq!(h.queue_ahead, 32);
        let refused = validate(pb::Hello {
            queue_ahead: MAX_CONCURRENCY + 1,
            ..hello()
        });
        assert!(refused.unwrap_err().1.contains("queue_ahead is over the limit"));
    }
}
