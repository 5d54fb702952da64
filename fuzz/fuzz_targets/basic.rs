//! `Authorization` headers from any text: the scheme split and Basic decoding never
//! panic, and decoded credentials encode back to what decodes to them.

#![no_main]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use berth_auth::basic::{self, Authorization};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Authorization::Basic(param) = Authorization::parse(text)
        && let Some(c) = basic::decode(param)
    {
        assert!(!c.user.is_empty() && !c.user.contains(':'));
        let again = STANDARD.encode(format!("{}:{}", c.user, c.password));
        assert_eq!(basic::decode(&again), Some(c));
    }
});
