#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| netboot_dhcp::fuzzing::engine(data));
