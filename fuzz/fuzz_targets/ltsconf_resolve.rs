#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| netboot_ltsconf::fuzzing::resolve(data));
