use super::api::list_request;
use super::page::escape;
use flotilla_proto::v1 as pb;

#[test]
fn task_list_queries_are_read_and_checked() {
    let req = list_request(Some(
        "queue=emails&state=dead&name=send%20mail&limit=20&cursor=v1.9",
    ))
    .unwrap();
    let f = req.filter.unwrap();
    assert_eq!(f.queue, "emails");
    assert_eq!(f.name, "send mail");
    assert_eq!(f.states, vec![pb::TaskState::Dead as i32]);
    assert_eq!((req.page_size, req.cursor.as_str()), (20, "v1.9"));
    assert_eq!(list_request(None).unwrap().page_size, 0);
    let waiting = list_request(Some("state=waiting")).unwrap().filter.unwrap();
    assert_eq!(waiting.states, vec![pb::TaskState::Waiting as i32]);
    assert_eq!(
        super::api::task_json(&pb::TaskInfo {
            state: pb::TaskState::Waiting as i32,
            ..Default::default()
        })["state"],
        "waiting"
    );
    assert_eq!(
        list_request(Some("queue=&state=")).unwrap().filter,
        Some(Default::default())
    );
    for bad in [
        "state=zombie",
        "limit=many",
        "limit=99999999999",
        "color=red",
        "name=%zz",
        "name=%ff",
        "name=%4",
    ] {
        assert!(list_request(Some(bad)).is_err(), "{bad}");
    }
    assert!(list_request(Some(&"a".repeat(5000))).is_err());
}

#[test]
fn html_is_escaped() {
    assert_eq!(escape("<b a=\"x\">&'"), "&lt;b a=&quot;x&quot;&gt;&amp;&#39;");
}

#[test]
fn an_open_dashboard_answers_loopback_host_names_only() {
    let with = |host: &str| {
        let mut h = axum::http::HeaderMap::new();
        h.insert(axum::http::header::HOST, host.parse().unwrap());
        super::loopback_host(&h)
    };
    for ok in [
        "localhost",
        "localhost:8080",
        "127.0.0.1:9",
        "127.1.2.3",
        "[::1]:80",
        "LOCALHOST",
    ] {
        assert!(with(ok), "{ok}");
    }
    for bad in [
        "evil.example:8080",
        "10.0.0.1:80",
        "localhost.evil.example",
        "[::2]:80",
        "",
    ] {
        assert!(!with(bad), "{bad}");
    }
    assert!(!super::loopback_host(&axum::http::HeaderMap::new()));
}
