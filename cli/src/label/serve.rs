//! `modelobs label --serve`: a review page on 127.0.0.1 for a person. It shows
//! the queued tasks one at a time, the image with the model's boxes drawn over
//! it to move, resize, delete, add and classify, and answers through the
//! signed webhook exactly as the oracle does; the task leaves the queue only
//! once the webhook took the label.
//!
//! - `GET /`: the page (one file, inline script and style);
//! - `GET /image/<id>`: the task's image, from the bucket;
//! - `GET /api/tasks`, `GET /api/tasks/<id>`: the queue, one task;
//! - `POST /api/tasks/<id>/label` `{"objects":[{"class","box":{x1,y1,x2,y2}}]}`:
//!   400 when a class is not an animal or a box is not inside the image,
//!   502 with the webhook's answer when it refuses (the task stays queued).
//!
//! The page signs with the real webhook secret, so every request must come
//! from the page itself ([`Guard`]): a `Host` that is not this server's own
//! address is 421 (a page elsewhere whose name was rebound to 127.0.0.1 — DNS
//! rebinding — would otherwise read the queue and post labels), a POST whose
//! `Origin` (or, without one, `Referer`) is another site is 403, and a POST
//! that is not `application/json` is 415: forms and plain text are what a
//! page elsewhere can send without the browser asking this server first.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use modelobs_adapters::memory::MemoryStore;
use modelobs_adapters::{ObjectStore, PutCondition, StoreError};
use modelobs_core::records::{CaptureId, LabelingTask};
use modelobs_core::{BBox, classes, keys, records};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::{LabelArgs, TaskQueue, WebhookClient, oracle};

const PAGE: &str = include_str!("review.html");

pub async fn run(args: &LabelArgs) -> Result<()> {
    let webhook = WebhookClient::new(&args.webhook, &args.secret)?;
    let listener = bind(&args.listen).await?;
    match (&args.bucket_dir, &args.bucket) {
        (Some(dir), _) => {
            let store = seeded_store(dir).await?;
            serve(listener, Review::new(TaskQueue { store }, webhook)).await
        }
        (None, Some(bucket)) => {
            let queue = TaskQueue::from_env(bucket).await;
            serve(listener, Review::new(queue, webhook)).await
        }
        (None, None) => bail!("--bucket (or DATA_BUCKET) is required"),
    }
}

/// Listens on `addr`, refusing anything but a loopback address: the page
/// signs labels with the webhook secret, so only this machine may reach it.
pub async fn bind(addr: &str) -> Result<TcpListener> {
    let addr: SocketAddr = addr
        .parse()
        .with_context(|| format!("--listen {addr:?} is not an IP:port"))?;
    if !addr.ip().is_loopback() {
        bail!("--listen {addr}: the review page listens on a loopback address only (127.0.0.1)");
    }
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))
}

/// An in-memory bucket holding every file under `dir`, keyed by its path there.
pub async fn seeded_store(dir: &Path) -> Result<MemoryStore> {
    let store = MemoryStore::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries =
            std::fs::read_dir(&folder).with_context(|| format!("reading {}", folder.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            let key = path
                .strip_prefix(dir)
                .expect("under dir")
                .to_string_lossy()
                .replace('\\', "/");
            let body =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            store
                .put(&key, body.into(), content_type(&key), PutCondition::Always)
                .await?;
        }
    }
    Ok(store)
}

/// Serves the page until the process ends.
pub async fn serve<S: ObjectStore + 'static>(
    listener: TcpListener,
    review: Review<S>,
) -> Result<()> {
    // Scripts read the address from this line (`--listen 127.0.0.1:0`).
    let addr = listener.local_addr()?;
    println!("label: review page on http://{addr}/");
    axum::serve(listener, router(Arc::new(review), Guard::for_address(addr)))
        .await
        .context("serving the review page")
}

/// What the page's handlers share: the queue and the webhook.
pub struct Review<S> {
    queue: TaskQueue<S>,
    webhook: WebhookClient,
    page: String,
}

impl<S: ObjectStore> Review<S> {
    pub fn new(queue: TaskQueue<S>, webhook: WebhookClient) -> Self {
        let animals: Vec<&str> = classes::animals().map(|c| c.name).collect();
        let page = PAGE.replace(
            "/*ANIMALS*/[]",
            &serde_json::to_string(&animals).expect("strings serialize"),
        );
        Self {
            queue,
            webhook,
            page,
        }
    }
}

