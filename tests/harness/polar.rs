//! A Polar stand-in on loopback: `POST /v1/checkouts/` and `POST /v1/customer-sessions/` as
//! Polar documents them (bearer organization token, JSON bodies, 201 with the created object),
//! recording every request it was sent; and deliveries to `POST /webhooks/polar` signed as
//! Polar signs them (Standard Webhooks, keyed with the secret's UTF-8 bytes).

use std::sync::{Arc, Mutex};

use actix_web::{HttpRequest, HttpResponse, web};
use resonance_api::config::ConfigArgs;
use serde_json::{Value, json};

use crate::{Reply, TestApp, fixtures::now};

/// The organization access token the stand-in accepts.
pub const ACCESS_TOKEN: &str = "polar_oat_test_0123456789";
/// The webhook secret, as Polar's dashboard shows it (used as UTF-8 bytes, not decoded).
pub const WEBHOOK_SECRET: &str = "polar_whs_test-secret-0123456789abcdef";

/// One request the stand-in received.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
}

#[derive(Default)]
pub struct PolarState {
    pub received: Mutex<Vec<Received>>,
    /// Answer every call with this status instead (an outage).
    pub failing: Mutex<Option<u16>>,
    /// External ids of customers Polar knows (a checkout completed).
    pub customers: Mutex<Vec<String>>,
    /// Where the stand-in listens (the hosted pages' URLs start with it).
    pub base_url: Mutex<String>,
}

#[derive(Clone)]
pub struct PolarStandIn {
    pub base_url: String,
    pub state: Arc<PolarState>,
}

fn problem(status: u16, error: &str, detail: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .json(json!({"error": error, "detail": detail}))
}

async fn record(
    state: &PolarState,
    req: &HttpRequest,
    body: &web::Bytes,
) -> Result<Value, HttpResponse> {
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    state.received.lock().unwrap().push(Received {
        path: req.path().to_owned(),
        authorization: authorization.clone(),
        body: parsed.clone(),
    });
    if let Some(status) = *state.failing.lock().unwrap() {
        return Err(problem(status, "Unavailable", "the stand-in is failing"));
    }
    if authorization.as_deref() != Some(&format!("Bearer {ACCESS_TOKEN}")) {
        return Err(problem(401, "invalid_token", "unknown access token"));
    }
    if !parsed.is_object() {
        return Err(problem(
            422,
            "RequestValidationError",
            "a JSON object is required",
        ));
    }
    Ok(parsed)
}

async fn checkouts(
    state: web::Data<PolarState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let body = match record(&state, &req, &body).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let products = body["products"].as_array().cloned().unwrap_or_default();
    if products.is_empty() || !products.iter().all(Value::is_string) {
        return problem(
            422,
            "RequestValidationError",
            "products: at least one product id",
        );
    }
    let id = uuid::Uuid::now_v7();
    let secret = format!("polar_c_{}", id.simple());
    HttpResponse::Created().json(json!({
        "id": id,
        "created_at": chrono::Utc::now(),
        "modified_at": null,
        "status": "open",
        "client_secret": secret,
        "url": format!("{}/checkout/{secret}", state.base_url.lock().unwrap()),
        "expires_at": chrono::Utc::now() + chrono::Duration::hours(1),
        "success_url": body["success_url"],
        "products": products,
        "product_id": products[0],
        "external_customer_id": body["external_customer_id"],
        "customer_id": null,
    }))
}

async fn customer_sessions(
    state: web::Data<PolarState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let body = match record(&state, &req, &body).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let Some(external) = body["external_customer_id"].as_str() else {
        return problem(
            422,
            "RequestValidationError",
            "external_customer_id is required",
        );
    };
    if !state
        .customers
        .lock()
        .unwrap()
        .iter()
        .any(|c| c == external)
    {
        return problem(404, "ResourceNotFound", "Customer not found");
    }
    let token = format!("polar_cst_{}", uuid::Uuid::now_v7().simple());
    HttpResponse::Created().json(json!({
        "id": uuid::Uuid::now_v7(),
        "created_at": chrono::Utc::now(),
        "modified_at": null,
        "token": token,
        "expires_at": chrono::Utc::now() + chrono::Duration::hours(1),
        "customer_portal_url": format!(
            "{}/portal?customer_session_token={token}",
            state.base_url.lock().unwrap()
        ),
        "customer_id": uuid::Uuid::now_v7(),
    }))
}

impl PolarStandIn {
    pub fn start() -> PolarStandIn {
        let state = Arc::new(PolarState::default());
        let shared = web::Data::from(state.clone());
        let base_url = crate::serve_on_loopback(1, move |cfg| {
            cfg.app_data(shared.clone())
                .route("/v1/checkouts/", web::post().to(checkouts))
                .route("/v1/customer-sessions/", web::post().to(customer_sessions));
        });
        *state.base_url.lock().unwrap() = base_url.clone();
        PolarStandIn { base_url, state }
    }

