//! Replays the fuzz corpus and every input that once crashed a fuzz target through the same
//! checks the targets run (`fuzz_checks`), on stable Rust, in every `cargo test`.

mod fuzz_checks;

use std::path::Path;

/// A fuzz target's check.
type Check = fn(&[u8]);

#[test]
fn corpus_and_regressions_pass_the_fuzz_checks() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let targets: [(&str, Check); 5] = [
        ("command", fuzz_checks::command),
        ("session", fuzz_checks::session),
        ("path", fuzz_checks::path),
        ("framing", fuzz_checks::framing),
        ("proxy", fuzz_checks::proxy),
    ];
    let mut replayed = 0;
    for (name, check) in targets {
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(name)) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                if std::env::var_os("FERRY_FUZZ_TRACE").is_some() {
                    eprintln!("{name}: {}", path.display());
                }
                let result = std::panic::catch_unwind(|| check(&data));
                assert!(result.is_ok(), "{name}: {} fails the check", path.display());
                replayed += 1;
            }
        }
    }
    assert!(
        replayed >= 20,
        "only {replayed} inputs: is fuzz/corpus missing?"
    );
}
