//! Admission per request with local counters: a key's requests-per-minute and
//! tokens-per-minute window (`limits`) and its budget reservation (`budgets`), each
//! admitted and settled as a request would be.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use llmux_gateway::budgets::{Budgets, period_start};
use llmux_gateway::limits::Limits;
use llmux_types::Currency;

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("admission, local counters");
    let limits = Arc::new(Limits::default());
    let budgets = Arc::new(Budgets::default());
    // Many keys, as a busy instance has; the measured one among them.
    for key in 0..1000 {
        let id = format!("key-{key}");
        let _ = limits.admit(&id, Some(u64::MAX), Some(u64::MAX), 1_000);
        budgets.load(&id, 0, 0);
    }
    let now = 1_795_966_200_000u64;
    let start = period_start("monthly", now as i64).unwrap();
    budgets.load("key-7", start, 0);
    group.bench_function("rpm + tpm window: admit and settle", |b| {
        b.iter(|| {
            let (reservation, info) = limits.admit("key-7", Some(u64::MAX), Some(u64::MAX), now).unwrap().unwrap();
            reservation.settle(13);
            info.reset_ms
        })
    });
    group.bench_function("budget: reserve and settle", |b| {
        b.iter(|| {
            let reservation =
                budgets.reserve("key-7", (i64::MAX, Currency::USD, "monthly"), start, 24_000_000).unwrap();
            reservation.settle(13_000_000, Some(Currency::USD));
        })
    });
    group.bench_function("budget period start (monthly)", |b| b.iter(|| period_start("monthly", now as i64)));
    group.finish();
}

criterion_group!(admission, benches);
criterion_main!(admission);