    /// Points the App at this stand-in with billing fully configured.
    pub fn configure(&self, args: &mut ConfigArgs) {
        args.polar_access_token = Some(ACCESS_TOKEN.into());
        args.polar_api_url = self.base_url.clone();
        args.polar_webhook_secret = Some(WEBHOOK_SECRET.into());
        args.polar_timeout_secs = 2;
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    pub fn set_failing(&self, status: Option<u16>) {
        *self.state.failing.lock().unwrap() = status;
    }

    /// Polar now knows a customer with this external id (a checkout completed).
    pub fn add_customer(&self, external_id: &str) {
        self.state
            .customers
            .lock()
            .unwrap()
            .push(external_id.into());
    }
}

/// `v1,<base64 HMAC-SHA256>` over `{id}.{timestamp}.{body}`, keyed with `secret`'s UTF-8 bytes
/// (Polar's `validateEvent`).
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    // The same HMAC as Svix's; Polar keys it with the secret's UTF-8 bytes as they are.
    format!(
        "v1,{}",
        crate::webhooks::sign_with(secret.as_bytes(), id, timestamp, body)
    )
}

/// Posts `body` to `/webhooks/polar` with exactly these headers.
pub async fn post_raw(app: &TestApp, headers: &[(&str, String)], body: &str) -> Reply {
    crate::webhooks::post_raw_to(app, "/webhooks/polar", headers, body).await
}

/// Delivers `event` as Polar would: signed now, with this `webhook-id`.
pub async fn deliver(app: &TestApp, webhook_id: &str, event: &Value) -> Reply {
    let body = event.to_string();
    let ts = now();
    post_raw(
        app,
        &[
            ("webhook-id", webhook_id.into()),
            ("webhook-timestamp", ts.to_string()),
            (
                "webhook-signature",
                sign(WEBHOOK_SECRET, webhook_id, ts, &body),
            ),
        ],
        &body,
    )
    .await
}

/// Delivers `event` under a fresh `webhook-id` and expects 200 with `outcome`.
pub async fn deliver_ok(app: &TestApp, event: &Value, outcome: &str) {
    let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
    let reply = deliver(app, &id, event).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["outcome"], outcome, "{event}");
}

/// What a subscription event says, with Polar's field names.
#[derive(Clone, Debug)]
pub struct Subscription {
    pub id: String,
    pub workspace: String,
    pub product_id: String,
    pub status: String,
    /// Seconds from now (negative: in the past).
    pub period_end_in: i64,
    pub cancel_at_period_end: bool,
    pub ends_in: Option<i64>,
    pub ended_ago: Option<i64>,
    /// `modified_at`, unix seconds.
    pub modified_at: i64,
}

impl Subscription {
    pub fn active(workspace: &str, product_id: &str, modified_at: i64) -> Subscription {
        Subscription {
            id: "sub_1".into(),
            workspace: workspace.into(),
            product_id: product_id.into(),
            status: "active".into(),
            period_end_in: 30 * 86_400,
            cancel_at_period_end: false,
            ends_in: None,
            ended_ago: None,
            modified_at,
        }
    }

    /// The event `kind` (`subscription.active`, …) about this subscription.
    pub fn event(&self, kind: &str) -> Value {
        let at = |secs: i64| chrono::DateTime::from_timestamp(secs, 0).unwrap();
        let now = now();
        json!({
            "type": kind,
            "timestamp": chrono::Utc::now(),
            "data": {
                "id": self.id,
                "created_at": at(self.modified_at - 3600),
                "modified_at": at(self.modified_at),
                "amount": 2000,
                "currency": "usd",
                "recurring_interval": "month",
                "status": self.status,
                "current_period_start": at(now - 86_400),
                "current_period_end": at(now + self.period_end_in),
                "cancel_at_period_end": self.cancel_at_period_end,
                "canceled_at": null,
                "started_at": at(self.modified_at - 3600),
                "ends_at": self.ends_in.map(|s| at(now + s)),
                "ended_at": self.ended_ago.map(|s| at(now - s)),
                "customer_id": "cus_polar_1",
                "product_id": self.product_id,
                "discount_id": null,
                "checkout_id": null,
                "metadata": {},
                "customer": {
                    "id": "cus_polar_1",
                    "external_id": self.workspace,
                    "email": "billing@example.com",
                    "metadata": {}
                },
                "product": {"id": self.product_id, "name": "Plan", "is_recurring": true}
            }
        })
    }
}
