//! Fuzzes the expression parser: no input may panic it, every accepted expression must print
//! to text that parses back to the same tree, and evaluation must not panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use taskyard_expr::{Scope, parse, parse_key, parse_order_by};

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let attrs = serde_json::json!({
        "languages": ["en", "es"], "level": 3, "tier": "gold", "skill": "6",
        "customer": {"ids": [1, 2]}, "nothing": null
    });
    for scope in [Scope::Attributes, Scope::Target, Scope::SkipIf] {
        if let Ok(e) = parse(src, scope) {
            let printed = e.to_string();
            let again = parse(&printed, scope).expect("printed expressions parse");
            assert_eq!(again, e, "{printed}");
            e.eval(&attrs);
        }
        let _ = parse_key(src, scope);
    }
    let _ = parse_order_by(src);
});
