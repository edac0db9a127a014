//! A scenario's YAML text, as `cicada validate` and the controller parse it.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    if let Ok(text) = std::str::from_utf8(bytes) {
        if let Ok(scenario) = cicada_scenario::Scenario::parse("fuzz.yaml", text) {
            let _ = scenario.summary();
        }
    }
});
