//! HTTP digest authentication for SIP (RFC 3261 §22, RFC 7616 / RFC 8760 for
//! SHA-256): challenges, verification of Authorization / Proxy-Authorization, and
//! the per-user and per-source lockout (spec decision 3: `auth_max_retry` failures
//! within the window suspend both for `auth_failed_suspend`).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use switchyard_model::credentials::Algorithm;
use switchyard_model::credentials::REALM;
use switchyard_model::credentials::{ha1, response};

/// How long a nonce is accepted.
const NONCE_LIFETIME: Duration = Duration::from_secs(300);
/// Failures are counted over this window.
const FAILURE_WINDOW: Duration = Duration::from_secs(300);
/// Most nonces outstanding: past it the oldest is forgotten (its phone is challenged
/// again), so a flood of unanswered challenges costs bounded memory.
const MAX_NONCES: usize = 100_000;
/// Most users and sources with failures counted: past it those neither counting
/// recent failures nor suspended are forgotten, then the oldest.
const MAX_FAILURE_KEYS: usize = 100_000;

/// The parameters of a `Digest ...` credentials header.
pub fn credentials(value: &str) -> Option<HashMap<String, String>> {
    let rest = value
        .trim()
        .strip_prefix("Digest")
        .or_else(|| value.trim().strip_prefix("digest"))?;
    let mut out = HashMap::new();
    for part in super::wire::split_list(rest) {
        let (k, v) = part.split_once('=')?;
        out.insert(
            k.trim().to_ascii_lowercase(),
            v.trim().trim_matches('"').to_string(),
        );
    }
    Some(out)
}

/// A server's challenge we can answer: from a 401's WWW-Authenticate or a 407's
/// Proxy-Authenticate.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// "Authorization" or "Proxy-Authorization": where the answer goes.
    pub answer_header: &'static str,
    algorithm: Algorithm,
    realm: String,
    nonce: String,
    opaque: Option<String>,
    qop_auth: bool,
    /// Requests answered with this nonce so far (the `nc` count).
    uses: u32,
}

impl Challenge {
    /// The challenge of a 401 / 407 response, preferring SHA-256 when several are
    /// offered; none when it has no digest challenge we support.
    pub fn of(resp: &super::message::Message) -> Option<Challenge> {
        let (challenge_header, answer_header) = match resp.status()? {
            401 => ("WWW-Authenticate", "Authorization"),
            407 => ("Proxy-Authenticate", "Proxy-Authorization"),
            _ => return None,
        };
        resp.headers_named(challenge_header)
            .filter_map(|value| {
                let p = credentials(value)?;
                let algorithm = match p.get("algorithm").map(|a| a.to_ascii_uppercase()) {
                    None => Algorithm::Md5,
                    Some(a) if a == "MD5" => Algorithm::Md5,
                    Some(a) if a == "SHA-256" => Algorithm::Sha256,
                    Some(_) => return None,
                };
                Some(Challenge {
                    answer_header,
                    algorithm,
                    realm: p.get("realm")?.clone(),
                    nonce: p.get("nonce")?.clone(),
                    opaque: p.get("opaque").cloned(),
                    qop_auth: p
                        .get("qop")
                        .is_some_and(|q| q.split(',').any(|q| q.trim() == "auth")),
                    uses: 0,
                })
            })
            .max_by_key(|c| c.algorithm == Algorithm::Sha256)
    }

    /// Put our answer to it for `method uri` on `req` (replacing an earlier answer):
    /// how vendor INVITEs and upstream REGISTERs answer a 401 / 407.
    pub fn authorize(
        &mut self,
        req: &mut super::message::Outgoing,
        user: &str,
        password: &str,
        method: &str,
        uri: &str,
    ) {
        let answer = self.answer(user, password, method, uri);
        req.set(self.answer_header, answer);
    }