/// Which requests come from the page itself: those naming this server by one
/// of its own addresses.
#[derive(Debug, Clone)]
pub struct Guard {
    /// `Host` values for this server: localhost, 127.0.0.1 and [::1] with its
    /// port, and the address it is bound to (`--listen`).
    hosts: Vec<String>,
}

impl Guard {
    pub fn for_address(addr: SocketAddr) -> Self {
        let port = addr.port();
        let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "[::1]"]
            .iter()
            .map(|h| format!("{h}:{port}"))
            .collect();
        hosts.push(addr.to_string());
        if port == 80 {
            // A browser leaves the default port out of Host and Origin.
            let bare: Vec<String> = hosts
                .iter()
                .filter_map(|h| h.strip_suffix(":80").map(str::to_string))
                .collect();
            hosts.extend(bare);
        }
        // Each once, in this order (the first names the page in refusals).
        let mut seen = std::collections::HashSet::new();
        hosts.retain(|h| seen.insert(h.clone()));
        Self { hosts }
    }

    fn is_own_host(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    /// `http://<own host>`, exactly: no other scheme, port or name.
    fn is_own_origin(&self, origin: &str) -> bool {
        origin
            .strip_prefix("http://")
            .is_some_and(|host| self.is_own_host(host))
    }

    /// The Referer's scheme and authority as an origin.
    fn is_own_referer(&self, referer: &str) -> bool {
        referer.strip_prefix("http://").is_some_and(|rest| {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            self.is_own_host(authority)
        })
    }

    /// `Ok` for a request from the page; else the refusal to answer.
    fn check(&self, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
        let text = |name| {
            headers
                .get(name)
                .map(|v| v.to_str().unwrap_or("(not text)"))
        };
        match text(header::HOST) {
            Some(host) if self.is_own_host(host) => {}
            host => {
                return Err(ApiError::new(
                    StatusCode::MISDIRECTED_REQUEST,
                    "unknown_host",
                    format!(
                        "Host {} is not this page's address ({}): a page elsewhere may be \
                         reaching it through a name rebound to this machine",
                        host.unwrap_or("(none)"),
                        self.hosts.join(", ")
                    ),
                ));
            }
        }
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return Ok(());
        }
        // Browsers send Origin with every POST from a page; Referer is the
        // fallback for those that don't. Neither: not a browser, nothing to forge.
        let foreign = match (text(header::ORIGIN), text(header::REFERER)) {
            (Some(origin), _) if !self.is_own_origin(origin) => Some(("Origin", origin)),
            (None, Some(referer)) if !self.is_own_referer(referer) => Some(("Referer", referer)),
            _ => None,
        };
        if let Some((name, value)) = foreign {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "foreign_origin",
                format!(
                    "{name} {value} is not this page (http://{}): only the page itself posts labels",
                    self.hosts[0]
                ),
            ));
        }
        let content_type = text(header::CONTENT_TYPE).unwrap_or("(none)");
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("Content-Type {content_type}: labels are posted as application/json"),
            ));
        }
        Ok(())
    }
}

/// Every request through [`Guard::check`]; a refusal is logged and answered.
async fn guarded(
    axum::extract::State(guard): axum::extract::State<Arc<Guard>>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    match guard.check(request.method(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            eprintln!(
                "label: refused {} {} ({} {}): {}",
                request.method(),
                request.uri().path(),
                refusal.status.as_u16(),
                refusal.code,
                refusal.message
            );
            refusal.into_response()
        }
    }
}

pub fn router<S: ObjectStore + 'static>(review: Arc<Review<S>>, guard: Guard) -> Router {
    Router::new()
        .route("/", get(page::<S>))
        .route("/image/{id}", get(image::<S>))
        .route("/api/tasks", get(list::<S>))
        .route("/api/tasks/{id}", get(task::<S>))
        .route("/api/tasks/{id}/label", post(label::<S>))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such page") })
        .with_state(review)
        .layer(middleware::from_fn_with_state(Arc::new(guard), guarded))
}

/// `{"error": {"code", "message"}}`, plus the webhook's answer when it refused.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    webhook: Option<Value>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            webhook: None,
        }
    }

    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(answer) = self.webhook {
            error["webhook"] = answer;
        }
        (self.status, axum::Json(json!({"error": error}))).into_response()
    }
}

type ApiResult<T> = std::result::Result<T, ApiError>;

async fn page<S: ObjectStore>(State(review): State<Arc<Review<S>>>) -> Html<String> {
    Html(review.page.clone())
}

/// One queued task as the list shows it.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct TaskSummary {
    pub id: CaptureId,
    pub captured_at: chrono::DateTime<Utc>,
    pub width: u32,
    pub height: u32,
    pub prelabels: usize,
}

