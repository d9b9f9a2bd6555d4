//! The auth layer's decisions, and that a refused call never reaches the service behind it.

use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;

use tonic::codegen::http::Request as HttpRequest;
use tonic::codegen::http::Response as HttpResponse;
use tower::Layer;
use tower::Service;

use super::*;
use crate::clock::Clock;
use crate::network::headers::Bearer;
use crate::network::headers::Stamp;
use crate::network::peer_auth::SharedSecret;
use crate::queue::Command;
use crate::queue::Request;

const NOW: u64 = 1_000_000;
const ADMIN: &str = "flt_admin_0123456789abcdef0123456789";
const SUBMIT: &str = "flt_submit_0123456789abcdef012345678";
const JOIN: &str = "flt_join_0123456789abcdef0123456789ab";
const EXPIRED: &str = "flt_expired_0123456789abcdef01234567";
const SECRET: &str = "flt_peer_secret_0123456789abcdef0123";

struct FixedClock;

impl Clock for FixedClock {
    fn now_ms(&self) -> u64 {
        NOW
    }
}

fn auth(client_auth: ClientAuth) -> Auth {
    let replica = Arc::new(Replica::default());
    let token = |t: &str, role, ttl_ms| Command::CreateToken {
        role,
        hash: token_hash(t.as_bytes()),
        label: String::new(),
        ttl_ms,
    };
    replica.apply(&Request {
        now_ms: NOW - 10,
        commands: vec![
            token(ADMIN, Role::Admin, None),
            token(SUBMIT, Role::Submit, None),
            token(JOIN, Role::Join, Some(60_000)),
            token(EXPIRED, Role::Admin, Some(5)),
        ],
    });
    Auth {
        client_auth,
        peer: Arc::new(SharedSecret::new(SECRET).unwrap()),
        replica,
        clock: Arc::new(FixedClock),
        cluster_id: "ours".into(),
    }
}

/// Headers with `token` as a bearer token (if any) and, for a peer, the stamp and `secret`.
fn headers(token: Option<&str>, peer: Option<(&str, &str)>) -> HeaderMap {
    let mut metadata = tonic::metadata::MetadataMap::new();
    if let Some(t) = token {
        Bearer::new(t).unwrap().apply(&mut metadata);
    }
    if let Some((cluster, secret)) = peer {
        Stamp::new(cluster, 2).unwrap().apply(&mut metadata);
        SharedSecret::new(secret).unwrap().stamp(&mut metadata);
    }
    metadata.into_headers()
}

fn check(a: &Auth, path: &str, h: &HeaderMap) -> Result<Caller, AuthError> {
    a.check(path, h, &Extensions::new())
}

const SUBMIT_PATH: &str = "/flotilla.v1.QueueService/Submit";
const REMOVE_PATH: &str = "/flotilla.v1.QueueService/RemoveNode";
const ADMIN_PATH: &str = "/flotilla.v1.RaftService/Admin";
const VOTE_PATH: &str = "/flotilla.v1.RaftService/Vote";
const FORWARD_PATH: &str = "/flotilla.v1.RaftService/Forward";

