//! The two calls this service makes to the Polar API: create a checkout session and create a
//! customer session (the customer portal), both for the workspace's external customer id.
//!
//! Failures a retry may cure (no answer within `POLAR_TIMEOUT_SECS`, a connection refused, a
//! 429 or 5xx from Polar) answer 503 `billing_unavailable` with `Retry-After`; an answer that
//! says our request or credentials are wrong is logged and answers 502 `upstream_failed`.

use std::time::Duration;

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use crate::{config::BillingConfig, error::ApiError};

/// How long a client waits before retrying when Polar cannot be reached.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The Polar API client; calls fail with 503 `billing_not_configured` without an access token.
pub struct Polar {
    http: reqwest::Client,
    api_url: String,
    access_token: Option<String>,
}

#[derive(Serialize)]
struct CreateCheckout<'a> {
    products: &'a [String],
    external_customer_id: &'a str,
    success_url: &'a str,
}

#[derive(Deserialize)]
struct Checkout {
    url: String,
}

#[derive(Serialize)]
struct CreateCustomerSession<'a> {
    external_customer_id: &'a str,
}

#[derive(Deserialize)]
struct CustomerSession {
    customer_portal_url: String,
}

fn unavailable(detail: impl Into<String>) -> ApiError {
    ApiError::Unavailable {
        code: "billing_unavailable",
        detail: detail.into(),
        retry_after: Some(RETRY_AFTER),
    }
}

fn upstream_failed() -> ApiError {
    ApiError::BadGateway {
        detail: "the billing provider refused the request; the operator has been told".into(),
    }
}

impl Polar {
    pub fn new(config: &BillingConfig) -> anyhow::Result<Polar> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .build()?;
        Ok(Polar {
            http,
            api_url: config.api_url.clone(),
            access_token: config.access_token.clone(),
        })
    }

    /// True when `POLAR_ACCESS_TOKEN` is set.
    pub fn is_configured(&self) -> bool {
        self.access_token.is_some()
    }

    /// 503 `billing_not_configured` unless billing is configured.
    pub fn require_configured(&self) -> Result<(), ApiError> {
        if self.is_configured() {
            Ok(())
        } else {
            Err(ApiError::Unavailable {
                code: "billing_not_configured",
                detail: "billing is not configured on this server (POLAR_ACCESS_TOKEN)".into(),
                retry_after: None,
            })
        }
    }

    /// Creates a checkout session for `products` (the plan's Polar products) on behalf of the
    /// workspace; returns the hosted checkout's URL.
    pub async fn create_checkout(
        &self,
        products: &[String],
        workspace: &str,
        success_url: &str,
    ) -> Result<String, ApiError> {
        let body = CreateCheckout {
            products,
            external_customer_id: workspace,
            success_url,
        };
        let checkout: Checkout = self.post("/v1/checkouts/", &body, |_| None).await?;
        Ok(checkout.url)
    }

    /// Creates a customer session for the workspace; returns its customer portal URL. 404
    /// `no_billing_account` when Polar has no customer with this external id (no checkout was
    /// ever completed).
    pub async fn create_portal_session(&self, workspace: &str) -> Result<String, ApiError> {
        let body = CreateCustomerSession {
            external_customer_id: workspace,
        };
        let session: CustomerSession = self
            .post("/v1/customer-sessions/", &body, |status| {
                (status == StatusCode::NOT_FOUND || status == StatusCode::UNPROCESSABLE_ENTITY)
                    .then(no_billing_account)
            })
            .await?;
        Ok(session.customer_portal_url)
    }

    /// POSTs `body` as JSON; `refusal` may turn a 4xx into an answer of the caller's.
    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
        refusal: impl Fn(StatusCode) -> Option<ApiError>,
    ) -> Result<T, ApiError> {
        self.require_configured()?;
        let token = self.access_token.as_deref().unwrap_or_default();
        let url = format!("{}{path}", self.api_url);
        let response = self
            .http
            .post(&url)
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .map_err(|err| {
                tracing::warn!(error = %err, %url, "the Polar API cannot be reached");
                unavailable(
                    "the billing provider cannot be reached; retry after the Retry-After delay",
                )
            })?;
        let status = response.status();
        if status.is_success() {
            return response.json::<T>().await.map_err(|err| {
                tracing::error!(error = %err, %url, "unexpected answer from the Polar API");
                upstream_failed()
            });
        }
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            tracing::warn!(%status, %url, "the Polar API is unavailable");
            return Err(unavailable(
                "the billing provider is unavailable; retry after the Retry-After delay",
            ));
        }
        if let Some(answer) = refusal(status) {
            return Err(answer);
        }
        let text = response.text().await.unwrap_or_default();
        let text: String = text.chars().take(500).collect();
        tracing::error!(%status, %url, body = %text, "the Polar API refused a request");
        Err(upstream_failed())
    }
}

/// 404 `no_billing_account`: the workspace has never completed a checkout.
pub fn no_billing_account() -> ApiError {
    ApiError::Absent {
        code: "no_billing_account",
        detail: "this workspace has no billing account yet: complete a checkout first".into(),
    }
}
