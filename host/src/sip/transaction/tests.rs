//! The transaction layer over in-memory transports, on tokio's paused clock: each
//! send is stamped with the (virtual) time it left, so the RFC 3261 timers are
//! measured, not slept through.
use std::net::SocketAddr;

use tokio::time::Instant;

use super::*;
use crate::sip::transport::Sent;
use crate::sip::wire;
use switchyard_model::Transport;

const PHONE: &str = "127.0.0.2:5060";

fn peer(transport: Transport) -> Peer {
    Peer {
        addr: PHONE.parse().unwrap(),
        transport,
    }
}

fn layer() -> (Arc<Transactions>, Sent) {
    let ours: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let (transports, sent) = Transports::in_memory(ours);
    (Transactions::new(transports), sent)
}

fn request(method: &str, branch: &str) -> Message {
    let raw = format!(
        "{method} sip:100@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {PHONE};branch={branch}\r\n\
         From: <sip:200@127.0.0.2>;tag=a\r\n\
         To: <sip:100@127.0.0.1>\r\n\
         Call-ID: tx-test\r\n\
         CSeq: 1 {method}\r\n\
         Content-Length: 0\r\n\r\n"
    );
    wire::parse(raw.as_bytes()).expect("a request")
}

fn status(bytes: &[u8]) -> u16 {
    status_of(bytes)
}

/// The gaps between the first `n` sends, in milliseconds.
async fn gaps(sent: &mut Sent, n: usize) -> Vec<u128> {
    let mut times = Vec::new();
    for _ in 0..n {
        sent.recv().await.expect("a send");
        times.push(Instant::now());
    }
    times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_rejected_invite_is_retransmitted_until_acked_then_kept_for_timer_i() {
    let (txs, mut sent) = layer();
    let invite = request("INVITE", "z9hG4bK-i1");
    let Incoming::New(tx) = txs.incoming_request(&invite, peer(Transport::Udp)).await else {
        panic!("a new INVITE opens a transaction");
    };
    txs.respond(
        &tx,
        Outgoing::response(&invite, 486, "Busy Here", Some("b")),
    )
    .await;
    // Timer G: T1, doubling, capped at T2.
    assert_eq!(gaps(&mut sent, 6).await, [500, 1000, 2000, 4000, 4000]);
    let ack = request("ACK", "z9hG4bK-i1");
    assert!(matches!(
        txs.incoming_request(&ack, peer(Transport::Udp)).await,
        Incoming::Absorbed
    ));
    let acked = Instant::now();
    // Timer I = T4: still there to absorb ACK retransmissions, then gone.
    tokio::time::sleep_until(acked + TIMER_I - Duration::from_millis(10)).await;
    assert_eq!(txs.counts(), (0, 1));
    tokio::time::sleep_until(acked + TIMER_I + Duration::from_millis(10)).await;
    assert_eq!(txs.counts(), (0, 0));
    assert!(sent.try_recv().is_err(), "no retransmission after the ACK");
}

#[tokio::test(start_paused = true)]
async fn an_unacked_rejection_gives_up_after_timer_h() {
    let (txs, mut sent) = layer();
    let invite = request("INVITE", "z9hG4bK-h1");
    let Incoming::New(tx) = txs.incoming_request(&invite, peer(Transport::Udp)).await else {
        panic!("a new INVITE opens a transaction");
    };
    let start = Instant::now();
    txs.respond(
        &tx,
        Outgoing::response(&invite, 503, "Unavailable", Some("b")),
    )
    .await;
    let mut last = start;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(10), sent.recv()).await {
        last = Instant::now();
    }
    // The last retransmission is inside 64*T1; none come after it.
    assert!(last - start <= TIMER_64T1, "{:?}", last - start);
    assert!(last - start > TIMER_64T1 - T2, "{:?}", last - start);
    assert_eq!(txs.counts(), (0, 0), "Timer H then Timer I end it");
}

#[tokio::test(start_paused = true)]
async fn over_tcp_a_rejection_is_sent_once() {
    let (txs, mut sent) = layer();
    let invite = request("INVITE", "z9hG4bK-t1");
    let Incoming::New(tx) = txs.incoming_request(&invite, peer(Transport::Tcp)).await else {
        panic!("a new INVITE opens a transaction");
    };
    txs.respond(
        &tx,
        Outgoing::response(&invite, 486, "Busy Here", Some("b")),
    )
    .await;
    assert_eq!(status(&sent.recv().await.unwrap().0), 486);
    tokio::time::sleep(TIMER_64T1 + T4).await;
    assert!(
        sent.try_recv().is_err(),
        "reliable transports do not retransmit"
    );
}

