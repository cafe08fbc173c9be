//! Admission per request: a key's requests-per-minute and tokens-per-minute window
//! (`limits`) and its budget reservation (`budgets`), each admitted and settled as a
//! request would be; with local counters, and with fleet leases from Redis (when
//! `LLMUX_TEST_REDIS_URL` is set): a round trip only when a lease is used up.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use llmux_gateway::budgets::{Budgets, Limit, NotReserved, period_start};
use llmux_gateway::limits::{Limits, NotAdmitted, Scope};
use llmux_types::Currency;

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("admission, local counters");
    let limits = Arc::new(Limits::default());
    let budgets = Arc::new(Budgets::default());
    // Many keys, as a busy instance has; the measured one among them.
    for key in 0..1000 {
        let id = format!("key-{key}");
        let _ = limits.admit(&[Scope::key(&id, Some(u64::MAX), Some(u64::MAX))], 1_000, false);
        budgets.load(&id, 0, 0);
    }
    let now = 1_795_966_200_000u64;
    let start = period_start("monthly", now as i64).unwrap();
    budgets.load("key-7", start, 0);
    let key = [Scope::key("key-7", Some(u64::MAX), Some(u64::MAX))];
    group.bench_function("rpm + tpm window: admit and settle", |b| {
        b.iter(|| {
            let (reservation, info) = limits.admit(&key, now, false).unwrap().unwrap();
            reservation.settle(13);
            info.reset_ms
        })
    });
    let with_team = [key[0].clone(), Scope::team("search", Some(u64::MAX), Some(u64::MAX))];
    group.bench_function("rpm + tpm windows of key and team: admit and settle", |b| {
        b.iter(|| {
            let (reservation, info) = limits.admit(&with_team, now, false).unwrap().unwrap();
            reservation.settle(13);
            info.reset_ms
        })
    });
    let budget = [budget_limit("key-7", i64::MAX, start)];
    group.bench_function("budget: reserve and settle", |b| {
        b.iter(|| {
            let reservation = budgets.reserve(&budget, |_| 24_000_000, now as i64, false).unwrap();
            reservation.settle(13_000_000, Some(Currency::USD));
        })
    });
    group.bench_function("budget period start (monthly)", |b| b.iter(|| period_start("monthly", now as i64)));
    group.finish();
    redis(c);
}

fn budget_limit(account: &str, budget_nanos: i64, period_start: i64) -> Limit {
    Limit {
        account: account.to_owned(),
        label: "this key".to_owned(),
        budget_nanos,
        currency: Currency::USD,
        period: "monthly".to_owned(),
        period_start,
    }
}

/// The same with leases claimed from Redis, as the gateway does: requests are admitted
/// locally from a lease (a sixteenth of the limit; for a budget, a thirty-second) and a
/// round trip claims the next one. With 16,000 requests a minute that is one round
/// trip per 1,000 requests; with a budget of 32,000 estimates, one per 1,000.
fn redis(c: &mut Criterion) {
    let Ok(url) = std::env::var("LLMUX_TEST_REDIS_URL") else {
        eprintln!("LLMUX_TEST_REDIS_URL is not set: skipping the Redis admission benchmarks");
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let options = llmux_fleet::FleetOptions {
        prefix: format!("llmux-bench-{}:", std::process::id()),
        ..llmux_fleet::FleetOptions::default()
    };
    let fleet = runtime.block_on(async { llmux_fleet::Fleet::new(&url, options).unwrap() });
    let mut group = c.benchmark_group("admission, fleet leases (Redis)");
    let limits = Arc::new(Limits::default());
    let now = 1_795_966_200_000u64;
    let mut round = 0u64;
    let mut admitted = 0u64;
    let mut scope = [Scope::key("bench-0", Some(16_000), None)];
    group.bench_function("rpm window, 16000/min: admit and settle", |b| {
        b.iter(|| {
            // A new key each time a window is used up, so every iteration admits.
            if admitted == 16_000 {
                round += 1;
                admitted = 0;
                scope = [Scope::key(&format!("bench-{round}"), Some(16_000), None)];
            }
            loop {
                match limits.admit(&scope, now, true) {
                    Ok(Some((reservation, _))) => {
                        reservation.settle(13);
                        break;
                    }
                    Ok(None) => unreachable!("limited"),
                    Err(NotAdmitted::Refused(refusal)) => panic!("{}", refusal.message),
                    Err(NotAdmitted::NeedLeases(leases)) => runtime.block_on(async {
                        for lease in &leases {
                            let granted =
                                fleet.claim(&lease.counter, lease.limit as i64, lease.want as i64, lease.ttl_ms);
                            limits.granted(lease, granted.await.unwrap() as u64, now);
                        }
                    }),
                }
            }
            admitted += 1;
        })
    });
    let budgets = Arc::new(Budgets::default());
    let start = period_start("monthly", now as i64).unwrap();
    let mut round = 0u64;
    let mut reserved = 0u64;
    let mut budget = [budget_limit("bench-budget-0", 32_000 * 24_000_000, start)];
    group.bench_function("budget, 32000 estimates: reserve and settle", |b| {
        b.iter(|| {
            if reserved == 32_000 {
                round += 1;
                reserved = 0;
                budget = [budget_limit(&format!("bench-budget-{round}"), 32_000 * 24_000_000, start)];
            }
            loop {
                match budgets.reserve(&budget, |_| 24_000_000, now as i64, true) {
                    Ok(reservation) => {
                        // Costs exactly the estimate: nothing goes back to the lease.
                        reservation.settle(24_000_000, Some(Currency::USD));
                        break;
                    }
                    Err(NotReserved::Exhausted(_)) => panic!("exhausted"),
                    Err(NotReserved::NeedLeases(leases)) => runtime.block_on(async {
                        for lease in &leases {
                            let granted =
                                fleet.claim_from(&lease.counter, lease.initial, lease.limit, lease.want, lease.ttl_ms);
                            let back = budgets.granted(lease, granted.await.unwrap(), now as i64);
                            assert_eq!(back, 0, "the benchmark's budget is never short");
                        }
                    }),
                }
            }
            reserved += 1;
        })
    });
    group.finish();
}

criterion_group!(admission, benches);
criterion_main!(admission);
