//! A scripted session on a virtual clock, with no sockets (quinn's `Pair`, str0m's
//! `TestRtc`): feed lines, read replies, answer requests by hand or let a tiny in-memory
//! "runtime" answer them.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use ferry_core::{
    Config, DataChannel, Event, FileKind, Instant, LoginError, LoginInfo, Metadata, Outcome,
    Request, Session, StorageError, StorageOp, StorageReply, TransferKind, UnixTime, WriteMode,
};

pub const PEER: &str = "127.0.0.1:50000";
pub const LOCAL: &str = "127.0.0.1:2121";

/// A scripted session.
pub struct H {
    pub s: Session,
    pub now: Instant,
    /// Replies not yet checked, as wire text (one string per reply, CR LF included).
    pub replies: std::collections::VecDeque<String>,
    /// Requests not yet answered.
    pub events: std::collections::VecDeque<Request>,
    /// Bytes sent but not yet taken by the session.
    pub input: Vec<u8>,
    /// Whether the session asked to close.
    pub closed: bool,
    /// When set, requests are answered by [`Fake`] as they come.
    pub fake: Option<Fake>,
}

/// A tiny runtime: accepts `bench`/`secret` (and any user with password `ok`), keeps a
/// tree of paths in memory, and completes every transfer at once.
#[derive(Default)]
pub struct Fake {
    pub tree: BTreeMap<String, (FileKind, u64)>,
    pub transfers: Vec<TransferKind>,
    pub passive_port: u16,
}

impl Fake {
    pub fn new() -> Self {
        let mut f = Self {
            passive_port: 40000,
            ..Self::default()
        };
        f.tree.insert("/".into(), (FileKind::Dir, 0));
        f
    }

    fn meta(&self, p: &str) -> Result<Metadata, StorageError> {
        let &(kind, size) = self.tree.get(p).ok_or(StorageError::NotFound)?;
        Ok(Metadata {
            kind,
            size,
            modified: Some(UnixTime(1_795_363_898)),
            mode: None,
        })
    }

    fn parent_is_dir(&self, p: &str) -> Result<(), StorageError> {
        let parent = match p.rfind('/') {
            Some(0) => "/",
            Some(i) => &p[..i],
            None => "/",
        };
        match self.tree.get(parent) {
            Some((FileKind::Dir, _)) => Ok(()),
            Some(_) => Err(StorageError::NotADirectory),
            None => Err(StorageError::NotFound),
        }
    }

    fn storage(&mut self, op: &StorageOp) -> Result<StorageReply, StorageError> {
        match op {
            StorageOp::Metadata(p) => self.meta(p.as_str()).map(StorageReply::Metadata),
            StorageOp::MakeDir(p) => {
                self.parent_is_dir(p.as_str())?;
                if self.tree.contains_key(p.as_str()) {
                    return Err(StorageError::AlreadyExists);
                }
                self.tree.insert(p.to_string(), (FileKind::Dir, 0));
                Ok(StorageReply::Done)
            }
            StorageOp::RemoveDir(p) => {
                if self.meta(p.as_str())?.kind != FileKind::Dir {
                    return Err(StorageError::NotADirectory);
                }
                let prefix = format!("{}/", p.as_str());
                if self.tree.keys().any(|k| k.starts_with(&prefix)) {
                    return Err(StorageError::NotEmpty);
                }
                self.tree.remove(p.as_str());
                Ok(StorageReply::Done)
            }
            StorageOp::RemoveFile(p) => {
                if self.meta(p.as_str())?.kind != FileKind::File {
                    return Err(StorageError::NotAFile);
                }
                self.tree.remove(p.as_str());
                Ok(StorageReply::Done)
            }
            StorageOp::Rename { from, to } | StorageOp::Copy { from, to } => {
                let v = *self.tree.get(from.as_str()).ok_or(StorageError::NotFound)?;
                self.parent_is_dir(to.as_str())?;
                if matches!(op, StorageOp::Rename { .. }) {
                    self.tree.remove(from.as_str());
                }
                self.tree.insert(to.to_string(), v);
                Ok(StorageReply::Done)
            }
            StorageOp::SetModified { path, .. } | StorageOp::SetMode { path, .. } => {
                self.meta(path.as_str()).map(|_| StorageReply::Done)
            }
        }
    }
}

impl H {
    pub fn new() -> Self {
        Self::with_config(Config::default())
    }

    pub fn with_config(config: Config) -> Self {
        Self::with_addrs(config, PEER, LOCAL)
    }