#[test]
fn every_method_needs_something_and_unknown_ones_need_admin() {
    assert_eq!(need(SUBMIT_PATH), Need::Client(Right::Submit));
    assert_eq!(
        need("/flotilla.v1.QueueService/GetTask"),
        Need::Client(Right::Read)
    );
    assert_eq!(need(REMOVE_PATH), Need::Client(Right::Admin));
    assert_eq!(
        need("/flotilla.v1.QueueService/CreateToken"),
        Need::Client(Right::Admin)
    );
    assert_eq!(
        need("/flotilla.v1.QueueService/ListTaskNames"),
        Need::Client(Right::Read)
    );
    assert_eq!(
        need("/flotilla.v1.QueueService/ListWorkers"),
        Need::Client(Right::Read),
        "workers is read-only"
    );
    assert_eq!(
        need("/flotilla.v1.QueueService/FindTasksByIdempotencyKey"),
        Need::Client(Right::Read)
    );
    assert_eq!(
        need("/flotilla.v1.QueueService/DeclareTaskNames"),
        Need::Client(Right::Admin)
    );
    for reflection in [
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ] {
        assert_eq!(need(reflection), Need::Client(Right::Read), "{reflection}");
    }
    assert_eq!(
        need("/flotilla.v1.QueueService/SomethingNew"),
        Need::Client(Right::Admin)
    );
    assert_eq!(
        need("/flotilla.v1.WorkerService/Session"),
        Need::Client(Right::Work)
    );
    // Schedules: listing reads, every change is an admin's.
    assert_eq!(
        need("/flotilla.v1.ScheduleService/ListSchedules"),
        Need::Client(Right::Read)
    );
    for change in ["AddSchedule", "PauseSchedule", "RemoveSchedule"] {
        assert_eq!(
            need(&format!("/flotilla.v1.ScheduleService/{change}")),
            Need::Client(Right::Admin)
        );
    }
    // Operating tasks: finding reads, acting is an admin's.
    for read in ["ListTasks", "DescribeTask"] {
        assert_eq!(
            need(&format!("/flotilla.v1.OpsService/{read}")),
            Need::Client(Right::Read)
        );
    }
    for change in ["Retry", "Revoke", "PauseQueue", "ResumeQueue", "PurgeQueue"] {
        assert_eq!(
            need(&format!("/flotilla.v1.OpsService/{change}")),
            Need::Client(Right::Admin)
        );
    }
    assert_eq!(need(ADMIN_PATH), Need::PeerOrJoin);
    assert_eq!(need(VOTE_PATH), Need::Peer);
    assert_eq!(need("/"), Need::Client(Right::Admin));
    assert_eq!(need(""), Need::Client(Right::Admin));
}

#[test]
fn roles_grant_their_rights_only() {
    use Right::*;
    let all = [Read, Submit, Work, Admin, Join];
    let has = |role| {
        all.iter()
            .copied()
            .filter(|r| grants(role, *r))
            .collect::<Vec<_>>()
    };
    assert_eq!(has(Role::Submit), [Read, Submit]);
    assert_eq!(has(Role::Worker), [Read, Work]);
    assert_eq!(has(Role::Admin), all);
    assert_eq!(has(Role::Join), [Join]);
}

#[test]
fn clients_need_a_live_token_with_the_right_role() {
    let a = auth(ClientAuth::Tokens);
    let err = check(&a, SUBMIT_PATH, &headers(None, None)).unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let ok = check(&a, SUBMIT_PATH, &headers(Some(SUBMIT), None)).unwrap();
    assert!(matches!(
        ok,
        Caller::Token {
            role: Role::Submit,
            ..
        }
    ));
    // Wrong role: PERMISSION_DENIED, naming the token by id only.
    let err = check(&a, REMOVE_PATH, &headers(Some(SUBMIT), None)).unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    let message = Status::from(err).message().to_string();
    assert!(
        message.contains("token 2") && message.contains("admin"),
        "{message}"
    );
    assert!(!message.contains(SUBMIT), "{message}");
    assert!(check(&a, REMOVE_PATH, &headers(Some(ADMIN), None)).is_ok());
    // Unknown and expired tokens are the same refusal; a join token submits nothing.
    for bad in ["flt_nobody_0123456789abcdef0123456789", EXPIRED] {
        let err = check(&a, SUBMIT_PATH, &headers(Some(bad), None)).unwrap_err();
        assert!(matches!(err, AuthError::BadToken), "{err:?}");
        assert!(!err.to_string().contains(bad));
    }
    let err = check(&a, SUBMIT_PATH, &headers(Some(JOIN), None)).unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
}

