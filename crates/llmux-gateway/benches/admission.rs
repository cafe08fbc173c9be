//! Admission per request with local counters: a key's requests-per-minute and
//! tokens-per-minute window (`limits`) and its budget reservation (`budgets`), each
//! admitted and settled as a request would be.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use llmux_gateway::budgets::{Budgets, Limit, period_start};
use llmux_gateway::limits::{Limits, Scope};
use llmux_types::Currency;

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("admission, local counters");
    let limits = Arc::new(Limits::default());
    let budgets = Arc::new(Budgets::default());
    // Many keys, as a busy instance has; the measured one among them.
    for key in 0..1000 {
        let id = format!("key-{key}");
        let _ = limits.admit(&[Scope::key(&id, Some(u64::MAX), Some(u64::MAX))], 1_000);
        budgets.load(&id, 0, 0);
    }
    let now = 1_795_966_200_000u64;
    let start = period_start("monthly", now as i64).unwrap();
    budgets.load("key-7", start, 0);
    let key = [Scope::key("key-7", Some(u64::MAX), Some(u64::MAX))];
    group.bench_function("rpm + tpm window: admit and settle", |b| {
        b.iter(|| {
            let (reservation, info) = limits.admit(&key, now).unwrap().unwrap();
            reservation.settle(13);
            info.reset_ms
        })
    });
    let with_team = [key[0].clone(), Scope::team("search", Some(u64::MAX), Some(u64::MAX))];
    group.bench_function("rpm + tpm windows of key and team: admit and settle", |b| {
        b.iter(|| {
            let (reservation, info) = limits.admit(&with_team, now).unwrap().unwrap();
            reservation.settle(13);
            info.reset_ms
        })
    });
    let budget = [Limit {
        account: "key-7".to_owned(),
        label: "this key".to_owned(),
        budget_nanos: i64::MAX,
        currency: Currency::USD,
        period: "monthly".to_owned(),
        period_start: start,
    }];
    group.bench_function("budget: reserve and settle", |b| {
        b.iter(|| {
            let reservation = budgets.reserve(&budget, |_| 24_000_000).unwrap();
            reservation.settle(13_000_000, Some(Currency::USD));
        })
    });
    group.bench_function("budget period start (monthly)", |b| b.iter(|| period_start("monthly", now as i64)));
    group.finish();
}

criterion_group!(admission, benches);
criterion_main!(admission);