#[tokio::test(start_paused = true)]
async fn a_retransmitted_request_gets_the_last_response_again() {
    let (txs, mut sent) = layer();
    let bye = request("BYE", "z9hG4bK-b1");
    let Incoming::New(tx) = txs.incoming_request(&bye, peer(Transport::Udp)).await else {
        panic!("a new BYE opens a transaction");
    };
    txs.respond(&tx, Outgoing::response(&bye, 200, "OK", Some("b")))
        .await;
    assert_eq!(status(&sent.recv().await.unwrap().0), 200);
    assert!(matches!(
        txs.incoming_request(&bye, peer(Transport::Udp)).await,
        Incoming::Absorbed
    ));
    assert_eq!(status(&sent.recv().await.unwrap().0), 200);
    // Timer J keeps it for 64*T1, then it is forgotten (by the reaper's next round).
    tokio::time::sleep(TIMER_64T1 - Duration::from_secs(1)).await;
    assert!(matches!(
        txs.incoming_request(&bye, peer(Transport::Udp)).await,
        Incoming::Absorbed
    ));
    assert_eq!(status(&sent.recv().await.unwrap().0), 200);
    tokio::time::sleep(Duration::from_secs(1) + REAP_SLACK + Duration::from_millis(10)).await;
    assert_eq!(txs.counts(), (0, 0));
    assert!(matches!(
        txs.incoming_request(&bye, peer(Transport::Udp)).await,
        Incoming::New(_)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_client_request_retransmits_then_times_out_at_timer_f() {
    let (txs, mut sent) = layer();
    let start = Instant::now();
    let out = Outgoing::request("OPTIONS", "sip:127.0.0.2");
    let mut events = txs
        .request(out, "z9hG4bK-c1", "OPTIONS", peer(Transport::Udp), None)
        .await;
    // Timer E: T1, doubling, capped at T2.
    assert_eq!(gaps(&mut sent, 6).await, [500, 1000, 2000, 4000, 4000]);
    assert!(
        final_response(&mut events).await.is_none(),
        "Timer F reports a timeout"
    );
    assert_eq!(Instant::now() - start, TIMER_64T1);
    assert_eq!(txs.counts(), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_client_invite_acks_a_rejection_itself() {
    let (txs, mut sent) = layer();
    let invite = Outgoing::request("INVITE", "sip:100@127.0.0.2");
    let ack = AckParts {
        uri: "sip:100@127.0.0.2".into(),
        via: "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-c2".into(),
        from: "<sip:200@127.0.0.1>;tag=ours".into(),
        call_id: "tx-test".into(),
        cseq: 1,
    };
    let mut events = txs
        .request(
            invite,
            "z9hG4bK-c2",
            "INVITE",
            peer(Transport::Udp),
            Some(ack),
        )
        .await;
    sent.recv().await.expect("the INVITE");
    let busy = wire::parse(
        b"SIP/2.0 486 Busy Here\r\n\
          Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-c2\r\n\
          From: <sip:200@127.0.0.1>;tag=ours\r\n\
          To: <sip:100@127.0.0.2>;tag=theirs\r\n\
          Call-ID: tx-test\r\n\
          CSeq: 1 INVITE\r\n\
          Content-Length: 0\r\n\r\n",
    )
    .unwrap();
    txs.incoming_response(busy).await;
    let (bytes, to) = sent.recv().await.expect("the ACK");
    let ack = wire::parse(&bytes).unwrap();
    assert!(ack.is(rsip::Method::Ack));
    assert_eq!(
        ack.top_via_branch(),
        Some("z9hG4bK-c2"),
        "same branch as the INVITE"
    );
    assert!(ack.header("To").unwrap().contains("tag=theirs"));
    assert_eq!(to, peer(Transport::Udp));
    let ClientEvent::Response(r) = events.recv().await.unwrap() else {
        panic!("the 486 reaches the owner");
    };
    assert_eq!(r.status(), Some(486));
    // Answered: no INVITE retransmission follows.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(sent.try_recv().is_err());
}

#[tokio::test(start_paused = true)]
async fn a_detached_request_slows_to_t2_once_proceeding_and_stops_at_its_final() {
    let (txs, mut sent) = layer();
    let start = Instant::now();
    let bye = Outgoing::request("BYE", "sip:100@127.0.0.2");
    txs.request_detached(bye, "z9hG4bK-d1", "BYE", peer(Transport::Udp))
        .await;
    sent.recv().await.expect("the BYE");
    let response = |status: &str| {
        let raw = format!(
            "SIP/2.0 {status}\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-d1\r\n\
             From: <sip:200@127.0.0.1>;tag=ours\r\n\
             To: <sip:100@127.0.0.2>;tag=theirs\r\n\
             Call-ID: tx-test\r\n\
             CSeq: 2 BYE\r\n\
             Content-Length: 0\r\n\r\n"
        );
        wire::parse(raw.as_bytes()).expect("a response")
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    txs.incoming_response(response("100 Trying")).await;
    // Timer E fires at T1 as it was set, and from then on every T2 (RFC 3261 §17.1.2.2).
    let mut at = Vec::new();
    for _ in 0..3 {
        sent.recv().await.expect("a retransmission");
        at.push((Instant::now() - start).as_millis());
    }
    assert_eq!(at, [500, 4500, 8500]);
    txs.incoming_response(response("200 OK")).await;
    assert_eq!(txs.counts(), (0, 0));
    tokio::time::sleep(TIMER_64T1).await;
    assert!(
        sent.try_recv().is_err(),
        "nothing is sent after the final response"
    );
}
