//! The broker's request decoder: arbitrary bytes as they arrive on the socket (frame
//! header included), and, with the first byte odd, the rest as an answer body read by
//! the launchers' client.
//!
//! Checked besides "never panics": every error is one line with an UPPER_SNAKE code; a
//! request that decodes re-encodes to one that decodes equal; a frame longer than the
//! limit is refused before its body is read; an answer the client accepts never carries
//! credentials or an endpoint for the default tier, and carries exactly one of them for a
//! minting tier; an executor endpoint comes only with endpoint delivery, over https.

#![no_main]

use libfuzzer_sys::fuzz_target;
use provisioner_core::broker::client;
use provisioner_core::broker::protocol::{self, MAX_REQUEST_BYTES};
use provisioner_core::decision::Tier;

fn check_error(e: &protocol::ProtocolError) {
    let text = e.to_string();
    assert!(!text.contains('\n') && !text.contains('\r'), "{text:?}");
    assert!(e.code().chars().all(|c| c.is_ascii_uppercase() || c == '_'));
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    if first & 1 == 1 {
        if let Ok(answer) = protocol::decode_answer(rest) {
            match client::granted(answer) {
                Ok(g) => {
                    let minting = g.decision.tier != Tier::Default;
                    // A minting tier delivers keys or an endpoint, never both; the
                    // default tier delivers neither.
                    assert_eq!(
                        g.credentials.is_some() || g.endpoint.is_some(),
                        minting,
                        "{g:?}"
                    );
                    assert!(!(g.credentials.is_some() && g.endpoint.is_some()), "{g:?}");
                    // An executor endpoint only comes with endpoint delivery, over https.
                    if let Some(x) = &g.executor_endpoint {
                        assert!(g.endpoint.is_some(), "{g:?}");
                        assert!(x.url.starts_with("https://"), "{g:?}");
                    }
                    if minting {
                        assert!(!g.region.is_empty());
                    }
                }
                Err(r) => {
                    assert!(!r.message.contains('\n'), "{:?}", r.message);
                    assert!([2, 3, 4].contains(&r.exit_code), "{}", r.exit_code);
                }
            }
        }
        return;
    }
    let mut input = rest;
    match protocol::read_frame(&mut input, MAX_REQUEST_BYTES) {
        Err(e) => {
            check_error(&e);
            if rest.len() >= 4 {
                let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
                if len > MAX_REQUEST_BYTES {
                    assert_eq!(e.code(), "REQUEST_TOO_LARGE");
                }
            }
        }
        Ok(body) => match protocol::decode_request(&body) {
            Err(e) => check_error(&e),
            Ok(req) => {
                assert_eq!(req.version, protocol::VERSION);
                let again = protocol::decode_request(&protocol::encode(&req))
                    .expect("a decoded request re-encodes to a valid one");
                assert_eq!(again, req);
            }
        },
    }
});
