//! Hostile: `route` allocates without bound. Expect: memory cap hit, fallback used.
use switchyard_sdk::{Call, Decision, Host, Policy};

struct Bomb;

impl Policy for Bomb {
    fn route(_: &dyn Host, _: &Call) -> Decision {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![0xAB; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}

switchyard_sdk::export_policy!(Bomb);