async fn list<S: ObjectStore>(
    State(review): State<Arc<Review<S>>>,
) -> ApiResult<axum::Json<Vec<TaskSummary>>> {
    let pending = review.queue.pending().await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            format!("{e:#}"),
        )
    })?;
    Ok(axum::Json(
        pending
            .into_iter()
            .map(|(_, t)| TaskSummary {
                id: t.id,
                captured_at: t.captured_at,
                width: t.width,
                height: t.height,
                prelabels: t.prelabels.len(),
            })
            .collect(),
    ))
}

/// The queued task `id` and its key, or 404.
async fn queued<S: ObjectStore>(review: &Review<S>, id: &str) -> ApiResult<(String, LabelingTask)> {
    let id = CaptureId::parse(id).map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{id:?} is not a capture id"),
        )
    })?;
    let key = keys::labeling_task(id);
    let Some(object) = review.queue.store.get(&key).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no task {id} in the queue (answered meanwhile?)"),
        ));
    };
    let task = records::from_json::<LabelingTask>(&object.body).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "bad_task",
            format!("{key}: {e}"),
        )
    })?;
    Ok((key, task))
}

async fn task<S: ObjectStore>(
    State(review): State<Arc<Review<S>>>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<axum::Json<LabelingTask>> {
    let (_, task) = queued(&review, &id).await?;
    Ok(axum::Json(task))
}

async fn image<S: ObjectStore>(
    State(review): State<Arc<Review<S>>>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Response> {
    let (_, task) = queued(&review, &id).await?;
    let Some(object) = review.queue.store.get(&task.image_key).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("the task's image {} is not in the bucket", task.image_key),
        ));
    };
    Ok((
        [(header::CONTENT_TYPE, content_type(&task.image_key))],
        object.body,
    )
        .into_response())
}

/// The page's answer: boxes in image pixels.
#[derive(Debug, Deserialize)]
struct LabelRequest {
    objects: Vec<RequestObject>,
}

#[derive(Debug, Deserialize)]
struct RequestObject {
    class: String,
    #[serde(rename = "box")]
    bbox: RequestBox,
}

#[derive(Debug, Deserialize)]
struct RequestBox {
    x1: f64,
    y1: f64,
    x2: f64,
    y2: f64,
}

async fn label<S: ObjectStore>(
    State(review): State<Arc<Review<S>>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> ApiResult<axum::Json<Value>> {
    let (key, task) = queued(&review, &id).await?;
    let request: LabelRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "bad_json",
            format!("expected {{\"objects\": [{{\"class\", \"box\": {{x1, y1, x2, y2}}}}]}}: {e}"),
        )
    })?;
    let objects = validate(&request, task.width, task.height)?;
    let mut event = oracle::label_event(task.id, &objects, Utc::now());
    // The label's id says a person made it, not the oracle.
    event["id"] = json!(format!("review-{}", task.id));
    let (status, answer) = review
        .webhook
        .send("LABEL_CREATED", &event)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "webhook_unreachable",
                format!("{e:#}"),
            )
        })?;
    if !(200..300).contains(&status) {
        return Err(ApiError {
            webhook: Some(json!({"status": status, "body": answer})),
            ..ApiError::new(
                StatusCode::BAD_GATEWAY,
                "webhook_refused",
                format!("the webhook answered {status}; the task stays queued"),
            )
        });
    }
    review.queue.done(&key).await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            format!("{e:#}"),
        )
    })?;
    Ok(axum::Json(
        json!({"id": task.id, "objects": objects.len(), "webhook": status}),
    ))
}

/// Animal classes only, boxes inside the image with an area, in image pixels.
fn validate(request: &LabelRequest, width: u32, height: u32) -> ApiResult<Vec<(String, BBox)>> {
    let (w, h) = (f64::from(width), f64::from(height));
    request
        .objects
        .iter()
        .enumerate()
        .map(|(i, o)| {
            if !classes::animals().any(|c| c.name == o.class) {
                let names: Vec<&str> = classes::animals().map(|c| c.name).collect();
                return Err(ApiError::bad_request(
                    "unknown_class",
                    format!(
                        "objects[{i}]: {:?} is not an animal class ({})",
                        o.class,
                        names.join(", ")
                    ),
                ));
            }
            let RequestBox { x1, y1, x2, y2 } = o.bbox;
            let bad =
                |why: String| ApiError::bad_request("bad_box", format!("objects[{i}]: {why}"));
            if ![x1, y1, x2, y2].iter().all(|v| v.is_finite()) {
                return Err(bad("the box has a coordinate that is not a number".into()));
            }
            if x2 <= x1 || y2 <= y1 {
                return Err(bad(format!(
                    "the box ({x1}, {y1})–({x2}, {y2}) has no area (x1 < x2 and y1 < y2)"
                )));
            }
            if x1 < 0.0 || y1 < 0.0 || x2 > w || y2 > h {
                return Err(bad(format!(
                    "the box ({x1}, {y1})–({x2}, {y2}) is not inside the {width}×{height} image"
                )));
            }
            let bbox = BBox::new(x1, y1, x2, y2).map_err(|e| bad(e.to_string()))?;
            Ok((o.class.clone(), bbox))
        })
        .collect()
}

