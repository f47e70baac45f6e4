#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| netboot_nbd::fuzzing::wire(data));
