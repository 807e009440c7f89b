//! Admission control: rate limits (per principal, per principal and tool,
//! and per client IP on the unauthenticated path) and the cap on concurrent
//! streams per principal.
//!
//! Limiters are `governor` keyed GCRA limiters. Their key maps only grow, so a
//! housekeeping pass drops keys that are back to a fresh state, and the
//! unauthenticated limiter keys IPv6 clients by /64 so that address rotation
//! cannot grow memory without bound. Refusals are 429 with `Retry-After`.
//!
//! The state outlives config reloads ([`Throttle::reconfigured`]): a limiter
//! whose rate did not change is kept with its budgets, and open-stream
//! counts are always kept, with the new cap applied to them. A SIGHUP never
//! refills a budget or frees a stream slot. (A limiter whose rate changed
//! starts afresh: GCRA state under one rate means nothing under another.)

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::authn::{AuthnError, Principal};
use crate::config::{OnRedisError, Rate, RateLimitConfig, SharedLimits};

mod shared;

pub use shared::connect as redis_connect;
use shared::{Lease, Shared, Verdict};

/// Why a request is not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Throttled {
    /// A rate limit is exhausted; retry after this many seconds.
    #[error("rate limit exceeded")]
    Rate {
        /// Seconds until a retry may succeed (at least 1).
        retry_after: u64,
    },
    /// The principal already has the maximum number of open streams.
    #[error("too many concurrent streams")]
    Streams,
    /// The shared limits cannot be asked and `on_redis_error` is `deny`.
    #[error("rate limits are unavailable")]
    Unavailable,
}

/// All admission state of the gateway.
pub struct Throttle {
    per_principal: Option<Limiter<String>>,
    per_tool: HashMap<String, Limiter<String>>,
    unauthenticated: Limiter<IpAddr>,
    max_keys: usize,
    streams: Arc<Mutex<HashMap<String, usize>>>,
    max_streams: usize,
    clock: DefaultClock,
    /// Budgets shared by replicas, when `shared_state` is set.
    shared: Option<(SharedLimits, Arc<Shared>)>,
}

/// A keyed limiter and the rate it was built for, shared across reloads.
struct Limiter<K: std::hash::Hash + Eq + Clone> {
    rate: Rate,
    state: Arc<DefaultKeyedRateLimiter<K>>,
}

impl<K: std::hash::Hash + Eq + Clone> Limiter<K> {
    /// A limiter for `rate`: `previous` itself when its rate is the same.
    fn keep_or_build(rate: &Rate, previous: Option<&Limiter<K>>) -> Self {
        match previous {
            Some(p) if p.rate == *rate => Self {
                rate: p.rate.clone(),
                state: p.state.clone(),
            },
            _ => Self {
                rate: rate.clone(),
                state: Arc::new(RateLimiter::keyed(quota(rate))),
            },
        }
    }
}

fn quota(rate: &Rate) -> Quota {
    let per_one = rate.period / rate.count.get();
    Quota::with_period(per_one.max(Duration::from_nanos(1)))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(rate.burst)
}

impl Throttle {
    /// Builds the limiters from config.
    pub fn new(config: &RateLimitConfig, max_streams: usize) -> Self {
        Self::build(config, max_streams, None)
    }

    /// The admission state for a reloaded config: unchanged limiters keep
    /// their budgets, and open streams stay counted under the new cap.
    pub fn reconfigured(&self, config: &RateLimitConfig, max_streams: usize) -> Self {
        Self::build(config, max_streams, Some(self))
    }

    fn build(config: &RateLimitConfig, max_streams: usize, previous: Option<&Throttle>) -> Self {
        Self {
            per_principal: config.per_principal.as_ref().map(|r| {
                Limiter::keep_or_build(r, previous.and_then(|p| p.per_principal.as_ref()))
            }),
            per_tool: config
                .tools
                .iter()
                .map(|(tool, r)| {
                    let old = previous.and_then(|p| p.per_tool.get(tool));
                    (tool.clone(), Limiter::keep_or_build(r, old))
                })
                .collect(),
            unauthenticated: Limiter::keep_or_build(
                &config.unauthenticated_per_ip,
                previous.map(|p| &p.unauthenticated),
            ),
            max_keys: config.max_keys,
            streams: previous.map_or_else(Arc::default, |p| p.streams.clone()),
            max_streams,
            clock: DefaultClock::default(),
            // The connection outlives reloads that keep the same settings.
            shared: config.shared.as_ref().and_then(|settings| {
                let kept = previous
                    .and_then(|p| p.shared.as_ref())
                    .filter(|(s, _)| s == settings)
                    .map(|(_, shared)| shared.clone());
                let shared = kept.or_else(|| match Shared::open(settings) {
                    Ok(shared) => Some(Arc::new(shared)),
                    Err(e) => {
                        tracing::error!(error = %e, "shared_state.redis cannot be used; limits are per replica");
                        None
                    }
                })?;
                Some((settings.clone(), shared))
            }),
        }
    }