fn content_type(key: &str) -> &'static str {
    let ext = key.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use modelobs_core::records::Detection;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const SECRET: &str = "review-secret";

    /// Headers (lower-case names) and body of one request.
    type Request = (Vec<(String, String)>, Vec<u8>);

    /// A webhook stand-in: records each request's headers and body, answers
    /// `status` with `answer`.
    struct FakeWebhook {
        url: String,
        received: Arc<Mutex<Vec<Request>>>,
    }

    impl FakeWebhook {
        async fn start(status: u16, answer: &'static str) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!(
                "http://{}/lambda-url/webhook/",
                listener.local_addr().unwrap()
            );
            let received = Arc::new(Mutex::new(Vec::new()));
            let log = received.clone();
            tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    let (head_end, length) = loop {
                        let n = stream.read(&mut chunk).await.unwrap();
                        assert!(n > 0, "the request ended early");
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .map_or(0, |v| v.trim().parse().unwrap());
                            break (i + 4, length);
                        }
                    };
                    while buf.len() < head_end + length {
                        let n = stream.read(&mut chunk).await.unwrap();
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let headers = String::from_utf8_lossy(&buf[..head_end])
                        .lines()
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                        .collect();
                    log.lock()
                        .unwrap()
                        .push((headers, buf[head_end..head_end + length].to_vec()));
                    let response = format!(
                        "HTTP/1.1 {status} Fake\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                        answer.len()
                    );
                    stream.write_all(response.as_bytes()).await.unwrap();
                    stream.shutdown().await.unwrap();
                }
            });
            Self { url, received }
        }

        fn received(&self) -> Vec<Request> {
            self.received.lock().unwrap().clone()
        }
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    const IMAGE: &[u8] = b"\xff\xd8\xff\xe0 not really a JPEG, but bytes to stream back";

    /// A bucket with one queued task (640×480, one dog pre-label) and its image.
    async fn queued_task(store: &MemoryStore) -> LabelingTask {
        let at: chrono::DateTime<Utc> = "2026-11-20T10:00:00Z".parse().unwrap();
        let id = CaptureId::new(at);
        let image_key = keys::capture_image(id, at, "jpg");
        let task = LabelingTask {
            id,
            capture_key: keys::capture_record(id, at),
            image_key: image_key.clone(),
            width: 640,
            height: 480,
            captured_at: at,
            created_at: at,
            prelabels: vec![Detection {
                label: "dog".into(),
                class_id: 16,
                score: 0.8,
                bbox: BBox::new(100.0, 120.0, 300.0, 400.0).unwrap(),
            }],
        };
        store
            .put(
                &image_key,
                Bytes::from_static(IMAGE),
                "image/jpeg",
                PutCondition::Always,
            )
            .await
            .unwrap();
        store
            .put(
                &keys::labeling_task(id),
                records::to_json(&task).into(),
                "application/json",
                PutCondition::Always,
            )
            .await
            .unwrap();
        task
    }

    /// The review server on an ephemeral loopback port; its base URL.
    async fn start(store: Arc<MemoryStore>, webhook_url: &str) -> String {
        let listener = bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let review = Review::new(
            TaskQueue { store },
            WebhookClient::new(webhook_url, SECRET).unwrap(),
        );
        tokio::spawn(serve(listener, review));
        base
    }

    async fn post_label(base: &str, id: CaptureId, body: Value) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!("{base}/api/tasks/{id}/label"))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    #[tokio::test]
    async fn the_page_lists_the_queue_and_serves_the_task_and_its_image() {
        // GIVEN one queued task
        let store = Arc::new(MemoryStore::new());
        let task = queued_task(&store).await;
        let base = start(store.clone(), "http://127.0.0.1:9/").await;
        let http = reqwest::Client::new();

        // WHEN the page, the list, the task and the image are asked for
        let page = http.get(format!("{base}/")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert!(
            page.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let page = page.text().await.unwrap();
        let list: Vec<TaskSummary> = http
            .get(format!("{base}/api/tasks"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let got: LabelingTask = http
            .get(format!("{base}/api/tasks/{}", task.id))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let image = http
            .get(format!("{base}/image/{}", task.id))
            .send()
            .await
            .unwrap();

        // THEN the page knows the ten animal classes and carries no external resource
        assert!(page.contains(r#"const ANIMALS = ["bird","cat","dog","horse","sheep","cow","elephant","bear","zebra","giraffe"];"#));
        for external in ["src=\"http", "href=\"http", "https://", "@import"] {
            assert!(
                !page.contains(external),
                "the page loads nothing from elsewhere: {external}"
            );
        }
        // ... the list names the task, the task is the stored one, the image its bytes
        assert_eq!(
            list,
            vec![TaskSummary {
                id: task.id,
                captured_at: task.captured_at,
                width: 640,
                height: 480,
                prelabels: 1
            }]
        );
        assert_eq!(got, task);
        assert_eq!(image.status(), 200);
        assert_eq!(image.headers()[header::CONTENT_TYPE], "image/jpeg");
        assert_eq!(image.bytes().await.unwrap(), IMAGE);
    }

    #[tokio::test]
    async fn an_unknown_task_is_404_json() {
        let store = Arc::new(MemoryStore::new());
        let base = start(store, "http://127.0.0.1:9/").await;
        let id = CaptureId::new(Utc::now());
        for path in [
            format!("/api/tasks/{id}"),
            format!("/image/{id}"),
            "/api/tasks/nope".into(),
        ] {
            let r = reqwest::get(format!("{base}{path}")).await.unwrap();
            assert_eq!(r.status(), 404, "{path}");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "not_found", "{path}");
        }
    }

    #[tokio::test]
    async fn a_submitted_label_reaches_the_webhook_signed_and_the_task_leaves_the_queue() {
        // GIVEN a queued task and a webhook that accepts
        let store = Arc::new(MemoryStore::new());
        let task = queued_task(&store).await;
        let webhook = FakeWebhook::start(200, r#"{"ok":true}"#).await;
        let base = start(store.clone(), &webhook.url).await;

        // WHEN the person moved the dog and added a cat
        let (status, body) = post_label(
            &base,
            task.id,
            json!({"objects": [
                {"class": "dog", "box": {"x1": 110.5, "y1": 130.0, "x2": 310.5, "y2": 410.0}},
                {"class": "cat", "box": {"x1": 400.0, "y1": 0.0, "x2": 640.0, "y2": 200.25}},
            ]}),
        )
        .await;

        // THEN the webhook got one LABEL_CREATED event signed with the secret
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["objects"], 2);
        let received = webhook.received();
        assert_eq!(received.len(), 1);
        let (headers, event) = &received[0];
        assert_eq!(header(headers, "x-labelbox-event"), Some("LABEL_CREATED"));
        // ... and in the signed body, where the webhook takes it from
        let (_, signed_topic) = modelobs_labelbox::webhook::payload::parse(event, None)
            .unwrap()
            .unwrap();
        assert_eq!(
            signed_topic.topic_from,
            modelobs_labelbox::webhook::payload::TopicFrom::Body
        );
        modelobs_labelbox::webhook::signature::verify_request(
            SECRET.as_bytes(),
            event,
            header(headers, "x-hub-signature"),
            header(headers, "x-hub-signature-256"),
        )
        .expect("signed with the webhook secret");
        assert!(header(headers, "x-hub-signature-256").is_some());
        // ... whose objects, as the webhook reads them, are the submitted boxes
        let (_, parsed) = modelobs_labelbox::webhook::payload::parse(event, Some("LABEL_CREATED"))
            .unwrap()
            .unwrap();
        assert_eq!(parsed.capture_id, Some(task.id));
        assert_eq!(parsed.label_id, format!("review-{}", task.id));
        let (mapped, unmapped) = modelobs_labelbox::webhook::payload::ClassMap::default()
            .map(parsed.objects.as_deref().unwrap());
        assert!(unmapped.is_empty());
        let got: Vec<(String, BBox)> = mapped.into_iter().map(|o| (o.label, o.bbox)).collect();
        assert_eq!(
            got,
            vec![
                (
                    "dog".to_string(),
                    BBox::new(110.5, 130.0, 310.5, 410.0).unwrap()
                ),
                (
                    "cat".to_string(),
                    BBox::new(400.0, 0.0, 640.0, 200.25).unwrap()
                ),
            ]
        );
        // ... and the task is answered: gone from the queue, the image still there
        assert!(!store.keys().contains(&keys::labeling_task(task.id)));
        assert!(store.body(&task.image_key).is_some());
        let list: Vec<Value> = reqwest::get(format!("{base}/api/tasks"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(list.is_empty());
    }

    #[tokio::test]
    async fn no_boxes_is_a_label_too() {
        let store = Arc::new(MemoryStore::new());
        let task = queued_task(&store).await;
        let webhook = FakeWebhook::start(200, "{}").await;
        let base = start(store.clone(), &webhook.url).await;
        let (status, _) = post_label(&base, task.id, json!({"objects": []})).await;
        assert_eq!(status, 200);
        let event: Value = serde_json::from_slice(&webhook.received()[0].1).unwrap();
        assert_eq!(event["label"]["objects"], json!([]));
        assert!(!store.keys().contains(&keys::labeling_task(task.id)));
    }

    #[tokio::test]
    async fn a_bad_class_or_box_is_400_naming_the_problem_and_the_task_stays() {
        // GIVEN a queued 640×480 task and a webhook that would accept
        let store = Arc::new(MemoryStore::new());
        let task = queued_task(&store).await;
        let webhook = FakeWebhook::start(200, "{}").await;
        let base = start(store.clone(), &webhook.url).await;
        let ok = json!({"class": "dog", "box": {"x1": 1, "y1": 1, "x2": 20, "y2": 20}});
        let cases = [
            (
                json!({"class": "person", "box": {"x1": 1, "y1": 1, "x2": 20, "y2": 20}}),
                "unknown_class",
                "\"person\" is not an animal class",
            ),
            (
                json!({"class": "dog", "box": {"x1": 50, "y1": 1, "x2": 50, "y2": 20}}),
                "bad_box",
                "has no area",
            ),
            (
                json!({"class": "dog", "box": {"x1": 60, "y1": 1, "x2": 50, "y2": 20}}),
                "bad_box",
                "has no area",
            ),
            (
                json!({"class": "dog", "box": {"x1": 600, "y1": 1, "x2": 641, "y2": 20}}),
                "bad_box",
                "not inside the 640×480 image",
            ),
            (
                json!({"class": "dog", "box": {"x1": 1, "y1": -1, "x2": 20, "y2": 20}}),
                "bad_box",
                "not inside",
            ),
            (
                json!({"class": "dog", "box": {"x1": 1, "y1": 1, "x2": 20, "y2": 481}}),
                "bad_box",
                "not inside",
            ),
        ];
        for (bad, code, says) in cases {
            // WHEN the second object is wrong
            let (status, body) = post_label(&base, task.id, json!({"objects": [ok, bad]})).await;
            // THEN 400 names the object and the problem
            assert_eq!(status, 400, "{bad}: {body}");
            assert_eq!(body["error"]["code"], code, "{bad}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.starts_with("objects[1]: "), "{message}");
            assert!(message.contains(says), "{message}");
        }
        let (status, body) = post_label(&base, task.id, json!({"boxes": []})).await;
        assert_eq!((status, &body["error"]["code"]), (400, &json!("bad_json")));
        // ... nothing was sent and the task is still queued
        assert!(webhook.received().is_empty());
        assert!(store.keys().contains(&keys::labeling_task(task.id)));
    }

    #[tokio::test]
    async fn a_refusing_webhook_is_502_with_its_answer_and_the_task_stays() {
        for (status, answer) in [
            (401, r#"{"error":"bad signature"}"#),
            (503, r#"{"error":"S3 down"}"#),
        ] {
            // GIVEN a webhook that refuses
            let store = Arc::new(MemoryStore::new());
            let task = queued_task(&store).await;
            let webhook = FakeWebhook::start(status, answer).await;
            let base = start(store.clone(), &webhook.url).await;
            // WHEN a valid label is submitted
            let (got, body) = post_label(
                &base,
                task.id,
                json!({"objects": [{"class": "dog", "box": {"x1": 1, "y1": 1, "x2": 20, "y2": 20}}]}),
            )
            .await;
            // THEN 502 carries the webhook's status and body, and the task stays queued
            assert_eq!(got, 502, "{body}");
            assert_eq!(body["error"]["code"], "webhook_refused");
            assert_eq!(
                body["error"]["webhook"],
                json!({"status": status, "body": answer})
            );
            assert_eq!(webhook.received().len(), 1);
            assert!(store.keys().contains(&keys::labeling_task(task.id)));
        }
    }

    #[tokio::test]
    async fn an_unreachable_webhook_is_502_and_the_task_stays() {
        let store = Arc::new(MemoryStore::new());
        let task = queued_task(&store).await;
        // A port that was free a moment ago: nothing listens there.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", closed.local_addr().unwrap());
        drop(closed);
        let base = start(store.clone(), &url).await;
        let (status, body) = post_label(
            &base,
            task.id,
            json!({"objects": [{"class": "dog", "box": {"x1": 1, "y1": 1, "x2": 20, "y2": 20}}]}),
        )
        .await;
        assert_eq!(status, 502, "{body}");
        assert_eq!(body["error"]["code"], "webhook_unreachable");
        assert!(store.keys().contains(&keys::labeling_task(task.id)));
    }

    // --- who may drive the page (issue 12, item 4) ---

    const A_LABEL: &str =
        r#"{"objects": [{"class": "dog", "box": {"x1": 1, "y1": 1, "x2": 20, "y2": 20}}]}"#;

    /// One request to the page with these headers (and a label body for POST).
    async fn send(
        base: &str,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut request = reqwest::Client::new().request(method.clone(), format!("{base}{path}"));
        if method == reqwest::Method::POST {
            request = request.body(A_LABEL);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn port_of(base: &str) -> u16 {
        base.rsplit(':').next().unwrap().parse().unwrap()
    }

    #[tokio::test]
    async fn a_request_for_another_host_is_refused_so_a_rebound_name_reads_and_writes_nothing() {
        // GIVEN the page on 127.0.0.1:<port>, a task queued, a webhook that accepts
        let store = Arc::new(MemoryStore::new());
        let task = queued_task(&store).await;
        let webhook = FakeWebhook::start(200, "{}").await;
        let base = start(store.clone(), &webhook.url).await;
        let port = port_of(&base);
        let label_path = format!("/api/tasks/{}/label", task.id);
        let json_type = ("content-type", "application/json");
        for host in [
            format!("evil.example:{port}"),
            "evil.example".to_string(),
            format!("127.0.0.1:{}", port.wrapping_add(1)),
            format!("localhost.evil.example:{port}"),
        ] {
            // WHEN a page whose name was rebound to 127.0.0.1 reads the queue or posts a label
            for (method, path) in [
                (reqwest::Method::GET, "/".to_string()),
                (reqwest::Method::GET, "/api/tasks".to_string()),
                (reqwest::Method::GET, format!("/image/{}", task.id)),
                (reqwest::Method::POST, label_path.clone()),
            ] {
                let (status, body) =
                    send(&base, method.clone(), &path, &[("host", &host), json_type]).await;
                // THEN 421, in the page's JSON error shape
                assert_eq!(status, 421, "{host} {method} {path}: {body}");
                assert_eq!(body["error"]["code"], "unknown_host", "{host} {path}");
                assert!(
                    body["error"]["message"].as_str().unwrap().contains(&host),
                    "{body}"
                );
            }
        }
        // ... nothing reached the webhook and the task is still queued
        assert!(webhook.received().is_empty());
        assert!(store.keys().contains(&keys::labeling_task(task.id)));
        // AND the page's own names for itself are served
        for host in [
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("LOCALHOST:{port}"),
            format!("[::1]:{port}"),
        ] {
            let (status, body) = send(
                &base,
                reqwest::Method::GET,
                "/api/tasks",
                &[("host", &host)],
            )
            .await;
            assert_eq!(status, 200, "{host}: {body}");
        }
    }

    #[tokio::test]
    async fn a_post_from_another_origin_is_refused_and_the_task_stays() {
        // GIVEN the page, a task queued, a webhook that accepts
        let store = Arc::new(MemoryStore::new());
        let task = queued_task(&store).await;
        let webhook = FakeWebhook::start(200, "{}").await;
        let base = start(store.clone(), &webhook.url).await;
        let port = port_of(&base);
        let path = format!("/api/tasks/{}/label", task.id);
        let json_type = ("content-type", "application/json");
        let other_port = format!("http://127.0.0.1:{}", port.wrapping_add(1));
        let https = format!("https://127.0.0.1:{port}");
        let foreign_referer = "http://evil.example/page.html".to_string();
        let lookalike = format!("http://127.0.0.1:{port}.evil.example/");
        for (name, value) in [
            ("origin", "http://evil.example"),
            ("origin", "null"),
            ("origin", other_port.as_str()),
            ("origin", https.as_str()),
            // No Origin: the Referer says where the request comes from.
            ("referer", foreign_referer.as_str()),
            ("referer", lookalike.as_str()),
        ] {
            // WHEN a page elsewhere posts a label through the person's browser
            let (status, body) = send(
                &base,
                reqwest::Method::POST,
                &path,
                &[(name, value), json_type],
            )
            .await;
            // THEN 403, saying why
            assert_eq!(status, 403, "{name}: {value}: {body}");
            assert_eq!(body["error"]["code"], "foreign_origin", "{name}: {value}");
        }
        // ... nothing was signed or sent, and the task is still queued
        assert!(webhook.received().is_empty());
        assert!(store.keys().contains(&keys::labeling_task(task.id)));
        // AND the page's own origin is served
        let own = format!("http://localhost:{port}");
        let (status, body) = send(
            &base,
            reqwest::Method::POST,
            &path,
            &[("origin", &own), json_type],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(webhook.received().len(), 1);
    }

    #[tokio::test]
    async fn a_post_from_the_pages_own_referer_is_served() {
        let store = Arc::new(MemoryStore::new());
        let task = queued_task(&store).await;
        let webhook = FakeWebhook::start(200, "{}").await;
        let base = start(store.clone(), &webhook.url).await;
        let referer = format!("{base}/?task={}", task.id);
        let (status, body) = send(
            &base,
            reqwest::Method::POST,
            &format!("/api/tasks/{}/label", task.id),
            &[("referer", &referer), ("content-type", "application/json")],
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }

    #[tokio::test]
    async fn a_post_that_is_not_json_is_415_and_the_task_stays() {
        // GIVEN the page, a task queued, a webhook that accepts
        let store = Arc::new(MemoryStore::new());
        let task = queued_task(&store).await;
        let webhook = FakeWebhook::start(200, "{}").await;
        let base = start(store.clone(), &webhook.url).await;
        let path = format!("/api/tasks/{}/label", task.id);
        // WHEN a label comes as a form or plain text (what a page elsewhere can send
        // without asking first), or says no type
        for content_type in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("application/jsonp"),
            None,
        ] {
            let headers: Vec<(&str, &str)> = content_type
                .map(|t| ("content-type", t))
                .into_iter()
                .collect();
            let (status, body) = send(&base, reqwest::Method::POST, &path, &headers).await;
            // THEN 415
            assert_eq!(status, 415, "{content_type:?}: {body}");
            assert_eq!(body["error"]["code"], "unsupported_media_type");
        }
        assert!(webhook.received().is_empty());
        assert!(store.keys().contains(&keys::labeling_task(task.id)));
        // AND JSON with a charset is JSON
        let (status, body) = send(
            &base,
            reqwest::Method::POST,
            &path,
            &[("content-type", "Application/JSON; charset=utf-8")],
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }

    #[test]
    fn the_guard_names_each_own_host_once() {
        let guard = Guard::for_address("127.0.0.1:8088".parse().unwrap());
        assert_eq!(
            guard.hosts,
            ["localhost:8088", "127.0.0.1:8088", "[::1]:8088"]
        );
        let guard = Guard::for_address("127.0.0.2:80".parse().unwrap());
        assert_eq!(
            guard.hosts,
            [
                "localhost:80",
                "127.0.0.1:80",
                "[::1]:80",
                "127.0.0.2:80",
                "localhost",
                "127.0.0.1",
                "[::1]",
                "127.0.0.2"
            ]
        );
    }

    #[tokio::test]
    async fn it_listens_on_loopback_only() {
        let listener = bind("127.0.0.1:0").await.unwrap();
        assert!(listener.local_addr().unwrap().ip().is_loopback());
        for addr in ["0.0.0.0:0", "192.168.1.10:8088", "[::]:0"] {
            let e = bind(addr).await.unwrap_err().to_string();
            assert!(e.contains("loopback address only"), "{addr}: {e}");
        }
        assert!(
            bind("localhost:8088")
                .await
                .unwrap_err()
                .to_string()
                .contains("not an IP:port")
        );
    }

    #[tokio::test]
    async fn a_folder_seeds_the_in_memory_bucket_by_relative_path() {
        let dir = std::env::temp_dir().join(format!("modelobs-serve-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("labeling/queue")).unwrap();
        std::fs::write(dir.join("labeling/queue/a.json"), b"{}").unwrap();
        std::fs::write(dir.join("photo.png"), b"png").unwrap();
        let store = seeded_store(&dir).await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(store.keys(), vec!["labeling/queue/a.json", "photo.png"]);
        assert_eq!(
            store.content_type("photo.png").as_deref(),
            Some("image/png")
        );
    }
}
