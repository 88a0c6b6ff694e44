#![no_main]
//! See `ferry_fuzz::command`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry_fuzz::command(data));
