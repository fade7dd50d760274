//! Parses arbitrary bytes as a groupcast datagram. Parsing must never panic, and
//! whatever parses must emit back to the same bytes (parse ∘ emit = identity).
#![no_main]

use groupcast::wire::Repr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(repr) = Repr::parse(data) {
        let mut buf = vec![0u8; repr.buffer_len()];
        let n = repr.emit(&mut buf).expect("a parsed packet can be emitted");
        assert_eq!(n, repr.buffer_len());
        assert_eq!(&buf[..n], data, "emit(parse(x)) != x");
    }
});
