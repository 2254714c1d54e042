//! The fake's HTTP side: accepting and cutting connections, routing `/api/v1` paths, and turning
//! the store's answers into JSON replies and chunked watch streams.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Sleep;

use super::select::Filter;
use super::store::{lock, Store};
use super::{Kind, Refusal};
use super::{Recorded, Running, Shared};

/// A listener that can take the same port again on `restart`, while the old connections linger.
pub(super) fn listen(addr: SocketAddr) -> TcpListener {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket
        .bind(addr)
        .unwrap_or_else(|e| panic!("fake API server cannot bind {addr}: {e}"));
    socket.listen(1024).expect("listen")
}

/// Accepts connections until stopped, then drops the listener and every connection.
pub(super) fn serve(listener: TcpListener, shared: Arc<Shared>) -> Running {
    let (stop, mut stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let shared = shared.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |req| handle(shared.clone(), req));
                        let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(listener);
        // Aborting drops each connection's socket: clients see the server vanish mid-stream.
        connections.shutdown().await;
    });
    Running { stop, task }
}

type Reply = Response<BoxBody<Bytes, Infallible>>;

/// Records the request and answers it. Lists and gets are recorded on arrival (so a held list is
/// visible), watches once registered (so a test that saw one knows later changes reach it).
async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Reply, Infallible> {
    let recorded = Recorded {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        query: req.uri().query().map(decode_query).unwrap_or_default(),
    };
    let watch = recorded.is_watch();
    if !watch {
        record(&shared, recorded.clone());
    }
    let reply = match answer(&shared, &recorded).await {
        Ok(reply) => reply,
        Err(refusal) => json_reply(refusal.code, &refusal.status()),
    };
    if watch {
        record(&shared, recorded);
    }
    Ok(reply)
}

fn record(shared: &Shared, recorded: Recorded) {
    shared.requests.lock().unwrap().push(recorded);
    shared.seen.send_modify(|n| *n += 1);
}

async fn answer(shared: &Shared, r: &Recorded) -> Result<Reply, Refusal> {
    let segments: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
    let (kind, namespace, name) = match segments.as_slice() {
        ["api", "v1", "pods"] => (Kind::Pod, None, None),
        ["api", "v1", "namespaces"] => (Kind::Namespace, None, None),
        ["api", "v1", "namespaces", name] => (Kind::Namespace, None, Some(*name)),
        ["api", "v1", "namespaces", ns, "pods"] => (Kind::Pod, Some(*ns), None),
        ["api", "v1", "namespaces", ns, "pods", name] => (Kind::Pod, Some(*ns), Some(*name)),
        _ => {
            let message = "the server could not find the requested resource";
            return Err(Refusal::new(404, "NotFound", message));
        }
    };
    if r.method != "GET" {
        let message = "the fake API server only serves GET";
        return Err(Refusal::new(405, "MethodNotAllowed", message));
    }
    if let Some(name) = name {
        let found = lock(&shared.store).get(kind, namespace.unwrap_or_default(), name);
        let message = || format!("{} \"{name}\" not found", kind.plural());
        return found
            .map(|obj| json_reply(200, &obj))
            .ok_or_else(|| Refusal::new(404, "NotFound", message()));
    }
    let fields = r.query_value("fieldSelector");
    let filter = Filter::new(kind, namespace, fields, r.query_value("labelSelector"))?;
    let rv = r.query_value("resourceVersion");
    if r.is_watch() {
        // Without timeoutSeconds the real server picks 30 to 60 minutes.
        let timeout = Duration::from_secs(number(r, "timeoutSeconds")?.unwrap_or(1800));
        let bookmarks = r.query_value("allowWatchBookmarks") == Some("true");
        let initial = r.query_value("sendInitialEvents") == Some("true");
        let (id, rx) = lock(&shared.store).watch(filter, rv, bookmarks, initial)?;
        let deadline = Box::pin(tokio::time::sleep(timeout));
        let store = shared.store.clone();
        return Ok(reply(
            200,
            WatchBody {
                rx,
                deadline,
                id,
                store,
            }
            .boxed(),
        ));
    }
    let limit = number(r, "limit")?.unwrap_or(0) as usize;
    let rv_match = r.query_value("resourceVersionMatch");
    let cont = r.query_value("continue");
    let list = lock(&shared.store).list(&filter, rv, rv_match, limit, cont)?;
    Ok(json_reply(200, &list))
}

/// A numeric query parameter, if given.
fn number(r: &Recorded, key: &str) -> Result<Option<u64>, Refusal> {
    let parse = |v: &str| {
        v.parse()
            .map_err(|_| Refusal::bad_request(format!("invalid {key}: {v:?}")))
    };
    r.query_value(key).map(parse).transpose()
}

fn json_reply(code: u16, value: &Value) -> Reply {
    let body = serde_json::to_vec(value).expect("JSON serialises");
    reply(code, Full::new(Bytes::from(body)).boxed())
}

fn reply(code: u16, body: BoxBody<Bytes, Infallible>) -> Reply {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(code).expect("valid status");
    let json = header::HeaderValue::from_static("application/json");
    response.headers_mut().insert(header::CONTENT_TYPE, json);
    response
}

/// A watch's chunked body: the lines the store queues for it, until the store drops the watch or
/// `timeoutSeconds` passes. Dropping it (the client went away) closes the watch.
struct WatchBody {
    /// Event lines; the store drops the sending side to end the stream.
    rx: mpsc::UnboundedReceiver<Bytes>,
    /// When `timeoutSeconds` runs out.
    deadline: Pin<Box<Sleep>>,
    /// The store's id for this watch, until closed; `None` for a stream that was complete at once.
    id: Option<u64>,
    /// To deregister on close, so `open_watches` counts only live streams.
    store: Arc<Mutex<Store>>,
}

impl WatchBody {
    fn close(&mut self) {
        if let Some(id) = self.id.take() {
            lock(&self.store).unwatch(id);
        }
    }
}

impl Body for WatchBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        match this.rx.poll_recv(cx) {
            Poll::Ready(Some(line)) => return Poll::Ready(Some(Ok(Frame::data(line)))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        match this.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.close();
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for WatchBody {
    fn drop(&mut self) {
        self.close();
    }
}

/// `application/x-www-form-urlencoded` query pairs, decoded.
fn decode_query(query: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let mut out = Vec::with_capacity(s.len());
        let mut bytes = s.bytes().enumerate();
        while let Some((i, b)) = bytes.next() {
            let escaped = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match (b, escaped) {
                (b'+', _) => out.push(b' '),
                (b'%', Some(byte)) => {
                    out.push(byte);
                    bytes.nth(1);
                }
                _ => out.push(b),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    let pairs = query.split('&').filter(|p| !p.is_empty());
    pairs
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}
