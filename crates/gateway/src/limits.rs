//! Overload protection at the edge: request rates per caller and per institution, and the
//! largest request message the gateway forwards.
//!
//! Rates are GCRA limiters (governor) keyed by the authenticated caller's subject and by the
//! institution of the caller's organisation unit (`institutions/acme` of
//! `institutions/acme/branches/sh`; the platform unit `/` counts as one institution of its own,
//! a principal without a unit is limited per caller only). A call over either limit is refused
//! with RESOURCE_EXHAUSTED carrying a `RetryInfo` (when a call would be let through again) and
//! an `ErrorInfo` with reason `RATE_LIMITED`, and counted in `redress_gateway_rate_limited_total`.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use redress_platform::error::ERROR_DOMAIN;
use redress_platform::names::{OrgUnit, ROOT_ORG_UNIT};
use redress_platform::principal::Principal;
use serde::{Deserialize, Serialize};
use tonic_types::{ErrorDetails, StatusExt};

/// `ErrorInfo.reason` of a call refused for its rate.
pub const RATE_LIMITED: &str = "RATE_LIMITED";

/// Request rates the gateway lets through. A rate of 0 turns that limit off; a burst of 0 is
/// the rate itself (one second's worth).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimits {
    /// Sustained requests per second of one caller (the token's subject).
    pub caller_per_second: u32,
    /// Requests one caller may make at once above its sustained rate.
    pub caller_burst: u32,
    /// Sustained requests per second of all callers of one institution together.
    pub institution_per_second: u32,
    /// Requests one institution's callers may make at once above their sustained rate.
    pub institution_burst: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self { caller_per_second: 100, caller_burst: 200, institution_per_second: 1000, institution_burst: 2000 }
    }
}

impl RateLimits {
    /// No rate limit at all (`redress dev`, the benchmark).
    pub fn off() -> Self {
        Self { caller_per_second: 0, caller_burst: 0, institution_per_second: 0, institution_burst: 0 }
    }
}

/// One keyed limiter, or none when its rate is 0.
fn limiter(per_second: u32, burst: u32) -> Option<DefaultKeyedRateLimiter<String>> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Some(DefaultKeyedRateLimiter::hashmap(Quota::per_second(rate).allow_burst(burst)))
}

/// Keys kept above this count make the limiter forget keys whose state is back to full.
const RETAIN_ABOVE: usize = 10_000;

/// The gateway's rate limiters.
pub struct Limiter {
    caller: Option<DefaultKeyedRateLimiter<String>>,
    institution: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
    calls: AtomicU64,
}

impl Limiter {
    pub fn new(limits: &RateLimits) -> Self {
        Self {
            caller: limiter(limits.caller_per_second, limits.caller_burst),
            institution: limiter(limits.institution_per_second, limits.institution_burst),
            clock: DefaultClock::default(),
            calls: AtomicU64::new(0),
        }
    }

    /// Lets a call of `principal` through, or refuses it with RESOURCE_EXHAUSTED saying when
    /// to retry.
    pub fn check(&self, principal: &Principal) -> Result<(), tonic::Status> {
        // Now and then, forget callers and institutions that have been quiet long enough to be
        // back at a full burst (their state is the same as never having called).
        if self.calls.fetch_add(1, Ordering::Relaxed).is_multiple_of(1024) {
            for limiter in [&self.caller, &self.institution].into_iter().flatten() {
                if limiter.len() > RETAIN_ABOVE {
                    limiter.retain_recent();
                }
            }
        }
        // The caller's own limit first: a caller refused for its own rate uses none of its
        // institution's.
        if let Some(limiter) = &self.caller
            && let Err(not_until) = limiter.check_key(&principal.subject)
        {
            return Err(refused("caller", &principal.subject, not_until.wait_time_from(self.clock.now())));
        }
        if let Some(limiter) = &self.institution
            && let Some(institution) = institution_of(&principal.org_unit)
            && let Err(not_until) = limiter.check_key(&institution)
        {
            return Err(refused("institution", &institution, not_until.wait_time_from(self.clock.now())));
        }
        Ok(())
    }
}