    /// The credentials header value answering it for `method uri`.
    pub fn answer(&mut self, user: &str, password: &str, method: &str, uri: &str) -> String {
        self.uses += 1;
        let ha1 = ha1(self.algorithm, user, &self.realm, password);
        let nc = format!("{:08x}", self.uses);
        let cnonce = format!("{:016x}", rand::random::<u64>());
        let qop = self
            .qop_auth
            .then_some(("auth", nc.as_str(), cnonce.as_str()));
        let response = response(self.algorithm, &ha1, method, uri, &self.nonce, qop);
        let mut out = format!(
            "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm={}",
            self.realm,
            self.nonce,
            self.algorithm.name()
        );
        if self.qop_auth {
            out.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
        }
        if let Some(opaque) = &self.opaque {
            out.push_str(&format!(", opaque=\"{opaque}\""));
        }
        out
    }
}

/// Why credentials were not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// None given, or for a stale / unknown nonce: challenge (again).
    Challenge,
    /// Wrong: counted towards the lockout; challenge again.
    Wrong,
    /// The user or the source is suspended.
    Suspended,
}

#[derive(Default)]
struct Failures {
    times: Vec<Instant>,
    suspended_until: Option<Instant>,
}

/// Nonces issued and failures counted.
pub struct DigestAuth {
    algorithms: Vec<Algorithm>,
    max_retry: u32,
    suspend: Duration,
    nonces: Mutex<Nonces>,
    failures: Mutex<HashMap<String, Failures>>,
}

/// Nonces issued, with their issue times in order so expiry costs no scan.
#[derive(Default)]
struct Nonces {
    issued: HashMap<String, Instant>,
    order: VecDeque<(Instant, String)>,
}

impl Nonces {
    fn insert(&mut self, nonce: String, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.duration_since(*at) < NONCE_LIFETIME && self.order.len() < MAX_NONCES {
                break;
            }
            if let Some((_, old)) = self.order.pop_front() {
                self.issued.remove(&old);
            }
        }
        self.issued.insert(nonce.clone(), now);
        self.order.push_back((now, nonce));
    }

    fn fresh(&self, nonce: &str) -> bool {
        self.issued
            .get(nonce)
            .is_some_and(|t| t.elapsed() < NONCE_LIFETIME)
    }
}

