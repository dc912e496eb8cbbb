#![no_main]
// The body is shared with the stable corpus test: see src/lib.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| oms_upgrade_fuzz::omsconfig_roundtrip(data));
