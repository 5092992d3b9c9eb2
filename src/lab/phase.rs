//! The demo's phase clock: in dynamic mode some scenarios change behaviour every minute,
//! deterministically from the lab's start time.

use std::time::{Duration, Instant};

use super::scenarios::{Endpoint, Style};

/// Length of one phase.
pub(crate) const PHASE_LEN: Duration = Duration::from_secs(60);

/// What each phase of the cycle changes (index = phase number).
pub(crate) const PHASES: &[&str] = &[
    "baseline: every scenario behaves as in the lab table",
    "nginx fixed: admin.nginx no longer requires client certificates (shop -> admin ok)",
    "load balancer fixed (pay <-> cart ok); api.good broke: its block now requires client \
     certificates (www/live -> api misdirected)",
];

/// The lab's clock. Static labs are always in phase 0.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    start: Instant,
    dynamic: bool,
}

impl Clock {
    pub(crate) fn new(dynamic: bool) -> Self {
        Clock {
            start: Instant::now(),
            dynamic,
        }
    }

    /// A dynamic clock that started `ago` (tests use it to start in a later phase).
    #[cfg(test)]
    pub(crate) fn started_ago(ago: Duration) -> Option<Self> {
        Some(Clock {
            start: Instant::now().checked_sub(ago)?,
            dynamic: true,
        })
    }

    pub(crate) fn is_dynamic(&self) -> bool {
        self.dynamic
    }

    /// The current phase (0 when not dynamic).
    pub(crate) fn phase(&self) -> usize {
        if !self.dynamic {
            return 0;
        }
        phase_at(self.start.elapsed())
    }

    /// Time until the next phase change (None when not dynamic).
    pub(crate) fn next_change_in(&self) -> Option<Duration> {
        if !self.dynamic {
            return None;
        }
        let elapsed = self.start.elapsed().as_millis();
        let len = PHASE_LEN.as_millis();
        let left = len - elapsed % len;
        Some(Duration::from_millis(u64::try_from(left).unwrap_or(u64::MAX)))
    }

    /// The style `endpoint` has now.
    pub(crate) fn style_of(&self, endpoint: &Endpoint) -> Style {
        style_in_phase(endpoint, self.phase())
    }
}

/// The phase `elapsed` after the start.
pub(crate) fn phase_at(elapsed: Duration) -> usize {
    let n = elapsed.as_secs() / PHASE_LEN.as_secs();
    usize::try_from(n % PHASES.len() as u64).unwrap_or(0)
}

/// The style of `endpoint` in `phase`.
pub(crate) fn style_in_phase(endpoint: &Endpoint, phase: usize) -> Style {
    endpoint
        .dynamic
        .iter()
        .find(|(p, _)| *p == phase)
        .map_or(endpoint.style, |(_, s)| *s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::scenarios::{all_endpoints, Alpn};

    #[test]
    fn phases_cycle_every_minute() {
        assert_eq!(phase_at(Duration::from_secs(0)), 0);
        assert_eq!(phase_at(Duration::from_secs(59)), 0);
        assert_eq!(phase_at(Duration::from_secs(60)), 1);
        assert_eq!(phase_at(Duration::from_secs(125)), 2);
        assert_eq!(phase_at(Duration::from_secs(180)), 0);
    }

    #[test]
    fn static_clock_never_changes() {
        let clock = Clock::new(false);
        assert_eq!(clock.phase(), 0);
        assert_eq!(clock.next_change_in(), None);
        for (_, ep) in all_endpoints() {
            assert_eq!(clock.style_of(ep), ep.style);
        }
    }

    #[test]
    fn overrides_apply_only_in_their_phase() {
        let ep = Endpoint {
            octet: 1,
            style: Style::LoadBalancer,
            alpn: Alpn::H2AndH1,
            dynamic: &[(2, Style::ByHost)],
            origin_frame: &[],
            h3: None,
        };
        assert_eq!(style_in_phase(&ep, 0), Style::LoadBalancer);
        assert_eq!(style_in_phase(&ep, 1), Style::LoadBalancer);
        assert_eq!(style_in_phase(&ep, 2), Style::ByHost);
    }

    #[test]
    fn demo_phases_change_the_documented_scenarios() {
        use crate::lab::scenarios::SCENARIOS;
        let style = |key: &str, phase: usize| {
            let sc = SCENARIOS.iter().find(|s| s.key == key).unwrap();
            style_in_phase(&sc.endpoints[0], phase)
        };
        let admin = Style::NginxClientAuth {
            protected: "admin.nginx.coalscope.test",
        };
        let api = Style::NginxClientAuth {
            protected: "api.good.coalscope.test",
        };
        assert_eq!(
            [style("nginx", 0), style("nginx", 1), style("nginx", 2)],
            [admin, Style::ByHost, admin]
        );
        assert_eq!(
            [style("lb", 0), style("lb", 1), style("lb", 2)],
            [Style::LoadBalancer, Style::LoadBalancer, Style::ByHost]
        );
        assert_eq!(
            [style("good", 0), style("good", 1), style("good", 2)],
            [Style::ByHost, Style::ByHost, api]
        );
    }

    #[test]
    fn every_override_names_a_real_phase() {
        for (_, ep) in all_endpoints() {
            for (p, _) in ep.dynamic {
                assert!(*p < PHASES.len());
            }
        }
    }
}
