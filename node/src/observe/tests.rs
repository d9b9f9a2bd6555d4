//! The rendering of the metrics: names, labels and histogram buckets as Prometheus reads them.

use std::sync::Arc;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::registry::Registry;

use super::apply::ApplyStats;
use super::scrape::QueueGauges;
use crate::queue::Change;
use crate::queue::Command;
use crate::queue::QueueState;
use crate::queue::Request;
use crate::queue::TaskState;
use crate::replica::ApplyWatcher;
use crate::replica::Replica;

fn spec(name: &str) -> crate::queue::TaskSpec {
    crate::worker::testing::task_spec(name, "{}")
}

fn render(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_text::encode(&mut out, registry).unwrap();
    out
}

fn lines_of<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(name)).collect()
}

#[test]
fn task_counters_and_histograms_render_with_queue_labels_and_buckets_in_seconds() {
    let stats = Arc::new(ApplyStats::default());
    let change = |from, to, after_ms| Change {
        from,
        to,
        after_ms,
        id: 1,
        attempt: 1,
        why: crate::queue::Why::Plain,
    };
    use TaskState::*;
    stats.changed(
        "emails",
        &[
            change(None, Pending, 0),
            change(Some(Pending), Leased, 3),
            change(Some(Leased), Succeeded, 1_500),
        ],
    );
    stats.changed("default", &[change(Some(Leased), Dead, 20)]);
    let mut registry = Registry::default();
    registry.register_collector(Box::new(stats));
    let text = render(&registry);

    for expected in [
        "# TYPE flotilla_tasks_submitted_total counter",
        "flotilla_tasks_submitted_total{queue=\"emails\"} 1",
        "flotilla_tasks_submitted_total{queue=\"default\"} 0",
        "flotilla_tasks_finished_total{queue=\"emails\",outcome=\"succeeded\"} 1",
        "flotilla_tasks_finished_total{queue=\"default\",outcome=\"dead\"} 1",
        "# TYPE flotilla_task_wait_seconds histogram",
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
    // Cumulative buckets: a 3 ms wait is above le=0.002 and within le=0.005.
    for expected in [
        "flotilla_task_wait_seconds_bucket{queue=\"emails\",le=\"0.002\"} 0",
        "flotilla_task_wait_seconds_bucket{queue=\"emails\",le=\"0.005\"} 1",
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
    let run = lines_of(&text, "flotilla_task_run_seconds");
    assert!(
        run.iter()
            .any(|l| l.contains("le=\"1\"") && l.contains("emails") && l.ends_with(" 0")),
        "{run:?}"
    );
    assert!(
        run.iter()
            .any(|l| l.contains("le=\"2.5\"") && l.contains("emails") && l.ends_with(" 1")),
        "{run:?}"
    );
    assert!(
        run.iter()
            .any(|l| l.contains("le=\"+Inf\"") && l.contains("emails") && l.ends_with(" 1")),
        "{run:?}"
    );
    assert!(
        run.iter()
            .any(|l| l.starts_with("flotilla_task_run_seconds_sum{queue=\"emails\"} 1.5")),
        "{run:?}"
    );
    assert!(
        run.iter()
            .any(|l| l.starts_with("flotilla_task_run_seconds_count{queue=\"emails\"} 1")),
        "{run:?}"
    );
    // 18 bounds and +Inf per queue and histogram.
    let buckets = run
        .iter()
        .filter(|l| l.contains("_bucket") && l.contains("emails"))
        .count();
    assert_eq!(buckets, 19, "{run:?}");
}

#[test]
fn tasks_per_queue_and_state_are_read_from_the_replica_at_scrape_time() {
    let replica = Arc::new(Replica::new(QueueState::new()));
    let mut registry = Registry::default();
    registry.register_collector(Box::new(QueueGauges {
        replica: replica.clone(),
    }));
    assert!(!render(&registry).contains("queue="), "no queue yet");

    let mut task = spec("noop");
    task.queue = "emails".into();
    let submit = Command::Submit {
        tasks: vec![task.clone(), task].into(),
    };
    replica.apply(&Request {
        now_ms: 1,
        commands: vec![submit],
    });
    let text = render(&registry);
    for expected in [
        "# TYPE flotilla_tasks gauge",
        "flotilla_tasks{queue=\"emails\",state=\"pending\"} 2",
        "flotilla_tasks{queue=\"emails\",state=\"leased\"} 0",
        "flotilla_queue_paused{queue=\"emails\"} 0",
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
}

#[test]
fn a_watched_replica_counts_its_applies() {
    let replica = Replica::new(QueueState::new());
    let stats = Arc::new(ApplyStats::default());
    replica.watch_applies(stats.clone());
    let submit = Command::Submit {
        tasks: vec![spec("noop")].into(),
    };
    replica.apply(&Request {
        now_ms: 1,
        commands: vec![submit],
    });
    let mut registry = Registry::default();
    registry.register_collector(Box::new(stats));
    let text = render(&registry);
    assert!(
        text.contains("flotilla_tasks_submitted_total{queue=\"default\"} 1"),
        "{text}"
    );
    // A snapshot install keeps the replica watched.
    replica.replace(QueueState::new());
    let submit = Command::Submit {
        tasks: vec![spec("noop")].into(),
    };
    replica.apply(&Request {
        now_ms: 2,
        commands: vec![submit],
    });
    assert!(render(&registry).contains("flotilla_tasks_submitted_total{queue=\"default\"} 2"));
}
