//! Analytic expected transmissions per packet, E\[M\], for R receivers behind
//! independent loss p (Nonnenmacher, Biersack and Towsley, "Parity-based loss
//! recovery for reliable multicast transmission", SIGCOMM 1997): the values
//! the simulator's runs are measured against.

/// ARQ (retransmit each packet until every receiver has it):
/// E\[M\] = Σ_{m≥0} [1 − (1 − p^m)^R].
pub fn arq(receivers: u64, p: f64) -> f64 {
    let mut sum = 0.0;
    let mut pm: f64 = 1.0; // p^m
    for _ in 0..10_000 {
        let term = 1.0 - (1.0 - pm).powf(receivers as f64);
        sum += term;
        if term < 1e-12 {
            break;
        }
        pm *= p;
    }
    sum
}

/// An ideal code with blocks of k packets, sending parity until every
/// receiver holds k of them: E\[M\] = E\[max over receivers of L\] / k, where a
/// receiver's L (transmissions until it holds k) is negative binomial.
/// E\[max L\] = Σ_{n≥0} [1 − P(L ≤ n)^R], with P(L ≤ n) = P(Bin(n, 1−p) ≥ k).
pub fn ideal_fec(receivers: u64, p: f64, k: u32) -> f64 {
    if p <= 0.0 {
        return 1.0;
    }
    let q = 1.0 - p;
    let (ln_p, ln_q) = (p.ln(), q.ln());
    let k = k as u64;
    // For n ≥ k, P(L > n) = P(Bin(n, q) < k) = Σ_{j<k} C(n,j) q^j p^(n−j).
    let mut expected = k as f64; // n = 0..k-1: P(max L > n) = 1
    let mut n = k;
    loop {
        // log C(n, j) via lgamma-free running sums: C(n,j) = C(n,j-1)·(n−j+1)/j.
        let mut below = 0.0; // P(Bin(n, q) < k)
        let mut log_c = 0.0; // ln C(n, 0)
        for j in 0..k {
            if j > 0 {
                log_c += ((n - j + 1) as f64).ln() - (j as f64).ln();
            }
            below += (log_c + j as f64 * ln_q + (n - j) as f64 * ln_p).exp();
        }
        let at_most = (1.0 - below).clamp(0.0, 1.0);
        let term = 1.0 - at_most.powf(receivers as f64);
        expected += term;
        if term < 1e-10 || n > 100 * k + 10_000 {
            break;
        }
        n += 1;
    }
    expected / k as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paper's table (Nonnenmacher, Biersack and Towsley, SIGCOMM 1997).
    #[test]
    fn reproduces_the_papers_table() {
        let rows: [(u64, f64, f64, [f64; 3]); 5] = [
            (10, 0.01, 1.097, [1.076, 1.053, 1.028]),
            (100, 0.01, 1.644, [1.178, 1.099, 1.043]),
            (1000, 0.01, 2.096, [1.287, 1.141, 1.056]),
            (1000, 0.10, 3.738, [1.781, 1.453, 1.243]),
            (10000, 0.10, 4.738, [1.974, 1.541, 1.273]),
        ];
        for (r, p, arq_want, fec_want) in rows {
            let got = arq(r, p);
            assert!((got - arq_want).abs() < 0.002, "ARQ R={r} p={p}: {got}");
            for (k, want) in [7, 20, 100].into_iter().zip(fec_want) {
                let got = ideal_fec(r, p, k);
                assert!(
                    (got - want).abs() < 0.003,
                    "FEC R={r} p={p} k={k}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn limits() {
        assert_eq!(arq(1, 0.0), 1.0);
        assert!((arq(1, 0.5) - 2.0).abs() < 1e-9);
        assert_eq!(ideal_fec(100, 0.0, 7), 1.0);
        // One receiver: E[L] = k / (1 − p).
        assert!((ideal_fec(1, 0.2, 50) - 1.25).abs() < 1e-6);
        // Large blocks approach 1 / (1 − p).
        let big = ideal_fec(1000, 0.1, 1000);
        assert!(big > 1.0 / 0.9 && big < 1.16, "{big}");
    }
}
