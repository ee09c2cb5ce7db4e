//! Fuzz target: see `josefk::__fuzz::fuzz_sasl` for the input layout and what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| josefk::__fuzz::fuzz_sasl(data));
