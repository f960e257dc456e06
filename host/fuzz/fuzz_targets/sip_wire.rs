//! Any bytes: the SIP parser, the TCP framer and the 400 builder return, never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = switchyard::sip::wire::parse(data);
    let _ = switchyard::sip::wire::frame_len(data);
    let _ = switchyard::sip::wire::bad_request_reply(data, "fuzz");
});
