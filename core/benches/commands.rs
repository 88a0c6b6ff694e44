//! Micro-benchmarks of the protocol core: the parser alone, and a logged-in session taking
//! whole control commands (framing, parsing, state machine, storage round trip, reply
//! encoding). Run with `cargo bench -p ferry-core`; before the timings it prints how many
//! heap allocations each command costs (zero without the `alloc` feature, where the core has
//! no allocator at all).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group};
use ferry_core::parse_command;

#[path = "support/workload.rs"]
mod workload;
use workload::{COMMANDS, LINES, logged_in, run};

#[path = "support/counting.rs"]
mod counting;
use counting::allocations;

/// Prints the heap allocations per command, measured over 1,000 of each.
fn report_allocations() {
    let mut s = logged_in();
    let mut out = [0u8; 4096];
    println!(
        "heap allocations per command (ferry-core alloc feature: {}):",
        cfg!(feature = "alloc")
    );
    for cmd in COMMANDS {
        run(&mut s, cmd.as_bytes(), &mut out);
        let before = allocations();
        for _ in 0..1_000 {
            run(&mut s, cmd.as_bytes(), &mut out);
        }
        #[allow(clippy::cast_precision_loss)]
        let per = (allocations() - before) as f64 / 1_000.0;
        println!("  {:<24} {per}", cmd.trim_end());
    }
    let before = allocations();
    for line in LINES {
        black_box(parse_command(line.as_bytes()).unwrap());
    }
    println!("  parse_command, all lines {}", allocations() - before);
}

fn parser(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(LINES.len() as u64));
    g.bench_function("commands", |b| {
        b.iter(|| {
            for line in LINES {
                black_box(parse_command(black_box(line.as_bytes())).unwrap());
            }
        });
    });
    g.finish();
}

fn session(c: &mut Criterion) {
    let mut g = c.benchmark_group("session");
    g.throughput(Throughput::Elements(COMMANDS.len() as u64));
    let mut s = logged_in();
    let mut out = [0u8; 4096];
    g.bench_function("control commands", |b| {
        b.iter(|| {
            for cmd in COMMANDS {
                black_box(run(&mut s, black_box(cmd.as_bytes()), &mut out));
            }
        });
    });
    g.finish();
}

criterion_group!(benches, parser, session);

fn main() {
    report_allocations();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
