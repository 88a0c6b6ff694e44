#![no_main]
//! See `ferry_fuzz::path`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry_fuzz::path(data));