    /// Admits one request as [`Throttle::admit`] does, against the budgets
    /// shared by every replica when `shared_state` is set.
    pub async fn admit_everywhere(
        &self,
        principal: &Principal,
        tools: &[&str],
    ) -> Result<(), Throttled> {
        let Some((_, shared)) = &self.shared else {
            return self.admit(principal, tools.iter().copied());
        };
        // This replica's own budgets first, so a caller far over its rate
        // costs no round trip: the shared budgets count this replica's
        // requests and the others'. (A request the shared budgets then
        // refuse has spent the local ones, so a caller that went over its
        // rate may wait up to one more interval at this replica: stricter,
        // never looser.)
        self.admit(principal, tools.iter().copied())?;
        // Redis sees a digest of the principal, never its identity.
        let who = digest(&key(principal));
        let mut budgets = Vec::with_capacity(1 + tools.len());
        if let Some(limiter) = &self.per_principal {
            budgets.push((format!("p:{who}"), &limiter.rate));
        }
        for tool in tools {
            if let Some(limiter) = self.per_tool.get(*tool) {
                budgets.push((format!("t:{}:{who}", digest(tool)), &limiter.rate));
            }
        }
        if budgets.is_empty() {
            return Ok(());
        }
        match shared.check(&budgets).await {
            Verdict::Admit => Ok(()),
            Verdict::Wait(wait) => Err(Throttled::after(wait)),
            // The replica's own budgets were spent above.
            Verdict::Unavailable => match shared.on_error {
                OnRedisError::Local => Ok(()),
                OnRedisError::Deny => Err(Throttled::Unavailable),
            },
        }
    }

    /// Admits one request: the caller's budget, then the budget of every tool
    /// it calls.
    pub fn admit<'a>(
        &self,
        principal: &Principal,
        tools: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), Throttled> {
        self.check_principal(principal)?;
        for tool in tools {
            self.check_tool(principal, tool)?;
        }
        Ok(())
    }

    /// Counts one request against the caller's budget.
    pub fn check_principal(&self, principal: &Principal) -> Result<(), Throttled> {
        match &self.per_principal {
            Some(limiter) => self.check(&limiter.state, &key(principal)),
            None => Ok(()),
        }
    }

    /// Counts one call of `tool` against the caller's budget for it.
    pub fn check_tool(&self, principal: &Principal, tool: &str) -> Result<(), Throttled> {
        match self.per_tool.get(tool) {
            Some(limiter) => self.check(&limiter.state, &key(principal)),
            None => Ok(()),
        }
    }

    /// After a failed authentication: counts it against the client's network,
    /// unless the failure was the gateway's own (keys or introspection
    /// unavailable), which must not lock out honest clients. With
    /// `shared_state` the budget is shared by every replica; this replica's
    /// own is asked first, so a flood from one network is refused without a
    /// round trip. While Redis cannot be asked, the replica's own budget
    /// decides whatever `on_redis_error` says: this budget only curbs abuse,
    /// and a 503 would hide the 401 challenge that lets a client discover
    /// where to sign in.
    pub async fn authn_failed(&self, error: &AuthnError, ip: IpAddr) -> Result<(), Throttled> {
        if matches!(
            error,
            AuthnError::KeysUnavailable { .. } | AuthnError::IntrospectionUnavailable { .. }
        ) {
            return Ok(());
        }
        self.check_unauthenticated(ip)?;
        let Some((_, shared)) = &self.shared else {
            return Ok(());
        };
        let budget = [(
            format!("u:{}", digest(&network(ip).to_string())),
            &self.unauthenticated.rate,
        )];
        match shared.check(&budget).await {
            Verdict::Admit | Verdict::Unavailable => Ok(()),
            Verdict::Wait(wait) => Err(Throttled::after(wait)),
        }
    }

    /// Counts one failed authentication from `ip`.
    pub fn check_unauthenticated(&self, ip: IpAddr) -> Result<(), Throttled> {
        self.check(&self.unauthenticated.state, &network(ip))
    }

    fn check<K: std::hash::Hash + Eq + Clone>(
        &self,
        limiter: &DefaultKeyedRateLimiter<K>,
        key: &K,
    ) -> Result<(), Throttled> {
        if limiter.len() > self.max_keys {
            limiter.retain_recent();
        }
        limiter
            .check_key(key)
            .map_err(|not_until| Throttled::after(not_until.wait_time_from(self.clock.now())))
    }

    /// Takes one of the principal's stream slots until the guard is dropped.
    pub fn open_stream(&self, principal: &Principal) -> Result<StreamGuard, Throttled> {
        let key = key(principal);
        let mut streams = self
            .streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let open = streams.entry(key.clone()).or_insert(0);
        if *open >= self.max_streams {
            return Err(Throttled::Streams);
        }
        *open += 1;
        Ok(StreamGuard {
            streams: self.streams.clone(),
            key,
            lease: None,
        })
    }

    /// Reports Redis reachability of the shared limits to `gauge`.
    pub fn report_redis(&self, gauge: prometheus_client::metrics::gauge::Gauge) {
        if let Some((_, shared)) = &self.shared {
            // Set once per connection; a reload that keeps it keeps the gauge
            // (and its probe, which ends with the connection).
            if shared.up.set(gauge.clone()).is_ok() {
                crate::telemetry::redis::probe(shared.conn(), gauge, Arc::downgrade(shared));
            }
        }
    }

    /// Takes a stream slot as [`Throttle::open_stream`] does, and with
    /// `shared_state`, also one of the principal's slots across replicas.
    pub async fn open_stream_everywhere(
        &self,
        principal: &Principal,
    ) -> Result<StreamGuard, Throttled> {
        let mut guard = self.open_stream(principal)?;
        let Some((_, shared)) = &self.shared else {
            return Ok(guard);
        };
        match shared
            .take_slot(&digest(&key(principal)), self.max_streams)
            .await
        {
            Ok(Some(lease)) => {
                guard.lease = Some(lease);
                Ok(guard)
            }
            Ok(None) => Err(Throttled::Streams),
            Err(()) => match shared.on_error {
                OnRedisError::Local => Ok(guard),
                OnRedisError::Deny => Err(Throttled::Unavailable),
            },
        }
    }

    /// Drops limiter keys that are back to a fresh state. Called periodically.
    pub fn housekeeping(&self) {
        self.unauthenticated.state.retain_recent();
        self.unauthenticated.state.shrink_to_fit();
        for limiter in self.per_principal.iter().chain(self.per_tool.values()) {
            limiter.state.retain_recent();
            limiter.state.shrink_to_fit();
        }
    }

    /// Keys held by the unauthenticated limiter (for tests).
    pub fn unauthenticated_keys(&self) -> usize {
        self.unauthenticated.state.len()
    }
}