    pub fn with_addrs(config: Config, peer: &str, local: &str) -> Self {
        let peer: SocketAddr = peer.parse().unwrap();
        let local: SocketAddr = local.parse().unwrap();
        let now = Instant::from_micros(1_000_000);
        let mut h = Self {
            s: Session::new(config, peer, local, now),
            now,
            replies: Default::default(),
            events: Default::default(),
            input: Vec::new(),
            closed: false,
            fake: None,
        };
        h.drain();
        h
    }

    /// A session whose requests the [`Fake`] runtime answers.
    pub fn auto() -> Self {
        let mut h = Self::new();
        h.fake = Some(Fake::new());
        h
    }

    /// Drains events: replies to `replies`, requests to `events` (or to the fake).
    pub fn drain(&mut self) {
        loop {
            while let Some(e) = self.s.poll_event() {
                match e {
                    Event::Reply(r) => {
                        let text = r.to_string();
                        check_reply(&text);
                        self.replies.push_back(text);
                    }
                    Event::Request(Request::Close) => self.closed = true,
                    Event::Request(other) => self.events.push_back(other),
                }
            }
            if self.fake.is_some() && !self.events.is_empty() {
                let e = self.events.pop_front().unwrap();
                self.answer(e);
                continue;
            }
            // Offer the remaining input, as a runtime does after draining.
            if self.input.is_empty() || self.closed {
                return;
            }
            let used = self.s.handle_input(&self.input, self.now);
            self.input.drain(..used);
            if used == 0 {
                return;
            }
        }
    }

    fn answer(&mut self, e: Request) {
        let now = self.now;
        let fake = self.fake.as_mut().unwrap();
        let outcome = match e {
            Request::CheckLogin { id, user, password } => {
                let ok = (user.as_str() == "bench" && password.expose().as_str() == "secret")
                    || password.expose().as_str() == "ok";
                let result = if ok {
                    Ok(LoginInfo::default())
                } else {
                    Err(LoginError::Rejected)
                };
                Some(Outcome::LoginChecked { id, result })
            }
            Request::Storage { id, op } => Some(Outcome::StorageDone {
                id,
                result: fake.storage(&op),
            }),
            Request::OpenPassive { id, .. } => {
                fake.passive_port += 1;
                let addr = SocketAddr::new("127.0.0.1".parse().unwrap(), fake.passive_port);
                Some(Outcome::PassiveOpened {
                    id,
                    result: Ok(addr),
                })
            }
            Request::Transfer(t) => {
                let result = match &t.kind {
                    TransferKind::Retrieve { path, .. } => fake.meta(path.as_str()).and_then(|m| {
                        if m.kind == FileKind::File {
                            Ok(m.size)
                        } else {
                            Err(StorageError::NotAFile)
                        }
                    }),
                    TransferKind::Store { path, mode } => {
                        fake.parent_is_dir(path.as_str()).and_then(|()| {
                            if *mode == WriteMode::CreateNew
                                && fake.tree.contains_key(path.as_str())
                            {
                                return Err(StorageError::AlreadyExists);
                            }
                            fake.tree.insert(path.to_string(), (FileKind::File, 3));
                            Ok(3)
                        })
                    }
                    TransferKind::List(l) => fake.meta(l.path.as_str()).map(|_| 0),
                };
                fake.transfers.push(t.kind.clone());
                let id = t.id;
                match result {
                    Ok(n) => {
                        self.s
                            .handle_outcome(Outcome::TransferOpened { id, size: None }, now);
                        if t.channel == DataChannel::Control {
                            // The runtime writes the listing lines between the two replies.
                        }
                        Some(Outcome::TransferFinished { id, result: Ok(n) })
                    }
                    Err(e) => Some(Outcome::TransferFinished {
                        id,
                        result: Err(ferry_core::TransferError::Storage(e)),
                    }),
                }
            }
            Request::StartTls => Some(Outcome::TlsEstablished),
            Request::ClosePassive | Request::Abort { .. } | Request::Close => None,
        };
        if let Some(o) = outcome {
            self.s.handle_outcome(o, now);
        }
    }

