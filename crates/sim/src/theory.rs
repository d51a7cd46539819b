//! Queueing theory where it has an answer: Erlang C (M/M/c — Poisson arrivals, exponential
//! handle times, `c` identical agents, one queue served first come first served, nobody
//! abandons). The simulator's tests hold its results to these formulas, and a report can
//! show them next to a simulated single-skill queue.

/// Erlang B: the probability that all `c` servers are busy in a loss system offered `a`
/// Erlangs (the stable recurrence `B(k) = a·B(k−1) / (k + a·B(k−1))`).
pub fn erlang_b(c: u32, a: f64) -> f64 {
    (1..=c).fold(1.0, |b, k| a * b / (f64::from(k) + a * b))
}

/// Erlang C: the probability that a task has to wait, with `c` agents and `a = λ/μ`
/// Erlangs offered. 1 when the queue is unstable (`a ≥ c`).
pub fn erlang_c(c: u32, a: f64) -> f64 {
    let c_f = f64::from(c);
    if a >= c_f {
        return 1.0;
    }
    let b = erlang_b(c, a);
    c_f * b / (c_f - a * (1.0 - b))
}

/// The M/M/c figures of one queue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErlangC {
    /// Probability of waiting.
    pub p_wait: f64,
    /// Mean wait over all tasks, seconds.
    pub mean_wait: f64,
    /// Occupancy (`a / c`).
    pub occupancy: f64,
}

impl ErlangC {
    /// `c` agents, `per_hour` arrivals per hour, `mean_handle` seconds per task.
    pub fn new(c: u32, per_hour: f64, mean_handle: f64) -> ErlangC {
        let lambda = per_hour / 3600.0;
        let a = lambda * mean_handle;
        let p_wait = erlang_c(c, a);
        let drain = f64::from(c) / mean_handle - lambda;
        ErlangC {
            p_wait,
            mean_wait: if drain > 0.0 {
                p_wait / drain
            } else {
                f64::INFINITY
            },
            occupancy: a / f64::from(c),
        }
    }

    /// Share of tasks answered within `t` seconds: `1 − C·e^{−(cμ−λ)t}`.
    pub fn service_level(&self, c: u32, per_hour: f64, mean_handle: f64, t: f64) -> f64 {
        let drain = f64::from(c) / mean_handle - per_hour / 3600.0;
        if drain <= 0.0 {
            return 0.0;
        }
        1.0 - self.p_wait * (-drain * t).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erlang_c_matches_published_tables() {
        // Textbook values: 10 agents, 8 Erlangs → P(wait) ≈ 0.409; 2 agents, 1 Erlang → 1/3.
        assert!((erlang_c(10, 8.0) - 0.4092).abs() < 5e-4);
        assert!((erlang_c(2, 1.0) - 1.0 / 3.0).abs() < 1e-12);
        // One agent: P(wait) = ρ.
        assert!((erlang_c(1, 0.7) - 0.7).abs() < 1e-12);
        assert_eq!(erlang_c(3, 3.0), 1.0);
    }

    #[test]
    fn mean_wait_of_mm1_is_rho_over_mu_minus_lambda() {
        // M/M/1, λ = 0.5/s, μ = 1/s: Wq = ρ/(μ−λ) = 1 s.
        let e = ErlangC::new(1, 1800.0, 1.0);
        assert!((e.mean_wait - 1.0).abs() < 1e-12);
        assert!((e.occupancy - 0.5).abs() < 1e-12);
    }
}
