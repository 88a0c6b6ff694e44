//! Heap allocations per command, counted on this thread: none without the `alloc` feature
//! (the core then has no allocator at all); with it (as the smol runtime builds the core),
//! one short-lived reply queue per command, returned when drained so that an idle session
//! holds none, plus the paths a command carries. A budget per command keeps it that way.

#[path = "../benches/support/workload.rs"]
mod workload;
use workload::{COMMANDS, LINES, logged_in, run};

#[path = "../benches/support/counting.rs"]
mod counting;
use counting::allocations;

/// The most allocations a command may cost with the `alloc` feature.
fn budget(cmd: &str) -> u64 {
    if !cfg!(feature = "alloc") {
        return 0;
    }
    let verb = cmd.split_whitespace().next().unwrap();
    match verb {
        // The reply queue and the path in the reply.
        "PWD" | "XPWD" => 2,
        // The queue, the parsed path, the boxed request, the path in it and in the reply.
        "CWD" | "CDUP" | "SIZE" | "MDTM" | "MLST" => 5,
        // The reply queue only.
        _ => 1,
    }
}

#[test]
fn commands_stay_within_their_allocation_budget() {
    let mut s = logged_in();
    let mut out = [0u8; 4096];
    for cmd in COMMANDS {
        run(&mut s, cmd.as_bytes(), &mut out);
        let before = allocations();
        for _ in 0..100 {
            run(&mut s, cmd.as_bytes(), &mut out);
        }
        let per = (allocations() - before) / 100;
        assert!(
            per <= budget(cmd),
            "{} costs {per} allocations, budget {}",
            cmd.trim_end(),
            budget(cmd)
        );
    }
}

#[test]
fn parsing_never_allocates() {
    let before = allocations();
    for line in LINES {
        ferry_core::parse_command(line.as_bytes()).unwrap();
    }
    assert_eq!(allocations() - before, 0);
}
