//! `flotilla get`'s attempt history: a table for people, an array for `--json`.

use flotilla_client::Attempt;
use serde_json::Value;

/// The attempts as a JSON array (`attempts` of `flotilla get --json`).
pub fn attempts_json(attempts: &[Attempt]) -> Value {
    serde_json::to_value(attempts).unwrap_or(Value::Array(Vec::new()))
}

/// The attempts as a table, one line each, oldest first; `utc` formats a time. Empty when
/// there are none.
pub fn attempts_table(attempts: &[Attempt], utc: impl Fn(u64) -> String) -> String {
    if attempts.is_empty() {
        return String::new();
    }
    let holder_width = attempts
        .iter()
        .map(|a| a.holder.len())
        .max()
        .unwrap_or(0)
        .max("HOLDER".len());
    let mut s = format!(
        "  {:<7} {:<holder_width$} {:<24} {:<24} {}\n",
        "ATTEMPT", "HOLDER", "GRANTED", "ENDED", "HOW"
    );
    for a in attempts {
        let (ended, how) = match (a.ended_unix_ms, a.end) {
            (Some(at), Some(end)) => (utc(at), end.as_str()),
            _ => ("-".to_owned(), "running"),
        };
        s.push_str(&format!(
            "  {:<7} {:<holder_width$} {:<24} {:<24} {}\n",
            a.attempt,
            a.holder,
            utc(a.granted_unix_ms),
            ended,
            how
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use flotilla_client::AttemptEnd;

    use super::*;

    #[test]
    fn a_table_and_an_array() {
        let attempts = vec![
            Attempt {
                attempt: 1,
                holder: "node-2".into(),
                granted_unix_ms: 10,
                ended_unix_ms: Some(20),
                end: Some(AttemptEnd::Failed),
            },
            Attempt {
                attempt: 2,
                holder: "remote-worker".into(),
                granted_unix_ms: 30,
                ended_unix_ms: None,
                end: None,
            },
        ];
        let table = attempts_table(&attempts, |ms| ms.to_string());
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[1].contains("node-2") && lines[1].ends_with("failed"),
            "{table}"
        );
        assert!(lines[2].ends_with("running"), "{table}");
        let json = attempts_json(&attempts);
        assert_eq!(json[0]["end"], "failed");
        assert_eq!(json[1]["end"], Value::Null);
        assert_eq!(json[1]["holder"], "remote-worker");
        assert_eq!(attempts_table(&[], |ms| ms.to_string()), "");
    }
}
