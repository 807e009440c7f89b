//! The gateway's lifecycle state, beside the orchestrator: the config
//! snapshot (swapped whole on reload, loaded once per request), what outlives
//! reloads (upstream client, metrics, admission state, the fallback session
//! key), readiness and drain, and request ids.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::authn::Authenticator;
use crate::authserver::AuthorizationServer;
use crate::config::{Config, StoreSetting};
use crate::forward::HttpClient;
use crate::session::SessionBinder;
use crate::telemetry::metrics::Metrics;
use crate::throttle::Throttle;
use crate::well_known::Readiness;

/// How often idle rate-limiter keys are pruned.
const HOUSEKEEPING: Duration = Duration::from_secs(30);

/// Everything derived from one config: swapped whole on reload, loaded once
/// per request.
pub struct Snapshot {
    /// The validated config.
    pub config: Arc<Config>,
    pub(super) authn: Authenticator,
    pub(super) sessions: SessionBinder,
    pub(super) throttle: Arc<Throttle>,
    /// The built-in authorization server, when configured.
    pub(super) authserver: Option<AuthorizationServer>,
}

/// The gateway: the current snapshot and what outlives reloads.
pub struct Gateway {
    pub(super) snapshot: ArcSwap<Snapshot>,
    client: HttpClient,
    pub(super) metrics: Arc<Metrics>,
    /// Set on SIGTERM: `/readyz` fails from then on.
    draining: AtomicBool,
    /// Used when `session_binding.key` is not set; kept across reloads so
    /// sessions survive them.
    fallback_session_key: [u8; 32],
    next_request_id: AtomicU64,
    request_id_prefix: u32,
}

impl Gateway {
    /// Builds the gateway and starts its background tasks (key refresh,
    /// limiter housekeeping). Fails only when the system random number
    /// generator does: the fallback session key must never be all zeros.
    pub async fn start(
        config: Arc<Config>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, StartError> {
        let client = crate::http_client::build(config.limits.upstream_connect_timeout);
        let (fallback_session_key, prefix) =
            random_keys(aws_lc_rs::rand::fill).map_err(|_| StartError::Random)?;
        let snapshot =
            build_snapshot(config, &client, &metrics, None, &fallback_session_key).await?;
        let gateway = Arc::new(Self {
            snapshot: ArcSwap::from_pointee(snapshot),
            client,
            metrics,
            draining: AtomicBool::new(false),
            fallback_session_key,
            next_request_id: AtomicU64::new(0),
            request_id_prefix: u32::from_be_bytes(prefix),
        });
        let weak = Arc::downgrade(&gateway);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(HOUSEKEEPING).await;
                match weak.upgrade() {
                    Some(g) => g.snapshot.load().throttle.housekeeping(),
                    None => return,
                }
            }
        });
        Ok(gateway)
    }

    /// Swaps in a snapshot built from `config`. Requests in flight keep the
    /// snapshot they started with; open streams are untouched. Issuers whose
    /// config is unchanged keep their loaded keys; new ones are given up to
    /// their fetch timeout to load before the swap.
    pub async fn reload(&self, config: Config) {
        let config = Arc::new(config);
        let old = self.snapshot.load_full();
        let next = match build_snapshot(
            config.clone(),
            &self.client,
            &self.metrics,
            Some(&old),
            &self.fallback_session_key,
        )
        .await
        {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(error = %e, "config reload rejected; keeping the running config");
                return;
            }
        };
        let deadline =
            Instant::now() + config.limits.jwks_fetch_timeout + Duration::from_millis(500);
        while !next.authn.ready() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !next.authn.ready() {
            tracing::warn!(
                "reloaded config has issuers whose keys are not loaded yet; their tokens get 503 until they are"
            );
        }
        if config.listen != old.config.listen || config.tls.is_some() != old.config.tls.is_some() {
            tracing::warn!("`listen` and `tls` are read at start only; restart to change them");
        }
        if config.tracing != old.config.tracing {
            tracing::warn!("`telemetry.tracing` is read at start only; restart to change it");
        }
        self.snapshot.store(Arc::new(next));
    }

    /// The config currently in force.
    pub fn config(&self) -> Arc<Config> {
        self.snapshot.load().config.clone()
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Stops reporting ready (SIGTERM): load balancers stop sending new work.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether the gateway should receive traffic: not draining, and every
    /// issuer has keys.
    pub fn ready(&self) -> bool {
        self.readiness().ready()
    }

    /// What `/readyz` reports: draining, keys, and each Redis connection.
    pub fn readiness(&self) -> Readiness {
        let snap = self.snapshot.load();
        let config = &snap.config;
        let uses_redis_store = config
            .authorization_server
            .as_ref()
            .is_some_and(|a| matches!(a.store, StoreSetting::Redis(_)));
        let roles = [
            ("limits", config.rate_limits.shared.is_some()),
            ("store", uses_redis_store),
        ];
        Readiness {
            draining: self.draining.load(Ordering::SeqCst),
            keys: snap.authn.ready(),
            redis: roles
                .into_iter()
                .filter(|(_, used)| *used)
                .map(|(role, _)| (role, self.metrics.redis_gauge(role).get() == 1))
                .collect(),
        }
    }

    /// A process-unique request id (random prefix + counter).
    pub fn request_id(&self) -> String {
        let n = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}-{n:08x}", self.request_id_prefix)
    }
}

