//! The query listener's routes: Jaeger's HTTP JSON API (what Jaeger UI and
//! Grafana's Jaeger data source call), Jaeger's v3 API, kausal's own object
//! questions, and the viewer.
//!
//! Every answer names users and objects of the cluster: when the listener
//! is not on loopback, [`QueryState::auth`] holds the webhook's
//! authentication and every route requires it.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json};
use serde::Serialize;
use serde_json::json;

use super::jaeger::{self, Response as Envelope, StructuredError};
use super::objects::{self, Question};
use super::params::{self, ParamError};
use super::{otlp_v3, viewer};
use crate::sources::auth::Auth;
use crate::sources::listener::ConnectionInfo;
use crate::store::{Store, StoreError, TraceQuery};

pub struct QueryState {
    pub store: Arc<Store>,
    /// `None`: nothing to check (loopback, or `--insecure-no-auth`).
    pub auth: Option<Auth>,
    /// "Now" for searches without an end (µs since the epoch): the wall
    /// clock for a server, the recording's end for `kausal view`.
    pub now_us: Arc<dyn Fn() -> i64 + Send + Sync>,
}

pub fn router(state: Arc<QueryState>) -> Router {
    Router::new()
        .route("/api/services", get(services))
        .route("/api/services/{service}/operations", get(service_operations))
        .route("/api/operations", get(operations))
        .route("/api/traces", get(find_traces))
        .route("/api/traces/{id}", get(get_trace))
        .route("/api/v3/services", get(v3_services))
        .route("/api/v3/operations", get(v3_operations))
        .route("/api/v3/traces", get(v3_find_traces))
        .route("/api/v3/traces/{id}", get(v3_get_trace))
        .route("/api/kausal/intents", get(intents))
        .route("/api/kausal/objects", get(find_objects))
        .route("/api/kausal/objects/{uid}/history", get(object_history))
        .route("/api/kausal/objects/{uid}/why", get(object_why))
        .merge(viewer::router())
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

async fn authenticate(
    State(state): State<Arc<QueryState>>,
    connection: Option<Extension<ConnectionInfo>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(auth) = &state.auth else { return next.run(request).await };
    match auth.admit(connection.map(|Extension(c)| c), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(why) => {
            let mut response = (StatusCode::UNAUTHORIZED, Json(json!({ "error": why }))).into_response();
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}

/// What a handler can fail with, answered in Jaeger's error envelope.
enum ApiError {
    BadRequest(String),
    NotFound(String),
    Store(StoreError),
}

impl From<ParamError> for ApiError {
    fn from(e: ParamError) -> Self {
        ApiError::BadRequest(e.0)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::BadQuery(m) => ApiError::BadRequest(m),
            other => ApiError::Store(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, msg) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::Store(e) => {
                tracing::error!(error = %e, "query failed");
                (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        };
        let errors = vec![StructuredError { code: status.as_u16(), msg, trace_id: None }];
        let body = Envelope { data: serde_json::Value::Null, total: 0, limit: 0, offset: 0, errors: Some(errors) };
        (status, Json(body)).into_response()
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// Runs a store call on a blocking thread: SQLite calls block.
async fn blocking<T: Send + 'static>(
    state: &Arc<QueryState>,
    f: impl FnOnce(&Store) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| ApiError::Store(StoreError::BadQuery(format!("query task failed: {e}"))))?
}

async fn services(State(state): State<Arc<QueryState>>) -> ApiResult<Envelope<Vec<String>>> {
    let services = blocking(&state, |s| Ok(s.services()?)).await?;
    let total = services.len();
    Ok(Json(Envelope::new(services, total)))
}

async fn service_operations(
    State(state): State<Arc<QueryState>>,
    Path(service): Path<String>,
) -> ApiResult<Envelope<Vec<String>>> {
    let ops = blocking(&state, move |s| Ok(s.operations(Some(&service))?)).await?;
    let names: Vec<String> = ops.into_iter().map(|(_, op)| op).collect();
    let total = names.len();
    Ok(Json(Envelope::new(names, total)))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Operation {
    name: String,
    span_kind: &'static str,
}

/// `/api/operations?service=`: kausal's spans are all of kind internal.
/// The operations of `?service=` (all services' without it), for both APIs.
async fn operation_list(state: &Arc<QueryState>, raw: Option<&str>) -> Result<Vec<Operation>, ApiError> {
    let pairs = params::pairs(raw);
    let service = pairs.iter().find(|(k, _)| k == "service").map(|(_, v)| v.clone());
    let ops = blocking(state, move |s| Ok(s.operations(service.as_deref())?)).await?;
    Ok(ops.into_iter().map(|(_, name)| Operation { name, span_kind: "internal" }).collect())
}

async fn operations(
    State(state): State<Arc<QueryState>>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Envelope<Vec<Operation>>> {
    let ops = operation_list(&state, raw.as_deref()).await?;
    let total = ops.len();
    Ok(Json(Envelope::new(ops, total)))
}

async fn find_traces(
    State(state): State<Arc<QueryState>>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Envelope<Vec<jaeger::Trace>>> {
    let (query, ids) = params::jaeger_search(&params::pairs(raw.as_deref()), (state.now_us)())?;
    let traces = blocking(&state, move |s| {
        let ids = if ids.is_empty() { s.find_traces(&query)? } else { ids };
        let mut traces = Vec::with_capacity(ids.len());
        for id in ids {
            let spans = s.trace(&id)?;
            if !spans.is_empty() {
                traces.push(jaeger::trace(&id, &spans));
            }
        }
        Ok(traces)
    })
    .await?;
    let total = traces.len();
    Ok(Json(Envelope::new(traces, total)))
}

async fn get_trace(
    State(state): State<Arc<QueryState>>,
    Path(id): Path<String>,
) -> ApiResult<Envelope<Vec<jaeger::Trace>>> {
    let id = id.to_ascii_lowercase();
    let spans = blocking(&state, {
        let id = id.clone();
        move |s| Ok(s.trace(&id)?)
    })
    .await?;
    if spans.is_empty() {
        return Err(ApiError::NotFound("trace not found".into()));
    }
    Ok(Json(Envelope::new(vec![jaeger::trace(&id, &spans)], 1)))
}

async fn v3_services(State(state): State<Arc<QueryState>>) -> ApiResult<serde_json::Value> {
    let services = blocking(&state, |s| Ok(s.services()?)).await?;
    Ok(Json(json!({ "services": services })))
}

async fn v3_operations(State(state): State<Arc<QueryState>>, RawQuery(raw): RawQuery) -> ApiResult<serde_json::Value> {
    let ops = operation_list(&state, raw.as_deref()).await?;
    Ok(Json(json!({ "operations": ops })))
}

async fn v3_find_traces(State(state): State<Arc<QueryState>>, RawQuery(raw): RawQuery) -> ApiResult<serde_json::Value> {
    let query = params::v3_search(&params::pairs(raw.as_deref()), (state.now_us)())?;
    let spans = blocking(&state, move |s| {
        let mut spans = Vec::new();
        for id in s.find_traces(&query)? {
            spans.extend(s.trace(&id)?);
        }
        Ok(spans)
    })
    .await?;
    Ok(Json(json!({ "result": otlp_v3::traces_data(&spans) })))
}

async fn v3_get_trace(State(state): State<Arc<QueryState>>, Path(id): Path<String>) -> Response {
    let id = id.to_ascii_lowercase();
    match blocking(&state, move |s| Ok(s.trace(&id)?)).await {
        Ok(spans) if spans.is_empty() => {
            (StatusCode::NOT_FOUND, Json(json!({ "error": { "httpCode": 404, "message": "trace not found" } })))
                .into_response()
        }
        Ok(spans) => Json(json!({ "result": otlp_v3::traces_data(&spans) })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `/api/kausal/intents`: the newest traces' roots and sizes, narrowed by
/// `namespace`, `object`, `user`, `service` (the controller), `start`,
/// `end` (µs) and `limit`.
async fn intents(State(state): State<Arc<QueryState>>, RawQuery(raw): RawQuery) -> ApiResult<serde_json::Value> {
    let pairs = params::pairs(raw.as_deref());
    let get = |k: &str| params::first(&pairs, k).map(str::to_owned);
    let mut tags = Vec::new();
    for (param, tag) in [("namespace", "k8s.namespace.name"), ("object", "k8s.object.name"), ("user", "user.name")] {
        if let Some(v) = get(param) {
            tags.push((tag.to_owned(), v));
        }
    }
    let micros = |k: &str| -> Result<Option<i64>, ApiError> {
        get(k).map(|v| v.parse().map_err(|_| ApiError::BadRequest(format!("{k} `{v}`: expected µs")))).transpose()
    };
    let limit = match get("limit") {
        Some(v) => v.parse().map_err(|_| ApiError::BadRequest(format!("limit `{v}`: not a number")))?,
        None => 50usize,
    };
    let query = TraceQuery {
        service: get("service"),
        tags,
        start_us: micros("start")?,
        end_us: micros("end")?,
        // Narrowed by an object, a user or an actor, any span of the trace
        // may match; otherwise the list is of intents (`roots=all`: and of
        // the traces controllers started, and orphan Events).
        roots: if get("object").is_some() || get("user").is_some() || get("service").is_some() {
            Vec::new()
        } else if get("roots").as_deref() == Some("all") {
            ["intent", "automation", "controller", "orphan-event"].map(str::to_owned).to_vec()
        } else {
            ["intent", "automation"].map(str::to_owned).to_vec()
        },
        limit: limit.clamp(1, params::MAX_LIMIT),
        ..Default::default()
    };
    let summaries = blocking(&state, move |s| {
        let ids = s.find_traces(&query)?;
        Ok(s.summaries(&ids)?)
    })
    .await?;
    Ok(Json(json!({ "data": summaries })))
}

/// `/api/kausal/objects?kind=pod&namespace=default&name=web-1`.
async fn find_objects(State(state): State<Arc<QueryState>>, RawQuery(raw): RawQuery) -> ApiResult<serde_json::Value> {
    let pairs = params::pairs(raw.as_deref());
    let get = |k: &str| params::first(&pairs, k).map(str::to_owned);
    let (Some(kind), Some(name)) = (get("kind"), get("name")) else {
        return Err(ApiError::BadRequest("kind and name are required (and namespace for namespaced kinds)".into()));
    };
    let namespace = get("namespace");
    let found = blocking(&state, move |s| Ok(objects::find(s, &kind, namespace.as_deref(), &name)?)).await?;
    Ok(Json(json!({ "data": found })))
}

async fn object_history(State(state): State<Arc<QueryState>>, Path(uid): Path<String>) -> ApiResult<serde_json::Value> {
    let history = blocking(&state, move |s| Ok(objects::history(s, known_object(s, &uid)?)?)).await?;
    Ok(Json(json!({ "data": history })))
}

/// `/api/kausal/objects/{uid}/why?question=exists|gone`.
async fn object_why(
    State(state): State<Arc<QueryState>>,
    Path(uid): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<serde_json::Value> {
    let pairs = params::pairs(raw.as_deref());
    let question = match pairs.iter().find(|(k, _)| k == "question").map(|(_, v)| v.as_str()) {
        None | Some("exists") => Question::Exists,
        Some("gone") => Question::Gone,
        Some(other) => return Err(ApiError::BadRequest(format!("question `{other}`: use exists or gone"))),
    };
    let why = blocking(&state, move |s| Ok(objects::why(s, known_object(s, &uid)?, question)?)).await?;
    Ok(Json(json!({ "data": why })))
}

fn known_object(store: &Store, uid: &str) -> Result<crate::store::ObjectRef, ApiError> {
    objects::object(store, uid)?.ok_or_else(|| ApiError::NotFound(format!("no span is about object {uid}")))
}
