//! SIP over TLS and the API over HTTPS, with certificates made by `openssl` for the
//! test: OpenSSL's `s_client` (another TLS stack than ours) asks OPTIONS; a caller
//! over TLS places a call to a `sips:` URI through a UDP vendor; a UDP caller's call reaches a vendor over
//! TLS that checks our Via; curl reaches the API over HTTPS and fails without the CA.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;
use switchyard::sip::SipTls;
use switchyard::tls::TlsFiles;
use switchyard_tests::sip::{carrier, put, wait_for_no_calls, wait_for_records, Sipp, Vendor};
use switchyard_tests::{TempDir, TestServer, ADMIN};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(10);

/// A CA and a server certificate for 127.0.0.1 signed by it: (ca.pem, cert.pem, key.pem).
fn certificates(dir: &Path) -> Result<(PathBuf, PathBuf, PathBuf)> {
    let run = |args: &[&str]| -> Result<()> {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .context("running openssl")?;
        anyhow::ensure!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=switchyard test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ])?;
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "key.pem",
        "-out",
        "server.csr",
    ])?;
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n")?;
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "cert.pem",
    ])?;
    Ok((
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    ))
}

/// A server with SIP over TLS (and, with `https`, the API over HTTPS instead of HTTP).
async fn tls_server(dir: &TempDir, https: bool) -> Result<(TestServer, PathBuf, TlsFiles)> {
    let (ca, cert, key) = certificates(&dir.0)?;
    let files = TlsFiles { cert, key };
    let data = dir.0.join("data");
    let (f, c) = (files.clone(), ca.clone());
    let s = TestServer::start_configured(&data, move |config| {
        config.sip.tls = Some(SipTls {
            listen: "127.0.0.1:0".parse().expect("address"),
            files: f.clone(),
            ca: Some(c),
        });
        config.api_tls = https.then_some(f);
    })
    .await?;
    Ok((s, ca, files))
}

/// A TLS client config trusting `ca`.
fn client_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>> {
    switchyard::tls::client_config(Some(ca))
}