/// The institution a principal's unit belongs to; the platform unit is its own.
fn institution_of(org_unit: &str) -> Option<String> {
    match org_unit {
        "" => None,
        ROOT_ORG_UNIT => Some(ROOT_ORG_UNIT.to_owned()),
        unit => OrgUnit::try_from_str(unit).ok().map(|u| u.institution().into_string()),
    }
}

fn refused(limit: &'static str, key: &str, wait: Duration) -> tonic::Status {
    metrics::counter!("redress_gateway_rate_limited_total", "limit" => limit).increment(1);
    // At least a millisecond: a zero delay would invite an immediate retry into the same limit.
    let wait = wait.max(Duration::from_millis(1));
    let mut details = ErrorDetails::new();
    details.set_retry_info(Some(wait));
    details.set_error_info(
        RATE_LIMITED,
        ERROR_DOMAIN,
        HashMap::from([
            ("limit".to_owned(), limit.to_owned()),
            ("retry_after_ms".to_owned(), wait.as_millis().to_string()),
        ]),
    );
    details.set_localized_message("zh-CN", "请求过于频繁，请稍后重试");
    let who = if limit == "caller" { format!("caller {key}") } else { format!("institution {key}") };
    tonic::Status::with_error_details(
        tonic::Code::ResourceExhausted,
        format!("rate limit of {who} exceeded; retry in {} ms", wait.as_millis()),
        details,
    )
}

/// What the gateway answers a request whose first message is larger than it forwards.
pub fn oversize(len: usize, limit: usize) -> tonic::Status {
    let mut details = ErrorDetails::new();
    details.set_error_info(
        "MESSAGE_TOO_LARGE",
        ERROR_DOMAIN,
        HashMap::from([("size".to_owned(), len.to_string()), ("limit".to_owned(), limit.to_string())]),
    );
    details.set_localized_message("zh-CN", "请求内容过大");
    tonic::Status::with_error_details(
        tonic::Code::ResourceExhausted,
        format!("request message of {len} bytes is larger than the limit of {limit} bytes"),
        details,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn caller(subject: &str, org_unit: &str) -> Principal {
        Principal { subject: subject.to_owned(), org_unit: org_unit.to_owned(), ..Principal::default() }
    }

    #[test]
    fn institutions_of_units() {
        assert_eq!(institution_of("institutions/acme/branches/sh").as_deref(), Some("institutions/acme"));
        assert_eq!(institution_of("institutions/acme").as_deref(), Some("institutions/acme"));
        assert_eq!(institution_of("/").as_deref(), Some("/"));
        assert_eq!(institution_of(""), None);
    }

    #[test]
    fn an_institution_over_its_rate_refuses_all_its_callers_but_not_others() {
        let limiter = Limiter::new(&RateLimits {
            caller_per_second: 0,
            caller_burst: 0,
            institution_per_second: 1,
            institution_burst: 2,
        });
        let a1 = caller("a1", "institutions/a/branches/x");
        let a2 = caller("a2", "institutions/a/branches/y");
        limiter.check(&a1).unwrap();
        limiter.check(&a2).unwrap();
        let refused = limiter.check(&a2).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        let details = refused.get_error_details();
        assert_eq!(details.error_info().unwrap().reason, RATE_LIMITED);
        assert_eq!(details.error_info().unwrap().metadata["limit"], "institution");
        let delay = details.retry_info().unwrap().retry_delay.unwrap();
        assert!(delay > Duration::ZERO && delay <= Duration::from_secs(1), "{delay:?}");
        limiter.check(&caller("b1", "institutions/b")).unwrap();
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let limiter = Limiter::new(&RateLimits::off());
        let a = caller("a", "institutions/a");
        for _ in 0..10_000 {
            limiter.check(&a).unwrap();
        }
    }
}
