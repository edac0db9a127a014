//! Template and threshold text, and `--allow-target` patterns.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    if let Ok(text) = std::str::from_utf8(bytes) {
        let vars = ["x".to_owned(), "y".to_owned()];
        let _ = cicada_scenario::Template::compile(text, &vars);
        let _ = cicada_scenario::Expr::parse(text);
        let _ = cicada_scenario::Threshold::parse_flag(text);
        let _ = cicada_scenario::allow::TargetPattern::parse(text);
    }
});
