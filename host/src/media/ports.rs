//! The relay port range (SS_MEDIAPROXYPORT_START/END): even RTP ports handed out in
//! turn, each with the odd port above it for RTCP, back in the pool when the lease drops.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// Ports of the range not leased.
#[derive(Debug)]
pub struct PortPool {
    free: Mutex<Free>,
}

#[derive(Debug)]
struct Free {
    ports: BTreeSet<u16>,
    /// Where the next search starts: ports are reused as late as possible, so a late
    /// packet of an ended call does not reach the next one.
    next: u16,
}

impl PortPool {
    /// Every even port from `start` whose RTCP port is still at most `end`.
    pub fn new(start: u16, end: u16) -> Arc<PortPool> {
        let first = start + start % 2;
        let ports = (first..end).step_by(2).collect();
        Arc::new(PortPool {
            free: Mutex::new(Free { ports, next: first }),
        })
    }

    /// Lease a port, none when all are in use.
    pub fn lease(self: &Arc<Self>) -> Option<PortLease> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let port = free
            .ports
            .range(free.next..)
            .next()
            .or_else(|| free.ports.iter().next())
            .copied()?;
        free.ports.remove(&port);
        free.next = port.wrapping_add(2);
        Some(PortLease {
            port,
            pool: self.clone(),
        })
    }

    /// Ports free now.
    pub fn available(&self) -> usize {
        self.free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ports
            .len()
    }
}

/// A leased RTP port (and the RTCP port above it).
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    pool: Arc<PortPool>,
}

impl PortLease {
    /// The RTP port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        let mut free = self.pool.free.lock().unwrap_or_else(|e| e.into_inner());
        free.ports.insert(self.port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_ports_are_leased_in_turn_and_come_back() {
        let pool = PortPool::new(10_001, 10_008);
        assert_eq!(pool.available(), 3); // 10002, 10004, 10006 (RTCP up to 10007)
        let a = pool.lease().unwrap();
        let b = pool.lease().unwrap();
        assert_eq!((a.port(), b.port()), (10_002, 10_004));
        drop(a);
        // Not reused at once while others are free.
        assert_eq!(pool.lease().unwrap().port(), 10_006);
        let c = pool.lease().unwrap();
        assert_eq!(c.port(), 10_002);
        let _d = pool.lease().unwrap();
        assert!(pool.lease().is_none());
    }
}
