#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modelobs_fuzz::images::run(data));