/// The fallback session key and the request-id prefix, from `fill` (the
/// system RNG); its failure is the caller's error, never a zero key.
fn random_keys(
    fill: impl Fn(&mut [u8]) -> Result<(), aws_lc_rs::error::Unspecified>,
) -> Result<([u8; 32], [u8; 4]), aws_lc_rs::error::Unspecified> {
    let mut key = [0u8; 32];
    fill(&mut key)?;
    let mut prefix = [0u8; 4];
    fill(&mut prefix)?;
    Ok((key, prefix))
}

/// Builds a snapshot; `previous` lends its loaded key stores and, for a
/// generated session key, continuity.
async fn build_snapshot(
    config: Arc<Config>,
    client: &HttpClient,
    metrics: &Arc<Metrics>,
    previous: Option<&Snapshot>,
    fallback_session_key: &[u8; 32],
) -> Result<Snapshot, StartError> {
    let authserver = AuthorizationServer::start(
        &config,
        client.clone(),
        metrics.clone(),
        previous.and_then(|p| p.authserver.as_ref()),
    )
    .await?;
    let authn = Authenticator::start(
        &config,
        client.clone(),
        metrics.clone(),
        previous.map(|p| &p.authn),
        authserver.as_ref().map(AuthorizationServer::public_keys),
    );
    let sessions = match &config.session_key {
        Some(key) => SessionBinder::new(&key.0),
        None => {
            if previous.is_none() {
                tracing::warn!(
                    "session_binding.key is not set: using a random key, so session ids \
                     do not survive a restart and do not work across replicas"
                );
            }
            SessionBinder::new(fallback_session_key)
        }
    };
    // Admission state outlives reloads: budgets and open streams carry over.
    let throttle = Arc::new(match previous {
        Some(p) => p
            .throttle
            .reconfigured(&config.rate_limits, config.limits.max_streams_per_principal),
        None => Throttle::new(&config.rate_limits, config.limits.max_streams_per_principal),
    });
    throttle.report_redis(metrics.redis_gauge("limits"));
    Ok(Snapshot {
        config,
        authn,
        sessions,
        throttle,
        authserver,
    })
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The system random number generator failed: no session key or request
    /// id prefix can be made (never an all-zero key).
    #[error("the system random number generator failed; refusing to start without a random key")]
    Random,
    /// The built-in authorization server could not start.
    #[error(transparent)]
    AuthServer(#[from] crate::authserver::StartError),
}

#[cfg(test)]
mod tests {
    use super::random_keys;

    #[test]
    fn a_failing_rng_is_an_error_not_a_zero_key() {
        let failing = |_: &mut [u8]| Err(aws_lc_rs::error::Unspecified);
        assert!(random_keys(failing).is_err());
        let (key, _) = random_keys(aws_lc_rs::rand::fill).unwrap();
        assert_ne!(key, [0u8; 32]);
    }
}
