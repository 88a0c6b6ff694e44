#![no_main]
//! See `ferry_fuzz::session`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry_fuzz::session(data));
