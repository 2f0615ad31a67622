//! Prometheus metrics of the operator. Labels are bounded: kinds, results, operation names,
//! HTTP status codes, lease states and currencies; never object names or messages.

use crate::contiguity::{CallObserver, Operation};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    kind: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    operation: &'static str,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CurrencyLabels {
    currency: String,
}

/// What one NumberLease contributes to the lease gauges.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaseContribution {
    /// Lease state label (active, paused, lost, pending, stalled...).
    pub state: String,
    /// Currency and monthly rate of an active lease, if known.
    pub spend: Option<(String, f64)>,
}

/// All metrics, registered in one registry.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_duration: Family<KindLabels, Histogram>,
    calls: Family<CallLabels, Counter>,
    rate_limited: Counter,
    leases: Family<StateLabels, Gauge>,
    spend: Family<CurrencyLabels, Gauge<f64, AtomicU64>>,
    contributions: Mutex<HashMap<String, LeaseContribution>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered under the `contiguity_operator` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("contiguity_operator");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles by kind and result (ok or an error category)",
            reconciles.clone(),
        );
        let reconcile_duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.5, 14))
        });
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile, by kind",
            reconcile_duration.clone(),
        );
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "contiguity_calls",
            "HTTP calls to Contiguity by operation and outcome (HTTP status, timeout, transport, local_rate_limited)",
            calls.clone(),
        );
        let rate_limited = Counter::default();
        registry.register(
            "contiguity_rate_limited",
            "Responses 429 received from Contiguity",
            rate_limited.clone(),
        );
        let leases = Family::<StateLabels, Gauge>::default();
        registry.register("leases", "NumberLeases by lease state", leases.clone());
        let spend = Family::<CurrencyLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "committed_monthly_spend",
            "Sum of the monthly rates of active leases, by currency (major units)",
            spend.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_duration,
            calls,
            rate_limited,
            leases,
            spend,
            contributions: Mutex::new(HashMap::new()),
        }
    }

    /// Records one reconcile.
    pub fn reconciled(&self, kind: &'static str, result: &'static str, took: Duration) {
        self.reconciles.get_or_create(&ReconcileLabels { kind, result }).inc();
        self.reconcile_duration
            .get_or_create(&KindLabels { kind })
            .observe(took.as_secs_f64());
    }

    /// Sets what the NumberLease with `uid` contributes to the lease gauges (None: it is gone).
    pub fn set_lease(&self, uid: &str, contribution: Option<LeaseContribution>) {
        let Ok(mut map) = self.contributions.lock() else { return };
        let old = match &contribution {
            Some(c) => map.insert(uid.to_string(), c.clone()),
            None => map.remove(uid),
        };
        if old == contribution {
            return;
        }
        if let Some(old) = old {
            self.leases.get_or_create(&StateLabels { state: old.state }).dec();
            if let Some((currency, rate)) = old.spend {
                self.spend.get_or_create(&CurrencyLabels { currency }).dec_by(rate);
            }
        }
        if let Some(new) = contribution {
            self.leases.get_or_create(&StateLabels { state: new.state }).inc();
            if let Some((currency, rate)) = new.spend {
                self.spend.get_or_create(&CurrencyLabels { currency }).inc_by(rate);
            }
        }
    }

    /// The registry in the Prometheus text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

impl CallObserver for Metrics {
    fn observe(&self, op: Operation, outcome: &str, _elapsed: Duration) {
        if outcome == "429" {
            self.rate_limited.inc();
        }
        self.calls
            .get_or_create(&CallLabels {
                operation: op.as_str(),
                status: outcome.to_string(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_gauges_follow_contributions() {
        let m = Metrics::new();
        let active = |rate| LeaseContribution {
            state: "active".into(),
            spend: Some(("USD".into(), rate)),
        };
        m.set_lease("a", Some(active(10.0)));
        m.set_lease("b", Some(active(5.5)));
        m.set_lease(
            "a",
            Some(LeaseContribution {
                state: "lost".into(),
                spend: None,
            }),
        );
        m.observe(Operation::Create, "429", Duration::ZERO);
        let text = m.encode().expect("encode");
        assert!(
            text.contains(r#"contiguity_operator_leases{state="active"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"contiguity_operator_leases{state="lost"} 1"#), "{text}");
        assert!(
            text.contains(r#"contiguity_operator_committed_monthly_spend{currency="USD"} 5.5"#),
            "{text}"
        );
        assert!(
            text.contains("contiguity_operator_contiguity_rate_limited_total 1"),
            "{text}"
        );
        m.set_lease("b", None);
        let text = m.encode().expect("encode");
        assert!(
            text.contains(r#"contiguity_operator_leases{state="active"} 0"#),
            "{text}"
        );
    }
}
