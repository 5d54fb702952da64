//! htpasswd files and access scopes from any text: the users-file parser keeps only
//! well-formed bcrypt entries, and a scope that parses prints back to one that parses to
//! the same scope.

#![no_main]

use berth_auth::Scope;
use berth_auth::htpasswd;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(users) = htpasswd::parse(text) {
        for (user, hash) in &users {
            assert!(!user.is_empty() && !user.contains(':'));
            assert!(hash.starts_with("$2"));
        }
    }
    for line in text.lines() {
        if let Ok(scope) = Scope::parse(line) {
            let printed = scope.to_string();
            let again = Scope::parse(&printed).expect("a printed scope parses");
            assert_eq!(again.resource, scope.resource);
            assert_eq!(again.actions, scope.actions);
        }
    }
});