impl Throttled {
    /// Over a rate: retry after `wait`, in whole seconds rounded up (at
    /// least one, so `Retry-After: 0` never invites a busy loop).
    fn after(wait: Duration) -> Self {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Throttled::Rate {
            retry_after: secs.max(1),
        }
    }
}

/// A principal's identity for limits: `iss` and the user (`sub`), or the
/// client for tokens without one, kept apart so that a client named `alice`
/// does not spend the user alice's budget. Principals with neither share
/// one budget per issuer.
fn key(p: &Principal) -> String {
    let present = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    let owner = match (present(&p.subject), present(&p.client_id)) {
        (Some(sub), _) => format!("sub\u{0}{sub}"),
        (None, Some(client)) => format!("client\u{0}{client}"),
        (None, None) => "none".to_owned(),
    };
    format!("{}\u{0}{owner}", p.issuer)
}

/// A rate per client network (IPv4 address, IPv6 /64), for endpoints that
/// answer before anyone is authenticated (the authorization server's). Keys
/// are pruned when more than `max_keys` are held.
pub struct IpLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    max_keys: usize,
    clock: DefaultClock,
}

impl IpLimiter {
    /// `burst` at once, refilled at `count` per `period`.
    pub fn new(count: NonZeroU32, period: Duration, burst: NonZeroU32, max_keys: usize) -> Self {
        let per_cell = period / count.get();
        let quota = Quota::with_period(per_cell)
            .unwrap_or_else(|| Quota::per_second(count))
            .allow_burst(burst);
        Self {
            limiter: RateLimiter::keyed(quota),
            max_keys,
            clock: DefaultClock::default(),
        }
    }

    /// Counts one request from `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), Throttled> {
        if self.limiter.len() > self.max_keys {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&network(ip))
            .map_err(|not_until| Throttled::after(not_until.wait_time_from(self.clock.now())))
    }
}

/// A short, stable digest of `text` for keys kept outside the process.
fn digest(text: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    d.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// IPv4 as is; IPv6 by /64, the unit one client usually controls.
fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let mut seg = v6.segments();
            seg[4..].fill(0);
            IpAddr::from(seg)
        }
    }
}