#[test]
fn an_open_node_serves_anonymous_local_callers_but_still_checks_tokens() {
    let a = auth(ClientAuth::Open);
    assert_eq!(
        check(&a, REMOVE_PATH, &headers(None, None)).unwrap(),
        Caller::Local
    );
    assert_eq!(
        check(&a, ADMIN_PATH, &headers(None, None)).unwrap(),
        Caller::Local
    );
    assert!(
        check(
            &a,
            SUBMIT_PATH,
            &headers(Some("flt_bad_token_0123456789abcdef0123"), None)
        )
        .is_err()
    );
    assert!(check(&a, REMOVE_PATH, &headers(Some(SUBMIT), None)).is_err());
    // Peers' own methods never take an anonymous caller, open or not.
    assert!(matches!(
        check(&a, VOTE_PATH, &headers(None, None)),
        Err(AuthError::NotAPeer)
    ));
}

#[test]
fn peer_methods_need_the_peer_secret_and_our_cluster() {
    let a = auth(ClientAuth::Tokens);
    let member = headers(None, Some(("ours", SECRET)));
    for path in [VOTE_PATH, FORWARD_PATH, ADMIN_PATH] {
        assert_eq!(check(&a, path, &member).unwrap(), Caller::Peer, "{path}");
    }
    let forged = headers(None, Some(("ours", "flt_guess_0123456789abcdef0123456789")));
    let err = check(&a, FORWARD_PATH, &forged).unwrap_err();
    assert!(matches!(err, AuthError::BadPeerProof), "{err:?}");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let other_cluster = headers(None, Some(("theirs", SECRET)));
    let err = check(&a, VOTE_PATH, &other_cluster).unwrap_err();
    assert!(matches!(err, AuthError::WrongCluster), "{err:?}");
    assert!(!err.to_string().contains("ours"));
    // A client token, even admin, is no peer credential.
    assert!(matches!(
        check(&a, FORWARD_PATH, &headers(Some(ADMIN), None)),
        Err(AuthError::NotAPeer)
    ));
    // A joining node: Admin with a join (or admin) token, nothing without one.
    assert!(matches!(
        check(&a, ADMIN_PATH, &headers(Some(JOIN), None)),
        Ok(Caller::Token { role: Role::Join, .. })
    ));
    assert!(check(&a, ADMIN_PATH, &headers(Some(ADMIN), None)).is_ok());
    assert!(matches!(
        check(&a, ADMIN_PATH, &headers(None, None)),
        Err(AuthError::NoToken)
    ));
    assert!(check(&a, ADMIN_PATH, &headers(Some(SUBMIT), None)).is_err());
}

/// The service behind the layer: counts the calls that reach it.
#[derive(Clone, Default)]
struct Behind {
    calls: Arc<AtomicUsize>,
}

impl Service<HttpRequest<String>> for Behind {
    type Response = HttpResponse<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = futures::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: HttpRequest<String>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        assert!(
            req.extensions().get::<Caller>().is_some(),
            "no decision passed on"
        );
        futures::future::ready(Ok(HttpResponse::new(tonic::body::Body::default())))
    }
}

#[tokio::test]
async fn a_refused_call_never_reaches_the_service() {
    let behind = Behind::default();
    let mut svc = AuthLayer::new(auth(ClientAuth::Tokens)).layer(behind.clone());
    // The 11-byte body that once made a node allocate 1 TiB, sent anonymously.
    let attack = String::from_utf8_lossy(&[0, 1, 253, 0, 0, 0, 0, 0, 1, 0, 0]).into_owned();
    let req = HttpRequest::builder().uri(ADMIN_PATH).body(attack).unwrap();
    let resp = svc.call(req).await.unwrap();
    let status = Status::from_header_map(resp.headers()).expect("a grpc status");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert_eq!(
        behind.calls.load(Ordering::SeqCst),
        0,
        "the body reached the service"
    );

    let mut req = HttpRequest::builder()
        .uri(SUBMIT_PATH)
        .body(String::new())
        .unwrap();
    *req.headers_mut() = headers(Some(SUBMIT), None);
    svc.call(req).await.unwrap();
    assert_eq!(behind.calls.load(Ordering::SeqCst), 1);
}