/// SIP messages over one stream, framed by Content-Length.
struct SipStream<S> {
    stream: BufReader<S>,
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> SipStream<S> {
    async fn send(&mut self, msg: &str) -> Result<()> {
        self.stream.get_mut().write_all(msg.as_bytes()).await?;
        Ok(self.stream.get_mut().flush().await?)
    }

    async fn read(&mut self) -> Result<String> {
        tokio::time::timeout(WAIT, async {
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if self.stream.read_line(&mut line).await? == 0 {
                    bail!("connection closed after {head:?}");
                }
                if line == "\r\n" && head.is_empty() {
                    continue;
                }
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            let len = header(&head, "Content-Length")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            self.stream.read_exact(&mut body).await?;
            Ok(head + &String::from_utf8_lossy(&body))
        })
        .await
        .context("no SIP message in time")?
    }

    /// Read until a message whose first line starts with `start`.
    async fn read_until(&mut self, start: &str) -> Result<String> {
        loop {
            let msg = self.read().await?;
            if msg.starts_with(start) {
                return Ok(msg);
            }
        }
    }
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

#[tokio::test]
async fn openssl_s_client_gets_options_answered_over_tls() -> Result<()> {
    let dir = TempDir::new("tls-openssl");
    let (s, ca, _) = tls_server(&dir, false).await?;
    carrier(&s, json!({}), &[&Vendor::new("vendor-a")]).await?;
    let tls = s.server.sip.tls_addr.context("TLS listener")?;
    let mut client = tokio::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-verify_return_error", "-CAfile"])
        .arg(&ca)
        .args(["-connect", &tls.to_string(), "-verify_ip", "127.0.0.1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("openssl s_client")?;
    let options = "OPTIONS sip:ping@127.0.0.1 SIP/2.0\r\n\
                   Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKtlsopt\r\n\
                   From: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <sip:ping@127.0.0.1>\r\n\
                   Call-ID: tls-options\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\
                   Content-Length: 0\r\n\r\n";
    let mut stdin = client.stdin.take().context("stdin")?;
    stdin.write_all(options.as_bytes()).await?;
    stdin.flush().await?;
    let mut reader = BufReader::new(client.stdout.take().context("stdout")?).lines();
    let first = tokio::time::timeout(WAIT, reader.next_line())
        .await
        .context("no answer over TLS")??
        .unwrap_or_default();
    assert_eq!(first, "SIP/2.0 200 OK", "answer over TLS");
    drop(stdin);
    s.stop().await
}

#[tokio::test]
async fn a_caller_over_tls_reaches_a_udp_vendor_and_hangs_up() -> Result<()> {
    let dir = TempDir::new("tls-caller");
    let (s, ca, _) = tls_server(&dir, false).await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({}), &[&vendor]).await?;
    let uas = Sipp::uas(vendor.port, &["-sn", "uas"], 1)?;
    let tls = s.server.sip.tls_addr.context("TLS listener")?;
    let tcp = TcpStream::connect(tls).await?;
    let local = tcp.local_addr()?;
    let connector = tokio_rustls::TlsConnector::from(client_config(&ca)?);
    let name = rustls::pki_types::ServerName::IpAddress(tls.ip().into());
    let mut sip = SipStream {
        stream: BufReader::new(connector.connect(name, tcp).await?),
    };
    let dialog = format!(
        "From: <sip:caller@127.0.0.1>;tag=c1\r\nCall-ID: tls-call\r\nMax-Forwards: 70\r\n\
         Contact: <sip:caller@{local};transport=tls>\r\n"
    );
    sip.send(&format!(
        "INVITE sips:442071234567@{tls} SIP/2.0\r\n\
         Via: SIP/2.0/TLS {local};branch=z9hG4bKtls1\r\n{dialog}\
         To: <sips:442071234567@{tls}>\r\nCSeq: 1 INVITE\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    ))
    .await?;
    let ok = sip.read_until("SIP/2.0 200").await?;
    assert!(
        header(&ok, "Contact").is_some_and(|c| c.contains(";transport=tls")),
        "our Contact keeps the caller on TLS: {ok}"
    );
    let to = header(&ok, "To").context("To")?.to_string();
    sip.send(&format!(
        "ACK sip:442071234567@{tls};transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS {local};branch=z9hG4bKtls2\r\n{dialog}To: {to}\r\n\
         CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    ))
    .await?;
    sip.send(&format!(
        "BYE sip:442071234567@{tls};transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS {local};branch=z9hG4bKtls3\r\n{dialog}To: {to}\r\n\
         CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    ))
    .await?;
    let bye_ok = sip.read_until("SIP/2.0 200").await?;
    assert!(bye_ok.contains("CSeq: 2 BYE"), "{bye_ok}");
    uas.succeeds().await?;
    let r = &wait_for_records(&s, 1).await?[0];
    assert_eq!(
        (&r["final_code"], &r["reason"]),
        (&json!(200), &json!("caller_hangup")),
        "{r}"
    );
    wait_for_no_calls(&s).await?;
    s.stop().await
}

/// A vendor over TLS: answers one INVITE with 200, takes the ACK, answers the BYE.
/// Returns the INVITE it got.
async fn tls_vendor(listener: TcpListener, files: TlsFiles) -> Result<String> {
    let acceptor = tokio_rustls::TlsAcceptor::from(switchyard::tls::server_config(&files)?);
    let (tcp, _) = tokio::time::timeout(WAIT, listener.accept()).await??;
    let mut sip = SipStream {
        stream: BufReader::new(acceptor.accept(tcp).await?),
    };
    let invite = sip.read_until("INVITE").await?;
    let echo = |msg: &str, names: &[&str]| {
        names
            .iter()
            .filter_map(|n| header(msg, n).map(|v| format!("{n}: {v}\r\n")))
            .collect::<String>()
    };
    let local = listener.local_addr()?;
    sip.send(&format!(
        "SIP/2.0 200 OK\r\n{}To: {};tag=v1\r\nContact: <sip:vendor@{local};transport=tls>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        echo(&invite, &["Via", "From", "Call-ID", "CSeq"]),
        header(&invite, "To").unwrap_or_default(),
        SDP.len()
    ))
    .await?;
    sip.read_until("ACK").await?;
    let bye = sip.read_until("BYE").await?;
    sip.send(&format!(
        "SIP/2.0 200 OK\r\n{}Content-Length: 0\r\n\r\n",
        echo(&bye, &["Via", "From", "To", "Call-ID", "CSeq"])
    ))
    .await?;
    Ok(invite)
}

#[tokio::test]
async fn a_udp_callers_call_reaches_a_vendor_over_tls() -> Result<()> {
    let dir = TempDir::new("tls-vendor");
    let (s, _, files) = tls_server(&dir, false).await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({}), &[&vendor]).await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    put(
        &s,
        "/api/v1/routing-gateways/vendor-a",
        json!({ "address": listener.local_addr()?.to_string(), "transport": "tls" }),
    )
    .await?;
    let vendor_side = tokio::spawn(tls_vendor(listener, files));
    Sipp::uac(
        s.server.sip.addr,
        &["-sn", "uac", "-s", "442071234567"],
        1,
        1,
    )?
    .succeeds()
    .await?;
    let invite = vendor_side.await??;
    let tls = s.server.sip.tls_addr.context("TLS listener")?;
    assert!(
        header(&invite, "Via").is_some_and(|v| v.starts_with(&format!("SIP/2.0/TLS {tls}"))),
        "our Via names TLS and the TLS listener: {invite}"
    );
    let r = &wait_for_records(&s, 1).await?[0];
    assert_eq!(r["final_code"], 200, "{r}");
    wait_for_no_calls(&s).await?;
    s.stop().await
}

#[tokio::test]
async fn the_api_answers_over_https_and_an_untrusting_client_is_refused() -> Result<()> {
    let dir = TempDir::new("tls-api");
    let (s, ca, _) = tls_server(&dir, true).await?;
    let url = format!("https://{}/api/v1/modules", s.server.api_addr);
    let curl = |extra: &[&str]| {
        let mut cmd = tokio::process::Command::new("curl");
        cmd.args(["-sS", "--max-time", "10", "-H"])
            .arg(format!("Authorization: Bearer {ADMIN}"))
            .args(extra)
            .arg(&url);
        cmd.output()
    };
    let out = curl(&["--cacert", ca.to_str().context("path")?]).await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert!(body["modules"].is_array(), "{body}");
    let refused = curl(&[]).await?;
    assert!(
        !refused.status.success(),
        "a client without the CA must not connect"
    );
    let plain = reqwest::get(format!("http://{}/api/v1/modules", s.server.api_addr)).await;
    assert!(
        plain.is_err() || plain.is_ok_and(|r| !r.status().is_success()),
        "plain HTTP is not served on the HTTPS port"
    );
    s.stop().await
}
