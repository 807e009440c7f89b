//! The clients: RFC 7591 registration (`POST /oauth/register`) and finding
//! the client behind a `client_id` (a registration, or a Client ID Metadata
//! Document). The rules for what a client may register are in clients.rs.

use std::net::IpAddr;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::clients::{Client, Registration, RegistrationError};
use super::flow::{MAX_FORM, now_secs};
use super::idp::random_token;
use super::respond::{OAuthError, error_page, json_ok};
use super::store::Space;
use super::{AuthorizationServer, cimd};
use crate::body::{self, Body};

impl AuthorizationServer {
    /// RFC 7591 registration.
    pub(super) async fn register(&self, req: Request<Incoming>, peer: IpAddr) -> Response<Body> {
        match self.register_inner(req, peer).await {
            Ok(resp) => resp,
            Err(e) => {
                self.metrics.auth_server_event("register", "refused");

                tracing::info!(target: "mcp_auth_gateway::audit", event = "register", outcome = "refused", error = e.code(), detail = e.description());
                e.into_response()
            }
        }
    }

    async fn register_inner(
        &self,
        req: Request<Incoming>,
        peer: IpAddr,
    ) -> Result<Response<Body>, OAuthError> {
        if !self.config.dynamic_registration {
            return Err(OAuthError::invalid_request("dynamic registration is off"));
        }
        // Per client network (IPv6 /64), counted atomically in this process.
        // Behind a proxy every client shares the proxy's address: size the
        // limit for that, or register clients ahead of time.
        self.limits
            .register
            .check(peer)
            .map_err(|_| OAuthError::too_many_requests())?;
        let bytes = body::read_capped(req.into_body(), MAX_FORM, Duration::from_secs(10))
            .await
            .map_err(|e| OAuthError::invalid_client_metadata(e.to_string()))?;
        let registration: Registration = serde_json::from_slice(&bytes).map_err(|e| {
            OAuthError::invalid_client_metadata(format!("not a registration request: {e}"))
        })?;
        // Never `https://…`: that shape is a CIMD client id.
        let id = random_token(16).map_err(|_| OAuthError::unavailable("random source failed"))?;
        let client_id = format!("mcpgw-{id}");
        let client = registration
            .into_client(client_id.clone())
            .map_err(|e| match e {
                RegistrationError::RedirectUri(d) => OAuthError::invalid_redirect_uri(d),
                RegistrationError::Metadata(d) => OAuthError::invalid_client_metadata(d),
            })?;
        let record =
            serde_json::to_vec(&client).map_err(|e| OAuthError::unavailable(e.to_string()))?;
        let fresh = self
            .store
            .put_new(Space::Client, &client_id, record, Self::client_ttl())
            .await
            .map_err(|e| OAuthError::unavailable(e.to_string()))?;
        if !fresh {
            return Err(OAuthError::unavailable("client id collision; retry"));
        }
        self.metrics.auth_server_event("register", "registered");

        tracing::info!(target: "mcp_auth_gateway::audit", event = "register", outcome = "registered", client_id = %client_id, redirect_uris = ?client.redirect_uris);
        let mut resp = json_ok(&serde_json::json!({
            "client_id": client.client_id,
            "client_id_issued_at": now_secs(),
            "client_name": client.client_name,
            "redirect_uris": client.redirect_uris,
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        }));
        *resp.status_mut() = StatusCode::CREATED;
        Ok(resp)
    }

    /// The client behind `client_id`: a metadata document (an https URL,
    /// when CIMD is on) or a registration. Errors are pages.
    pub(super) async fn client(&self, client_id: &str) -> Result<Client, Response<Body>> {
        if cimd::is_document_url(client_id) {
            let Some(documents) = &self.cimd else {
                return Err(error_page(
                    StatusCode::BAD_REQUEST,
                    "Unknown application",
                    "This server does not accept client metadata documents; the application must register.",
                ));
            };
            return match documents.client(client_id).await {
                Ok(client) => Ok((*client).clone()),
                Err(e) => {
                    self.metrics
                        .auth_server_event("authorize", "client_refused");

                    tracing::info!(target: "mcp_auth_gateway::audit", event = "authorize", outcome = "client_refused", client_id, error = %e);
                    Err(error_page(
                        StatusCode::BAD_REQUEST,
                        "Application not accepted",
                        &e.public(),
                    ))
                }
            };
        }
        match self.load::<Client>(Space::Client, client_id).await {
            Ok(Some(c)) => Ok(c),
            Ok(None) => Err(error_page(
                StatusCode::BAD_REQUEST,
                "Unknown application",
                "This application is not registered here (or its registration expired).",
            )),
            Err(e) => Err(error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in unavailable",
                e.description(),
            )),
        }
    }
}