impl DigestAuth {
    /// Challenges offer `algorithms` in order of preference; `max_retry` failures (0 =
    /// no limit) suspend for `suspend`.
    pub fn new(algorithms: Vec<Algorithm>, max_retry: u32, suspend: Duration) -> DigestAuth {
        DigestAuth {
            algorithms,
            max_retry,
            suspend,
            nonces: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    /// Nonces outstanding and users or sources with failures counted.
    pub fn tracked(&self) -> (usize, usize) {
        let nonces = self
            .nonces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .issued
            .len();
        let failures = self
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len();
        (nonces, failures)
    }

    /// One challenge header value per algorithm, most preferred first.
    pub fn challenges(&self) -> Vec<String> {
        let nonce = format!(
            "{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        let now = Instant::now();
        self.nonces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(nonce.clone(), now);
        self.algorithms
            .iter()
            .map(|a| {
                format!(
                    "Digest realm=\"{REALM}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"",
                    a.name()
                )
            })
            .collect()
    }

    /// Whether `user` or `source` is suspended now.
    pub fn suspended(&self, user: &str, source: IpAddr) -> bool {
        let now = Instant::now();
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        [format!("user:{user}"), format!("ip:{source}")]
            .iter()
            .any(|k| {
                failures
                    .get(k)
                    .and_then(|f| f.suspended_until)
                    .is_some_and(|t| t > now)
            })
    }

    /// Check credentials (the header value) for `method` from `source` against the
    /// user's stored HA1 per algorithm. `Ok(())` when they are right.
    pub fn verify(
        &self,
        header: Option<&str>,
        method: &str,
        source: IpAddr,
        user: &str,
        ha1_of: impl Fn(Algorithm) -> Option<String>,
    ) -> Result<(), Refusal> {
        if self.suspended(user, source) {
            return Err(Refusal::Suspended);
        }
        let Some(c) = header.and_then(credentials) else {
            return Err(Refusal::Challenge);
        };
        let get = |k: &str| c.get(k).map(String::as_str).unwrap_or_default();
        let fresh = self
            .nonces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fresh(get("nonce"));
        if !fresh {
            return Err(Refusal::Challenge);
        }
        let algorithm = match get("algorithm").to_ascii_uppercase().as_str() {
            "" | "MD5" => Algorithm::Md5,
            "SHA-256" => Algorithm::Sha256,
            _ => return Err(self.fail(user, source)),
        };
        if !self.algorithms.contains(&algorithm) || get("username") != user || get("realm") != REALM
        {
            return Err(self.fail(user, source));
        }
        let Some(ha1) = ha1_of(algorithm) else {
            return Err(self.fail(user, source));
        };
        let qop = c.get("qop").map(|q| (q.as_str(), get("nc"), get("cnonce")));
        let expected = response(algorithm, &ha1, method, get("uri"), get("nonce"), qop);
        if expected.eq_ignore_ascii_case(get("response")) {
            Ok(())
        } else {
            Err(self.fail(user, source))
        }
    }

    /// Count a failure against the user and the source; suspend at the limit.
    fn fail(&self, user: &str, source: IpAddr) -> Refusal {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= MAX_FAILURE_KEYS {
            forget_stale_failures(&mut failures, now);
        }
        let mut suspended = false;
        for key in [format!("user:{user}"), format!("ip:{source}")] {
            let f = failures.entry(key.clone()).or_default();
            f.times.retain(|t| now.duration_since(*t) < FAILURE_WINDOW);
            f.times.push(now);
            if self.max_retry > 0 && f.times.len() >= self.max_retry as usize {
                f.suspended_until = Some(now + self.suspend);
                f.times.clear();
                suspended = true;
                tracing::warn!(%key, suspend_secs = self.suspend.as_secs(), "authentication failures: suspended");
            }
        }
        if suspended {
            Refusal::Suspended
        } else {
            Refusal::Wrong
        }
    }
}

/// Forget users and sources with no failure in the window and no suspension left; if
/// that is not enough, the half whose last failure is oldest (a scan of many made-up
/// user names must not grow memory without bound).
fn forget_stale_failures(failures: &mut HashMap<String, Failures>, now: Instant) {
    failures.retain(|_, f| {
        f.times.retain(|t| now.duration_since(*t) < FAILURE_WINDOW);
        !f.times.is_empty() || f.suspended_until.is_some_and(|t| t > now)
    });
    if failures.len() >= MAX_FAILURE_KEYS {
        let mut last: Vec<Instant> = failures
            .values()
            .filter(|f| f.suspended_until.is_none_or(|t| t <= now))
            .filter_map(|f| f.times.last().copied())
            .collect();
        last.sort_unstable();
        if let Some(cut) = last.get(last.len() / 2).copied() {
            failures.retain(|_, f| {
                f.suspended_until.is_some_and(|t| t > now)
                    || f.times.last().is_some_and(|t| *t > cut)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_and_failure_counts_stay_within_their_bounds() {
        let auth = DigestAuth::new(vec![Algorithm::Md5], 3, Duration::from_secs(60));
        for _ in 0..MAX_NONCES + 10 {
            auth.challenges();
        }
        assert_eq!(auth.tracked().0, MAX_NONCES);
        let source: IpAddr = "127.0.0.9".parse().unwrap();
        for n in 0..MAX_FAILURE_KEYS + 10 {
            let _ = auth.fail(&format!("user-{n}"), source);
        }
        let (_, keys) = auth.tracked();
        assert!(keys <= MAX_FAILURE_KEYS, "{keys} keys");
        // The source that failed all along is suspended still.
        assert!(auth.suspended("anyone", source));
    }

    #[test]
    fn rfc_7616_sha256_and_md5_examples() {
        // RFC 7616 §3.9.1 (the "Mufasa" example), both algorithms.
        let (nonce, cnonce) = (
            "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        );
        let qop = Some(("auth", "00000001", cnonce));
        for (algorithm, expected) in [
            (Algorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec"),
            (
                Algorithm::Sha256,
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
        ] {
            let ha1 = ha1(
                algorithm,
                "Mufasa",
                "http-auth@example.org",
                "Circle of Life",
            );
            assert_eq!(
                response(algorithm, &ha1, "GET", "/dir/index.html", nonce, qop),
                expected
            );
        }
    }

    #[test]
    fn wrong_passwords_suspend_user_and_source() {
        let auth = DigestAuth::new(
            vec![Algorithm::Sha256, Algorithm::Md5],
            3,
            Duration::from_secs(60),
        );
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        let nonce = auth.challenges()[0].split("nonce=\"").nth(1).unwrap()[..32].to_string();
        let stored = |a| Some(ha1(a, "alice", REALM, "secret"));
        let creds = |password: &str| {
            let h = ha1(Algorithm::Md5, "alice", REALM, password);
            let r = response(Algorithm::Md5, &h, "REGISTER", "sip:x", &nonce, None);
            format!("Digest username=\"alice\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"sip:x\", response=\"{r}\", algorithm=MD5")
        };
        assert_eq!(
            auth.verify(Some(&creds("secret")), "REGISTER", ip, "alice", stored),
            Ok(())
        );
        assert_eq!(
            auth.verify(None, "REGISTER", ip, "alice", stored),
            Err(Refusal::Challenge)
        );
        assert_eq!(
            auth.verify(Some(&creds("bad")), "REGISTER", ip, "alice", stored),
            Err(Refusal::Wrong)
        );
        assert_eq!(
            auth.verify(Some(&creds("bad")), "REGISTER", ip, "alice", stored),
            Err(Refusal::Wrong)
        );
        assert_eq!(
            auth.verify(Some(&creds("bad")), "REGISTER", ip, "alice", stored),
            Err(Refusal::Suspended)
        );
        // Even the right password is refused while suspended, from this source or as this user.
        assert_eq!(
            auth.verify(Some(&creds("secret")), "REGISTER", ip, "alice", stored),
            Err(Refusal::Suspended)
        );
        assert!(auth.suspended("bob", ip));
        assert!(auth.suspended("alice", "127.0.0.10".parse().unwrap()));
    }

    #[test]
    fn our_answer_to_a_challenge_verifies() {
        let auth = DigestAuth::new(vec![Algorithm::Sha256, Algorithm::Md5], 0, Duration::ZERO);
        let mut raw = String::from(
            "SIP/2.0 407 Proxy Authentication Required\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\n\
             From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n",
        );
        // Offered MD5 first: the answer still picks SHA-256.
        for c in auth.challenges().iter().rev() {
            raw.push_str(&format!("Proxy-Authenticate: {c}, opaque=\"o1\"\r\n"));
        }
        raw.push_str("Content-Length: 0\r\n\r\n");
        let resp = super::super::wire::parse(raw.as_bytes()).unwrap();
        let mut challenge = Challenge::of(&resp).expect("a digest challenge");
        assert_eq!(challenge.answer_header, "Proxy-Authorization");
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let stored = |a| Some(ha1(a, "carrier", REALM, "pw"));
        for _ in 0..2 {
            let answer = challenge.answer("carrier", "pw", "INVITE", "sip:1@h");
            assert!(answer.contains("algorithm=SHA-256") && answer.contains("opaque=\"o1\""));
            assert_eq!(
                auth.verify(Some(&answer), "INVITE", ip, "carrier", stored),
                Ok(())
            );
        }
        assert!(challenge
            .answer("carrier", "pw", "INVITE", "sip:1@h")
            .contains("nc=00000003"));
        let wrong = challenge.answer("carrier", "bad", "INVITE", "sip:1@h");
        assert_eq!(
            auth.verify(Some(&wrong), "INVITE", ip, "carrier", stored),
            Err(Refusal::Wrong)
        );
    }
}
