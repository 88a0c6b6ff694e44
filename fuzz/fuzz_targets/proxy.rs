#![no_main]
//! See `ferry_fuzz::proxy`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry_fuzz::proxy(data));
