#![no_main]
//! See `ferry_fuzz::framing`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry_fuzz::framing(data));