/// Holds a stream slot; released when dropped.
pub struct StreamGuard {
    streams: Arc<Mutex<HashMap<String, usize>>>,
    key: String,
    /// The slot across replicas (`shared_state`), given back on drop.
    lease: Option<Lease>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut streams = self
            .streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(open) = streams.get_mut(&self.key) {
            *open -= 1;
            if *open == 0 {
                streams.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(count: u32, secs: u64, burst: u32) -> Rate {
        Rate {
            count: NonZeroU32::new(count).unwrap(),
            period: Duration::from_secs(secs),
            burst: NonZeroU32::new(burst).unwrap(),
        }
    }

    fn principal(sub: &str) -> Principal {
        Principal::for_tests("https://as", sub)
    }

    fn throttle() -> Throttle {
        let config = RateLimitConfig {
            per_principal: Some(rate(1, 60, 2)),
            tools: HashMap::from([("expensive".to_owned(), rate(1, 60, 1))]),
            unauthenticated_per_ip: rate(1, 60, 3),
            max_keys: 1000,
            shared: None,
        };
        Throttle::new(&config, 2)
    }

    #[test]
    fn principals_have_separate_budgets_with_burst() {
        let t = throttle();
        assert!(t.check_principal(&principal("alice")).is_ok());
        assert!(t.check_principal(&principal("alice")).is_ok());
        let Err(Throttled::Rate { retry_after }) = t.check_principal(&principal("alice")) else {
            panic!("third call within the burst should be limited");
        };
        assert!((1..=60).contains(&retry_after));
        assert!(t.check_principal(&principal("bob")).is_ok());
        assert!(t.check_tool(&principal("bob"), "expensive").is_ok());
        assert!(t.check_tool(&principal("bob"), "expensive").is_err());
        assert!(t.check_tool(&principal("bob"), "cheap").is_ok());
    }

    #[test]
    fn ipv6_clients_share_a_budget_per_64() {
        let t = throttle();
        for i in 0..3u16 {
            let ip: IpAddr = format!("2001:db8:1:2::{i:x}").parse().unwrap();
            assert!(t.check_unauthenticated(ip).is_ok());
        }
        assert!(
            t.check_unauthenticated("2001:db8:1:2:ffff::1".parse().unwrap())
                .is_err()
        );
        assert_eq!(t.unauthenticated_keys(), 1);
    }

    #[test]
    fn stream_slots_are_released_on_drop() {
        let t = throttle();
        let a = t.open_stream(&principal("alice")).unwrap();
        let _b = t.open_stream(&principal("alice")).unwrap();
        assert_eq!(
            t.open_stream(&principal("alice")).err(),
            Some(Throttled::Streams)
        );
        drop(a);
        assert!(t.open_stream(&principal("alice")).is_ok());
    }

    #[test]
    fn a_reload_keeps_budgets_and_stream_counts() {
        let t = throttle();
        let alice = principal("alice");
        t.check_principal(&alice).unwrap();
        t.check_principal(&alice).unwrap();
        let _a = t.open_stream(&alice).unwrap();
        let _b = t.open_stream(&alice).unwrap();
        let config = RateLimitConfig {
            per_principal: Some(rate(1, 60, 2)),
            tools: HashMap::new(),
            unauthenticated_per_ip: rate(1, 60, 3),
            max_keys: 1000,
            shared: None,
        };
        let reloaded = t.reconfigured(&config, 2);
        assert!(reloaded.check_principal(&alice).is_err(), "budget refilled");
        assert_eq!(
            reloaded.open_stream(&alice).err(),
            Some(Throttled::Streams),
            "stream cap reset"
        );
        // A higher cap applies to the streams already open.
        let raised = reloaded.reconfigured(&config, 3);
        let _c = raised.open_stream(&alice).unwrap();
        assert!(raised.open_stream(&alice).is_err());
        // A changed rate is a new limiter.
        let mut faster = config.clone();
        faster.per_principal = Some(rate(10, 1, 10));
        assert!(t.reconfigured(&faster, 2).check_principal(&alice).is_ok());
    }

    #[test]
    fn users_and_clients_have_separate_budgets() {
        let t = throttle();
        let user = principal("alice");
        let mut client = principal("");
        client.subject = None;
        client.client_id = Some("alice".into());
        t.check_principal(&user).unwrap();
        t.check_principal(&user).unwrap();
        assert!(t.check_principal(&user).is_err());
        assert!(
            t.check_principal(&client).is_ok(),
            "client `alice` is not user alice"
        );
    }
}