    /// Sends raw bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
        let used = self.s.handle_input(&self.input, self.now);
        self.input.drain(..used);
        self.drain();
    }

    /// Sends one command line (CR LF added).
    pub fn send(&mut self, line: &str) {
        self.feed(format!("{line}\r\n").as_bytes());
    }

    /// Reports an outcome.
    pub fn outcome(&mut self, o: Outcome) {
        self.s.handle_outcome(o, self.now);
        self.drain();
    }

    /// Lets time pass.
    pub fn advance(&mut self, d: Duration) {
        self.now = Instant::from_micros(self.now.as_micros() + d.as_micros() as u64);
        self.s.handle_timeout(self.now);
        self.drain();
    }

    /// The next reply; panics if there is none.
    pub fn reply(&mut self) -> String {
        self.replies.pop_front().expect("a reply")
    }

    /// The next reply, which must have `code`; returns its text.
    #[track_caller]
    pub fn expect(&mut self, code: u16) -> String {
        let r = self
            .replies
            .pop_front()
            .unwrap_or_else(|| panic!("no reply; wanted {code}"));
        assert!(r.starts_with(&code.to_string()), "wanted {code}, got {r:?}");
        r
    }

    /// Expects one reply of `code`, the last: the session has closed after it.
    #[track_caller]
    pub fn expect_last(&mut self, code: u16) {
        self.expect(code);
        assert!(self.closed, "still open after {code}");
    }

    /// Sends a line and expects one reply of `code`.
    #[track_caller]
    pub fn cmd(&mut self, line: &str, code: u16) -> String {
        self.send(line);
        let r = self.expect(code);
        assert!(
            self.replies.is_empty(),
            "extra replies after {line}: {:?}",
            self.replies
        );
        r
    }

    /// The next request; panics if there is none.
    pub fn event(&mut self) -> Request {
        self.events.pop_front().expect("an event")
    }

    /// Expects a storage request `op`, answers it with `result`.
    #[track_caller]
    #[allow(clippy::needless_pass_by_value)] // Call sites read as the expected request.
    pub fn storage(&mut self, op: StorageOp, result: Result<StorageReply, StorageError>) {
        match self.event() {
            Request::Storage { id, op: got } => {
                assert_eq!(got, op);
                self.outcome(Outcome::StorageDone { id, result });
            }
            other => panic!("want storage {op:?}, got {other:?}"),
        }
    }

    /// Sends `line`, answers the storage request `op` it makes with `result`, and returns the
    /// reply, which must have `code`.
    #[track_caller]
    pub fn ask(
        &mut self,
        line: &str,
        op: StorageOp,
        result: Result<StorageReply, StorageError>,
        code: u16,
    ) -> String {
        self.send(line);
        self.storage(op, result);
        self.expect(code)
    }

    /// Asserts nothing more was replied or requested.
    #[track_caller]
    pub fn quiet(&self) {
        assert!(
            self.replies.is_empty(),
            "unexpected replies {:?}",
            self.replies
        );
        assert!(
            self.events.is_empty(),
            "unexpected events {:?}",
            self.events
        );
    }

    /// Logs in as bench (answering the check by hand unless a fake runs).
    pub fn login(&mut self) {
        self.expect(220);
        self.cmd("USER bench", 331);
        self.send("PASS secret");
        if self.fake.is_none() {
            let Request::CheckLogin { id, .. } = self.event() else {
                panic!("want CheckLogin")
            };
            self.outcome(Outcome::LoginChecked {
                id,
                result: Ok(LoginInfo::default()),
            });
        }
        self.expect(230);
    }
}

/// Every reply is well-formed: three digits, then a space or (multi-line) a dash; lines end
/// in CR LF; a multi-line reply ends with its code and a space (unless it is an opening).
#[track_caller]
pub fn check_reply(text: &str) {
    assert!(text.ends_with("\r\n"), "{text:?}");
    let b = text.as_bytes();
    assert!(
        b.len() >= 5 && b[..3].iter().all(u8::is_ascii_digit),
        "{text:?}"
    );
    assert!(b[3] == b' ' || b[3] == b'-', "{text:?}");
    let lines: Vec<&str> = text.split_terminator("\r\n").collect();
    for l in &lines {
        assert!(!l.contains('\r') && !l.contains('\n'), "{text:?}");
    }
    if b[3] == b'-' && lines.len() > 1 {
        let last = lines.last().unwrap();
        assert!(
            last.starts_with(&text[..3]) && last.as_bytes()[3] == b' ',
            "{text:?}"
        );
        for body in &lines[1..lines.len() - 1] {
            assert!(
                !(body.len() >= 4
                    && body.as_bytes()[3] == b' '
                    && body.as_bytes()[..3].iter().all(u8::is_ascii_digit)),
                "{text:?}"
            );
        }
    }
}
